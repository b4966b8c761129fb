"""Run a stored model on new features: ``dar_mmsa.load_run(path_or_run_id)`` -> a predictor.

    predictor = dar_mmsa.load_run("results/synthetic-quick/store/runs/dar-mosi-1111-<hash>")
    scores = predictor(text_bert, audio, vision, audio_lengths=a_len, vision_lengths=v_len)
    predictor = dar_mmsa.load_run("~/MMSA/saved_models/dar-mosi.pth")   # saved by MMSA_run
    predictor = dar_mmsa.load_run("dar-mosi.pth", config=MMSA.get_config_regression("dar", "mosi"))

A ``.pth`` saved by ``MMSA_run`` is read by :mod:`dar_mmsa.saved_weights` (with ``config`` where its
arguments are not stored beside it).

Works for every stored run, ours or MMSA's (MMSA 2.2.1's own ``MMSA_test`` cannot load a BERT
model). The arrays go through exactly the benchmark's evaluation path: MMSA's ``MMDataset`` (so
MMSA's preprocessing, e.g. ``-inf`` audio -> 0 and TFR-Net's ``*_m`` fields, applies), the
protocol's corruption at ``missing_rate`` (seeded by the run seed, as the harness), a
``DataLoader(shuffle=False)`` with the run's batch size, and the model's own trainer ``do_test``,
so a stored evaluation is reproduced exactly. ``text`` is MMSA's ``text_bert`` (N, 3, L): token
ids, attention mask, segment ids; lengths default to the full sequence.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from .errors import ConfigError, DataError

ARCHITECTURE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "hidden_act")


def find_run(path_or_run_id, search: Sequence = ("results",)) -> Path:
    """A run folder (``.../store/runs/<run_id>``), or a run id looked up under ``search/*/store/runs/``."""
    path = Path(path_or_run_id).expanduser()
    if path.is_dir():
        return path
    if os.sep not in str(path_or_run_id):
        hits = sorted({p for root in search for p in Path(root).glob(f"*/store/runs/{path_or_run_id}") if p.is_dir()})
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError(f"run id {path_or_run_id} is in several results folders ({', '.join(map(str, hits))}): "
                              f"pass the run folder itself")
    raise ConfigError(f"no run folder {path_or_run_id}: pass a folder like results/<name>/store/runs/<run_id> "
                      f"(or a run id under {', '.join(map(str, search))}/)")


def _bert_architecture(directory) -> Optional[dict]:
    try:
        config = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return {k: config.get(k) for k in ARCHITECTURE_KEYS}


def _check_bert(stored: Optional[str], given: Optional[str]) -> str:
    bert = given or stored
    if not bert or not (Path(bert) / "config.json").is_file():
        raise ConfigError(f"BERT directory {bert} (the run's text encoder) not found: pass pretrained=/--pretrained "
                          f"pointing at the BERT the run was trained with")
    if given and stored and Path(stored).is_dir():
        mine, theirs = _bert_architecture(given), _bert_architecture(stored)
        if theirs is not None and mine != theirs:
            diff = ", ".join(f"{k} {mine.get(k)} != {theirs.get(k)}" for k in ARCHITECTURE_KEYS
                             if mine.get(k) != theirs.get(k))
            raise ConfigError(f"BERT directory {given} does not match the run's ({stored}: {diff}): pass the BERT "
                              f"the run was trained with")
    return str(bert)


