"""Figures (PNG and PDF) of the benchmark; matplotlib is an optional extra (``pip install dar_mmsa[plot]``).

* Figure 4 of the DAR paper: Non0 Acc-2 and Acc-5 against the test missing rate, one line per
  model (mean over seeds; shaded +-1 std over seeds only with ``bands``), one row of panels per
  dataset, each model with its own colour, marker and line style, one legend below the panels.
  CH-SIMS's row shows its own counterparts (MMSA's SIMS Acc-2 for Non0 Acc-2).
* The inter-modal figure: the metric per modality subset (grouped bars) and against the random
  whole-modality drop rate (lines), one row per dataset.

Only the object-oriented API is used (no pyplot, no backend switch), so importing or calling
this never changes the user's matplotlib state. Without matplotlib, :func:`matplotlib_available`
is False and the writers return no files.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np
import pandas as pd

from ..benchmark.aggregate import SUBSET_COLUMNS, counterpart
from ..benchmark.disk import writing
from .latex import METRIC_NAMES, PERCENT_METRICS
from .names import dataset_display_name

FIGURE4_METRICS = ("Non0_acc_2", "Mult_acc_5")


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _new_figure(rows: int, cols: int, title: str, legend_rows: int = 0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * cols, 3.4 * rows + 0.25 * legend_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    fig.suptitle(title)
    return fig, axes


def _save(fig, stem: Path) -> List[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        tmp = path.with_name(f".{path.name}.tmp")
        with writing(path):  # a full disk: one line naming the figure (its .tmp is removed by the caller)
            fig.savefig(tmp, dpi=150, format=path.suffix[1:])
        tmp.replace(path)
    return paths


def _scale(metric: str) -> float:
    return 100.0 if metric in PERCENT_METRICS else 1.0


def _datasets(frame: pd.DataFrame) -> List[str]:
    present = set(frame["dataset"])
    return [d for d in ("mosi", "mosei") if d in present] + sorted(present - {"mosi", "mosei"})


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


def line_style(i: int) -> dict:
    """A distinct (colour, marker, line style) per model index, the same in every panel."""
    return {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def _line(ax, x, mean, std, label, style=None, bands=False):
    (line,) = ax.plot(x, mean, markersize=4, linewidth=1.4, label=label, **(style or {"marker": "o"}))
    if bands and std is not None and np.isfinite(std).any():
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.12, linewidth=0)


def _legend_outside(fig, axes, n: int) -> None:
    """One legend for the figure, below the panels (never over a line)."""
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat[1:]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(max(n, 1), 4), fontsize="small",
                   frameon=False)


def figure4(per_cond: pd.DataFrame, stem: Path, *, synthetic: bool,
            metrics: Sequence[str] = FIGURE4_METRICS, bands: bool = False) -> List[Path]:
    """Metric against missing rate (intra-modal conditions with one rate), one row of panels per
    dataset, one legend below them, +-1 std bands over seeds only with ``bands``; returns the files."""
    frame = per_cond[(per_cond["protocol"] == "intra") & per_cond["rate"].notna()]
    if frame.empty:
        return []
    datasets, models = _datasets(frame), list(dict.fromkeys(frame["model"]))
    title = "Robustness to intra-modal missingness" + (" (synthetic data)" if synthetic else "")
    fig, axes = _new_figure(len(datasets), len(metrics), title, legend_rows=-(-len(models) // 4))
    for i, dataset in enumerate(datasets):
        for j, metric in enumerate(counterpart(m, dataset) for m in metrics):
            ax, scale = axes[i, j], _scale(metric)
            for model, group in frame[frame["dataset"] == dataset].groupby("model", sort=False):
                group = group.sort_values("rate")
                std = group[f"{metric}_std"].astype(float).to_numpy() * scale
                _line(ax, group["rate"].astype(float).to_numpy(), group[f"{metric}_mean"].to_numpy() * scale,
                      std, group["display_name"].iloc[0], line_style(models.index(model)), bands)
            ax.set_title(f"{dataset_display_name(dataset)}: {METRIC_NAMES.get(metric, metric)}")
            ax.set_xlabel("test missing rate")
            ax.set_ylabel(METRIC_NAMES.get(metric, metric) + (" (%)" if scale == 100 else ""))
            ax.grid(alpha=0.3)
    _legend_outside(fig, axes, len(models))
    return _save(fig, stem)


def inter_figure(per_cond: pd.DataFrame, stem: Path, *, synthetic: bool, metric: str = "Non0_acc_2",
                 bands: bool = False) -> List[Path]:
    """Metric per modality subset (bars) and against the random drop rate (lines)."""
    frame = per_cond[per_cond["protocol"].isin(["subset", "drop"])]
    if frame.empty:
        return []
    datasets, asked = _datasets(frame), metric
    title = "Robustness to inter-modal missingness" + (" (synthetic data)" if synthetic else "")
    all_models = list(dict.fromkeys(frame["model"]))
    fig, axes = _new_figure(len(datasets), 2, title, legend_rows=-(-len(all_models) // 4))
    for i, dataset in enumerate(datasets):
        metric = counterpart(asked, dataset)
        scale = _scale(metric)
        name = METRIC_NAMES.get(metric, metric) + (" (%)" if scale == 100 else "")
        block = frame[frame["dataset"] == dataset]
        models = list(dict.fromkeys(block["model"]))
        bars, lines = axes[i, 0], axes[i, 1]
        width = 0.8 / max(1, len(models))
        for k, model in enumerate(models):
            rows = block[(block["model"] == model) & (block["protocol"] == "subset")].set_index("label")
            values = [rows[f"{metric}_mean"].get(s, np.nan) * scale for s in SUBSET_COLUMNS]
            display = block.loc[block["model"] == model, "display_name"].iloc[0]
            style = line_style(all_models.index(model))
            bars.bar(np.arange(len(SUBSET_COLUMNS)) + (k - (len(models) - 1) / 2) * width, values, width, label=display,
                     color=style["color"])
            drops = block[(block["model"] == model) & (block["protocol"] == "drop")].sort_values("rate")
            if len(drops):
                _line(lines, drops["rate"].astype(float).to_numpy(), drops[f"{metric}_mean"].to_numpy() * scale,
                      drops[f"{metric}_std"].astype(float).to_numpy() * scale, display, style, bands)
        bars.set_xticks(np.arange(len(SUBSET_COLUMNS)), SUBSET_COLUMNS)
        bars.set_title(f"{dataset_display_name(dataset)}: modalities present")
        bars.set_ylabel(name)
        lines.set_title(f"{dataset_display_name(dataset)}: random whole-modality drop")
        lines.set_xlabel("per-modality drop probability (>= 1 modality kept)")
        lines.set_ylabel(name)
        for ax in (bars, lines):
            ax.grid(alpha=0.3)
    _legend_outside(fig, axes, len(all_models))
    return _save(fig, stem)
