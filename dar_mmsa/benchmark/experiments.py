"""The DAR paper's experiments as sets of training variants (spec ``dar.md`` §6).

An experiment is a list of :class:`Variant`\\ s; each variant is a few config overrides applied on
top of the command's own (``--set``) for every planned (model, dataset, seed), so each variant is
its own training config in the results store (its own config hash): resume, ``--eval-only`` and
the executors apply unchanged, and a variant equal to the defaults (Table 2's "full") reuses a
Table 1 training stored under the same results name.

* ``table1``: one variant, the defaults (the harness's usual run).
* ``ablation`` (Table 2): full DAR and the five ablation switches.
* ``train-rate`` (Table 3): training missing rate k in {0.0, 0.2, 0.4, 0.6, 0.8} (validation is
  corrupted at k too, as in the full model's selection).
* ``recipe``: DAR's training recipe before the CLUB/BERT fixes (``OLD_RECIPE``) against the current one.
* ``club-input``: L_diff's CLUB on scale-free inputs (the default) against the raw features
  (``club_input: raw``, where the estimate tracks feature scale; see ``docs/models.md``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError


@dataclass(frozen=True)
class Variant:
    """One row of an experiment's table: ``key`` (file-safe id), ``label`` (plain text), ``latex``
    (the row name in LaTeX), the config ``overrides``, and ``reported`` (the matching value of the
    paper's CSV, or None)."""

    key: str
    label: str
    overrides: Mapping = field(default_factory=dict)
    latex: Optional[str] = None
    reported: Optional[str] = None


@dataclass(frozen=True)
class Experiment:
    name: str
    variants: Tuple[Variant, ...]
    default_models: Optional[Tuple[str, ...]] = None  # None: the harness's usual defaults
    stem: Optional[str] = None  # output files <stem>.csv/.tex; None: Table 1's reports
    title: str = ""
    row_header: str = "Method"
    reported_file: Optional[str] = None
    reported_column: Optional[str] = None

    @property
    def is_table1(self) -> bool:
        return self.stem is None


def _without(key: str, label: str, latex: str, *switches: str) -> Variant:
    return Variant(key, f"w/o {label}", {s: False for s in switches}, rf"w/o {latex}", f"w/o {label}")


TRAIN_RATES = (0.0, 0.2, 0.4, 0.6, 0.8)

EXPERIMENTS = {
    "table1": Experiment("table1", (Variant("", ""),)),
    "ablation": Experiment(
        "ablation",
        (
            _without("wo-sim", "L_sim", r"$\mathcal{L}_{sim}$", "use_sim_loss"),
            _without("wo-diff", "L_diff", r"$\mathcal{L}_{diff}$", "use_diff_loss"),
            _without("wo-sim-diff", "L_sim & L_diff", r"$\mathcal{L}_{sim}$ \& $\mathcal{L}_{diff}$",
                     "use_sim_loss", "use_diff_loss"),
            _without("wo-recon", "L_recon", r"$\mathcal{L}_{recon}$", "use_recon_loss"),
            _without("wo-boot", "L_boot", r"$\mathcal{L}_{boot}$", "use_boot_loss"),
            Variant("full", "full", {}, "full", "full"),
        ),
        default_models=("dar",), stem="table2_ablation", title="Ablation of the loss terms",
        row_header="Variant", reported_file="dar_table2_ablation_reported.csv", reported_column="variant"),
    "train-rate": Experiment(
        "train-rate",
        tuple(Variant(f"k{k:.1f}", f"k = {k:.1f}", {"train_missing_rate": k}, f"{k:.1f}", f"{k:.1f}")
              for k in TRAIN_RATES),
        default_models=("dar",), stem="table3_train_rate", title="Training missing rate $k$",
        row_header="$k$", reported_file="dar_table3_missing_rate_reported.csv",
        reported_column="train_missing_rate"),
}


def _recipe() -> Experiment:
    from ..models.dar import OLD_RECIPE

    return Experiment("recipe", (Variant("old", "old recipe", dict(OLD_RECIPE), "old recipe"),
                                 Variant("new", "new recipe", {}, "new recipe")),
                      default_models=("dar",), stem="recipe", title="DAR's training recipe, old and new")


EXPERIMENTS["recipe"] = _recipe()
EXPERIMENTS["club-input"] = Experiment(
    "club-input",
    (Variant("raw", "raw CLUB input", {"club_input": "raw"}, "raw CLUB input"),
     Variant("scale-free", "scale-free CLUB input", {}, "scale-free CLUB input")),
    default_models=("dar",), stem="club_input", title="CLUB's input in $\\mathcal{L}_{diff}$, raw and scale-free")
NAMES = tuple(EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment '{name}': choose one of {', '.join(NAMES)}")
    return EXPERIMENTS[name]


def select_variants(experiment: Experiment, keys: Optional[Sequence[str]]) -> Experiment:
    """``experiment`` restricted to the variants named in ``keys`` (in the experiment's order), e.g. to
    run or report part of Table 2 while the rest is still training; ``None`` keeps them all."""
    if keys is None:
        return experiment
    if experiment.is_table1:
        raise ConfigError("--variants selects variants of --experiment ablation, train-rate or recipe; "
                          "Table 1 has none")
    known = [v.key for v in experiment.variants]
    unknown = [k for k in keys if k not in known]
    if unknown or not keys:
        raise ConfigError(f"--variants {' '.join(unknown) or '(none)'}: not a variant of --experiment "
                          f"{experiment.name}; choose from {' '.join(known)}")
    return replace(experiment, variants=tuple(v for v in experiment.variants if v.key in keys))


def check_applicable(experiment: Experiment, model: str, args: Mapping) -> None:
    """Every key a variant overrides must be one of the model's config keys."""
    for variant in experiment.variants:
        missing = [k for k in variant.overrides if k not in args]
        if missing:
            models = " ".join(experiment.default_models or ())
            raise ConfigError(f"--experiment {experiment.name} sets {', '.join(missing)}, which model '{model}' "
                              f"does not have: run it with --models {models}")


def variants_of(experiment: Optional[Experiment]) -> Sequence[Optional[Variant]]:
    """The variants to plan: ``(None,)`` for Table 1 (the command's config as is)."""
    return (None,) if experiment is None or experiment.is_table1 else experiment.variants


def variant_overrides(overrides: Mapping, variant: Optional[Variant]) -> dict:
    """The command's overrides with the variant's on top."""
    return dict(overrides, **(variant.overrides if variant is not None else {}))


__all__ = ["Variant", "Experiment", "EXPERIMENTS", "NAMES", "TRAIN_RATES", "get_experiment", "check_applicable",
           "select_variants", "variant_overrides", "variants_of"]