class Predictor:
    """Sentiment scores of one stored run's checkpoint; see the module docstring."""

    def __init__(self, run_dir: Path, record: dict, args, model, batch_size: int):
        self.run_dir, self.record, self.args, self.model = run_dir, record, args, model
        self.batch_size = batch_size
        self.seed = int(record["seed"])
        self.feature_dims = [int(d) for d in args["feature_dims"]]

    def __repr__(self):
        return f"Predictor({self.record['run_id']}: {self.record['model']} on {self.record['dataset']})"

    # ------------------------------------------------------------------ checks
    def check_inputs(self, text, audio, vision, audio_lengths, vision_lengths) -> None:
        run = self.record["run_id"]
        if text.ndim != 3 or text.shape[1] != 3:
            raise DataError(f"text must be BERT input (N, 3, L) (token ids, attention mask, segment ids), got shape "
                            f"{text.shape}: pass MMSA's text_bert array")
        for name, arr, dim in (("audio", audio, self.feature_dims[1]), ("vision", vision, self.feature_dims[2])):
            if arr.ndim != 3 or arr.shape[2] != dim:
                raise DataError(f"{name} must be (N, T, {dim}) for run {run} (trained on {dim}-dim {name} features), "
                                f"got shape {arr.shape}: pass features extracted like the run's training data")
        if not len(text) == len(audio) == len(vision):
            raise DataError(f"text, audio and vision have {len(text)}, {len(audio)} and {len(vision)} samples: "
                            f"pass one row per sample in each")
        if self.args.get("need_data_aligned") and not text.shape[2] == audio.shape[1] == vision.shape[1]:
            raise DataError(f"run {run} reads aligned features: text, audio and vision need the same length, got "
                            f"{text.shape[2]}, {audio.shape[1]}, {vision.shape[1]}")
        for name, lengths, arr in (("audio_lengths", audio_lengths, audio), ("vision_lengths", vision_lengths, vision)):
            if lengths is not None and (len(lengths) != len(arr) or np.any(lengths < 0) or np.any(lengths > arr.shape[1])):
                raise DataError(f"{name} must hold one length in [0, {arr.shape[1]}] per sample: got {len(lengths)} "
                                f"values in [{np.min(lengths, initial=0)}, {np.max(lengths, initial=0)}]")

    # ------------------------------------------------------------------ prediction
    def _dataset(self, split: dict):
        from MMSA.data_loader import MMDataset

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "features.pkl"
            with open(path, "wb") as f:
                pickle.dump({"test": split}, f)
            args = self.args
            args.update(featurePath=str(path), custom_feature=None, feature_T="", feature_A="", feature_V="")
            with contextlib.redirect_stderr(io.StringIO()):
                return MMDataset(args, mode="test")

    def __call__(self, text, audio, vision, *, audio_lengths=None, vision_lengths=None, labels=None, ids=None,
                 missing_rate: float = 0.0) -> np.ndarray:
        """Scores (N,) float32; ``missing_rate`` corrupts the inputs with the benchmark's protocol first."""
        return self.predict_frame(text, audio, vision, audio_lengths=audio_lengths, vision_lengths=vision_lengths,
                                  labels=labels, ids=ids, missing_rate=missing_rate)["prediction"].to_numpy()

    def predict_frame(self, text, audio, vision, *, audio_lengths=None, vision_lengths=None, labels=None, ids=None,
                      missing_rate: float = 0.0) -> pd.DataFrame:
        """id, label (when given), prediction per sample."""
        from .benchmark.evaluate import damaged_dataset, run_do_test
        from .benchmark.grid import Condition

        text, audio, vision = (np.asarray(a, dtype=np.float32) for a in (text, audio, vision))
        audio_lengths = None if audio_lengths is None else np.asarray(audio_lengths).astype(np.int64).reshape(-1)
        vision_lengths = None if vision_lengths is None else np.asarray(vision_lengths).astype(np.int64).reshape(-1)
        self.check_inputs(text, audio, vision, audio_lengths, vision_lengths)
        if not 0.0 <= float(missing_rate) <= 1.0:
            raise ConfigError(f"missing rate {missing_rate} is outside [0, 1]")
        n = len(text)
        split = {"text_bert": text, "audio": audio, "vision": vision, "raw_text": np.asarray([""] * n),
                 "id": np.asarray([str(i) for i in (range(n) if ids is None else ids)]),
                 "regression_labels": np.zeros(n, np.float32) if labels is None else np.asarray(labels, np.float32),
                 "audio_lengths": np.full(n, audio.shape[1]) if audio_lengths is None else audio_lengths,
                 "vision_lengths": np.full(n, vision.shape[1]) if vision_lengths is None else vision_lengths}
        dataset = self._dataset(split)
        trainer = self._trainer(with_metrics=labels is not None)
        damaged = damaged_dataset(dataset, Condition.intra(float(missing_rate)), self.seed,
                                  data_missing=bool(self.args.get("data_missing")))
        loader = torch.utils.data.DataLoader(damaged, batch_size=self.batch_size, shuffle=False, num_workers=0)
        torch.manual_seed(self.seed)
        self.model.eval()
        with contextlib.redirect_stderr(io.StringIO()):  # MMSA's progress bars
            _, columns = run_do_test(self.model, trainer, loader, damaged)
        if columns is None:
            raise DataError(f"run {self.record['run_id']}: the model did not give one prediction per sample")
        frame = pd.DataFrame({"id": columns["id"], "prediction": columns["prediction"]})
        if labels is not None:
            frame.insert(1, "label", columns["label"])
        return frame

    def _trainer(self, with_metrics: bool):
        from . import runner

        trainer = runner.build_trainer(self.args)
        if hasattr(trainer, "args") and "test_missing_rate" in trainer.args:
            trainer.args["test_missing_rate"] = 0.0
        if not with_metrics:  # no labels: MMSA's metrics of dummy labels would only warn
            trainer.metrics = lambda pred, true: {}
        return trainer

    def predict_features(self, features, split: str = "test", missing_rate: float = 0.0) -> pd.DataFrame:
        """Predictions for one split of an MMSA-format feature pickle (a path or the loaded dict)."""
        data = features
        if not isinstance(features, Mapping):
            try:
                with open(features, "rb") as f:
                    data = pickle.load(f)
            except FileNotFoundError:
                raise DataError(f"feature file {features} not found: pass an MMSA-format pickle") from None
            except Exception as exc:  # a corrupt pickle can raise almost anything
                raise DataError(f"cannot read feature file {features} ({type(exc).__name__}: {exc}): pass an "
                                f"MMSA-format pickle") from None
        if not isinstance(data, Mapping) or split not in data or not isinstance(data[split], Mapping):
            present = sorted(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
            raise DataError(f"feature file {features} has no split '{split}' (found {present}): pass --split")
        part = data[split]
        missing = [k for k in ("text_bert", "audio", "vision") if k not in part]
        if missing:
            raise DataError(f"split '{split}' of {features} lacks {', '.join(missing)} (MMSA's keys; text must be "
                            f"BERT input, text_bert)")
        labels = part.get("regression_labels")
        return self.predict_frame(part["text_bert"], part["audio"], part["vision"],
                                  audio_lengths=part.get("audio_lengths"), vision_lengths=part.get("vision_lengths"),
                                  labels=None if labels is None else np.asarray(labels).reshape(-1),
                                  ids=part.get("id"), missing_rate=missing_rate)


def load_run(path_or_run_id, *, config=None, pretrained=None, device: str = "cpu", search: Sequence = ("results",),
             batch_size: Optional[int] = None) -> Predictor:
    """A :class:`Predictor` for a finished run folder (or run id under ``search``), or for a ``.pth``
    saved by ``MMSA_run`` (with ``config``, see the module docstring).

    ``pretrained``: the BERT directory, if not the one recorded in the run (it must have the same
    architecture). ``batch_size``: default the run's (as the benchmark evaluates; results match a
    stored evaluation exactly only with it).
    """
    from easydict import EasyDict

    from . import runner

    weights = Path(str(path_or_run_id)).expanduser()
    if weights.suffix == ".pth":
        if not weights.is_file():
            raise ConfigError(f"no weights file {weights}: pass the .pth MMSA_run saved (model_save_dir)")
        from .saved_weights import load_weights

        return load_weights(weights, config, pretrained, device, batch_size)
    run_dir = find_run(path_or_run_id, search)
    from .benchmark.store import read_json

    record = read_json(run_dir / "training.json")
    checkpoint = run_dir / "model.pth"
    if record is not None and not checkpoint.is_file() and record.get("checkpoint_dropped"):
        raise ConfigError(f"run {run_dir} has no checkpoint: it was dropped (--checkpoints drop); remove the run "
                          f"folder and rerun its benchmark command with --checkpoints keep to train it again")
    if record is None or not checkpoint.is_file():
        what = "training.json" if record is None else "model.pth"
        raise ConfigError(f"run {run_dir} is not finished (no {what}): rerun the benchmark command that started it")
    args = EasyDict(record["args"])
    args.pretrained = _check_bert(args.get("pretrained"), None if pretrained is None else str(pretrained))
    args.device = runner.resolve_device(device)
    args.model_save_path = checkpoint
    torch.manual_seed(int(record["seed"]))
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            model = runner.build_model(args)
        model = runner.load_checkpoint(model, args)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ConfigError(f"checkpoint of run {run_dir.name} does not fit the model built with BERT directory "
                          f"{args.pretrained} ({first}): pass the BERT the run was trained with") from None
    model.eval()
    if batch_size is None:  # the batch size the benchmark evaluated this run with
        stored = [read_json(p) for p in sorted((run_dir / "evals").glob("*.json"))]
        sizes = [r["eval_batch_size"] for r in stored if r and r.get("training_id") == record.get("training_id")
                 and r.get("eval_batch_size")]
        batch_size = sizes[0] if sizes else args.get("batch_size") or 32
    return Predictor(run_dir, record, args, model, int(batch_size))


__all__ = ["load_run", "find_run", "Predictor"]
