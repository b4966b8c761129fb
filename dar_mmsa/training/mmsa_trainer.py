"""The harness's corrections of MMSA's own trainers, applied per run by :mod:`dar_mmsa.runner` (never by
``import dar_mmsa``: ``MMSA_run`` keeps stock MMSA's trainers).

Each is a run option recorded in the run's config (and so in its hash): ``max_epochs`` (a cap; MMSA's
trainers only stop early) and ``sample_weighted_loss``; ``do_test`` evaluating the model it is given
changes no number of a run and is always on.
"""
from __future__ import annotations

from typing import Callable, Optional


class MaxEpochsReached(Exception):
    """Ends an MMSA trainer's ``while True`` loop once ``max_epochs`` validations have run."""


class _CappedLoader:
    def __init__(self, loader, done: Callable[[], bool]):
        self.loader, self.done = loader, done

    def __iter__(self):
        if self.done():
            raise MaxEpochsReached()
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _LossRecorder:
    """Stands in for a trainer's loss function during ``do_test``: records (value, batch size) per call."""

    def __init__(self, function):
        self.function, self.calls = function, []

    def __call__(self, prediction, *args, **kwargs):
        loss = self.function(prediction, *args, **kwargs)
        self.calls.append((float(loss.detach()), len(prediction)))
        return loss


def _weighted_loss_test(trainer, do_test, model, loader, mode, *args, **kwargs):
    """``do_test`` with its ``Loss`` re-averaged over samples instead of over batches.

    MMSA's trainers report ``sum(batch losses) / len(loader)``, which moves with the batch size when
    the last batch is smaller. The loss function each calls once per batch (``weighted_loss`` for
    Self-MM, ``criterion`` for the others) is recorded; when it ran exactly once per batch the
    sample-weighted mean replaces ``Loss`` (else MMSA's value stays).
    """
    name = "weighted_loss" if hasattr(trainer, "weighted_loss") else "criterion" if hasattr(trainer, "criterion") \
        else None
    if name is None:
        return do_test(model, loader, mode, *args, **kwargs)
    own = name in vars(trainer)
    original = getattr(trainer, name)
    recorder = _LossRecorder(original)
    setattr(trainer, name, recorder)
    try:
        results = do_test(model, loader, mode, *args, **kwargs)
    finally:
        if own:
            setattr(trainer, name, original)
        else:
            delattr(trainer, name)
    calls = recorder.calls
    if isinstance(results, dict) and "Loss" in results and calls and len(calls) == len(loader):
        results["Loss"] = round(sum(v * n for v, n in calls) / sum(n for _, n in calls), 4)
    return results


def mmsa_trainer(trainer, max_epochs: Optional[int] = None, *, sample_weighted_loss: bool = False):
    """MMSA's own trainer with the harness's corrections (:mod:`dar_mmsa.runner` applies them; never
    ``MMSA_run``).

    * ``do_test(model, ...)`` evaluates ``model``: MMIM's evaluates ``self.model`` (whatever its
      ``do_train`` last saw), so a freshly loaded checkpoint would be ignored.
    * With ``sample_weighted_loss``, ``do_test``'s ``Loss`` is the sample-weighted mean (see
      :func:`_weighted_loss_test`), so it does not depend on the evaluation batch size, like our
      trainers' ``Loss``. Off by default: MISA selects its epoch on ``Loss``.
    * With ``max_epochs``, training stops after that many validated epochs (MMSA's trainers only stop
      early). Epochs are counted by validation calls, not by passes over the train loader, because
      Self-MM also loops over it once to initialise its labels. The best checkpoint so far stays where
      the trainer saved it.
    """
    validations = [0]
    do_train, do_test = trainer.do_train, trainer.do_test

    def evaluated_test(model, loader, mode="VAL", *args, **kwargs):
        validations[0] += mode == "VAL"
        trainer.model = model  # harmless for trainers that never read it
        if sample_weighted_loss:
            return _weighted_loss_test(trainer, do_test, model, loader, mode, *args, **kwargs)
        return do_test(model, loader, mode, *args, **kwargs)

    def capped_train(model, dataloader, *args, **kwargs):
        loaders = dict(dataloader)
        loaders["train"] = _CappedLoader(dataloader["train"], lambda: validations[0] >= max_epochs)
        try:
            return do_train(model, loaders, *args, **kwargs)
        except MaxEpochsReached:
            return None

    trainer.do_test = evaluated_test
    if max_epochs:
        trainer.do_train = capped_train
    return trainer
