"""The report's figures as PNG files (matplotlib's object API: no pyplot, no global state).

Speedups are drawn on a log axis, where 2x faster and 2x slower are equally far from 1. A
speedup of 0 (the arm missed the target) or inf (only the baseline missed) cannot sit on a log
axis: it is drawn at the axis edge as a triangle pointing off the plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from step7bench.analysis.checks import ControlComparison
from step7bench.analysis.claims import CumulativeRow
from step7bench.analysis.metrics import get_metric
from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import BASELINE_ARM, SpeedupEstimate

DPI = 110
SPEEDUP_LIMITS = (1 / 64, 64)  # log axis range; speedups beyond are drawn at the edge
CURVE_METRICS = ("steps", "flops", "wall_s", "energy_j")
FOREST_METRICS = ("steps", "flops", "device_hours")
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")


@dataclass(frozen=True)
class FigureFile:
    """A written figure: its file and what it shows (used as alt text and caption)."""

    path: Path
    caption: str


def write_figures(analysis: Analysis, folder: Path) -> dict[str, FigureFile]:
    """Draw every figure of the report into `folder`; keys name the figures."""
    folder.mkdir(parents=True, exist_ok=True)
    trials, curves = analysis.results.trials, analysis.results.curves
    workloads = sorted(trials["workload"].unique())
    figures = {
        "forest": (_forest(analysis, workloads),
                   "Speedup of each arm over the baseline (median, 95% interval; x: claimed factor)"),
        "cumulative": (_cumulative(analysis.cumulative, workloads),
                       "The seed's cumulative table: claimed vs each stack measured directly"),
        "curves": (_curves(trials, curves, workloads),
                   "Validation loss against cost, one line per trial, dashed: the target"),
        "controls": (_controls(analysis.controls, workloads),
                     "Each data technique and its random control, speedup over the baseline"),
        "cost_breakdown": (_cost_breakdown(trials, workloads),
                           "Where the wall-clock went (median trial of each arm)"),
        "energy": (_energy(trials, workloads), "Energy and device-hours to the target (median trial of each arm)"),
    }
    written = {}
    for name, (figure, caption) in figures.items():
        if figure is None:
            continue
        path = folder / f"{name}.png"
        FigureCanvasAgg(figure).print_png(str(path))
        written[name] = FigureFile(path, caption)
    return written


def _grid(rows: int, columns: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(width * columns, height * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


ARM_LABEL_WIDTH = 34  # characters per line of an arm's name on an axis


def _label(arm: str) -> str:
    """An arm's name wrapped at its '+' so a stack of eight techniques does not squash the axes."""
    lines, line = [], ""
    for part in arm.split("+"):
        candidate = f"{line}+{part}" if line else part
        if line and len(candidate) > ARM_LABEL_WIDTH:
            lines.append(line + "+")
            line = part
        else:
            line = candidate
    return "\n".join([*lines, line])


def _arm_colors(arms: Sequence[str]) -> dict[str, str]:
    return {arm: COLORS[i % len(COLORS)] for i, arm in enumerate(arms)}


def _clip(value: float) -> tuple[float, str | None]:
    """A speedup placed on the log axis, and the marker for one pushed to an edge."""
    low, high = SPEEDUP_LIMITS
    if value <= low:
        return low, "<"
    if value >= high:
        return high, ">"
    return value, None


def _speedup_axis(axes: Axes) -> None:
    axes.set_xscale("log", base=2)
    axes.set_xlim(*SPEEDUP_LIMITS)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.grid(axis="x", alpha=0.3)


# -- forest plot ---------------------------------------------------------------------------


def _forest(analysis: Analysis, workloads: list[str]) -> Figure | None:
    by_key = {(e.workload, e.arm, e.metric, e.accounting): e for e in analysis.estimates}
    claimed = {(c.workload, frozenset(c.techniques)): c.claimed for c in analysis.claims if c.kind != "target"}
    arms = _ordered_arms(analysis.estimates)
    if not arms:
        return None
    figure, axes = _grid(len(workloads), len(FOREST_METRICS), 4.6, 0.42 * len(arms) + 1.2)
    for row, workload in enumerate(workloads):
        for column, name in enumerate(FOREST_METRICS):
            metric = get_metric(name)
            accounting = "all_in" if metric.pretrain_column else "finetune"
            ax = axes[row, column]
            for y, arm in enumerate(arms):
                found = by_key.get((workload, arm, name, accounting))
                if found is not None:
                    _forest_row(ax, y, found)
                mark = claimed.get((workload, frozenset(found.techniques))) if found else None
                if mark is not None:
                    ax.plot(mark, y, marker="x", color="#c0392b", markersize=8, zorder=3)
            ax.set_yticks(range(len(arms)), [_label(a) for a in arms] if column == 0 else [""] * len(arms), fontsize=7)
            ax.invert_yaxis()
            _speedup_axis(ax)
            ax.set_title(f"{workload}: {metric.label} ({accounting.replace('_', '-')})", fontsize=9)
    return figure


def _ordered_arms(estimates: Sequence[SpeedupEstimate]) -> list[str]:
    return list(dict.fromkeys(e.arm for e in estimates if e.arm != BASELINE_ARM))


def _forest_row(ax: Axes, y: float, found: SpeedupEstimate) -> None:
    centre, edge = _clip(found.point)
    low, _ = _clip(found.interval.low)
    high, _ = _clip(found.interval.high)
    ax.hlines(y, low, high, color="#34495e", linewidth=1.6)
    ax.plot(centre, y, marker=edge or "o", color="#34495e", markersize=5)


# -- cumulative table --------------------------------------------------------------------


def _cumulative(rows: Sequence[CumulativeRow], workloads: list[str]) -> Figure | None:
    if not rows:
        return None
    figure, axes = _grid(1, len(workloads), 5.0, 3.4)
    for column, workload in enumerate(workloads):
        ax = axes[0, column]
        mine = [row for row in rows if row.workload == workload]
        x = np.arange(len(mine))
        ax.plot(x, [row.claimed for row in mine], marker="s", color="#c0392b", label="claimed")
        for i, row in enumerate(mine):
            if row.measured is None:
                continue
            centre = _clip(row.measured.point)[0]
            low, high = _clip(row.measured.interval.low)[0], _clip(row.measured.interval.high)[0]
            ax.vlines(i, low, high, color="#2c3e50")
            ax.plot(i, centre, marker="o", color="#2c3e50", label="measured" if i == 0 else None)
            if row.product_alone is not None:
                ax.plot(i, _clip(row.product_alone)[0], marker="d", color="#7f8c8d", fillstyle="none",
                        label="product of alone" if i == 0 else None)
        ax.set_yscale("log", base=2)
        ax.set_ylim(*SPEEDUP_LIMITS)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(x, [_short(row.name) for row in mine], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("cumulative speedup")
        ax.set_title(workload, fontsize=9)
        ax.legend(fontsize=7)
    return figure


def _short(name: str) -> str:
    return name.split(":", 1)[-1].strip()


# -- loss against cost -------------------------------------------------------------------


def _curves(trials: pd.DataFrame, curves: pd.DataFrame, workloads: list[str]) -> Figure | None:
    if curves.empty:
        return None
    figure, axes = _grid(len(workloads), len(CURVE_METRICS), 3.6, 2.9)
    for row, workload in enumerate(workloads):
        mine = trials[(trials["workload"] == workload) & (trials["status"] != "failed")]
        colors = _arm_colors(list(dict.fromkeys(mine["arm"])))
        joined = curves.merge(mine[["trial_id", "arm"]], on="trial_id")
        for column, name in enumerate(CURVE_METRICS):
            metric = get_metric(name)
            ax = axes[row, column]
            for (trial_id, arm), points in joined.groupby(["trial_id", "arm"], sort=False):
                ax.plot(points[metric.column] * metric.scale, points["val_loss"], color=colors[arm], linewidth=0.9,
                        alpha=0.8, label=arm)
            target = mine["target_val_loss"].dropna()
            if not target.empty:
                ax.axhline(float(target.iloc[0]), color="black", linestyle="--", linewidth=0.9)
            ax.set_xlabel(f"{metric.label} [{metric.unit}]", fontsize=8)
            ax.set_ylabel("validation loss" if column == 0 else "", fontsize=8)
            ax.set_title(workload, fontsize=9)
            ax.tick_params(labelsize=7)
    # One legend for the whole figure, below it: arms are coloured alike in every panel.
    handles, labels = axes[0, 0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    figure.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=3, fontsize=7)
    return figure


# -- technique vs control ----------------------------------------------------------------


def _controls(comparisons: Sequence[ControlComparison], workloads: list[str]) -> Figure | None:
    shown = [c for c in comparisons if c.metric == "steps"]
    if not shown:
        return None
    figure, axes = _grid(1, len(workloads), 4.8, 0.6 * max(len(shown), 2) + 1.2)
    for column, workload in enumerate(workloads):
        ax = axes[0, column]
        mine = [c for c in shown if c.workload == workload]
        for y, comparison in enumerate(mine):
            for offset, found, color, label in ((-0.15, comparison.technique_vs_baseline, "#2980b9", "technique"),
                                                (0.15, comparison.control_vs_baseline, "#95a5a6", "random control")):
                if found is not None:
                    _forest_row_colored(ax, y + offset, found, color, label if y == 0 else None)
        ax.set_yticks(range(len(mine)), [c.technique for c in mine], fontsize=8)
        ax.invert_yaxis()
        _speedup_axis(ax)
        ax.set_title(f"{workload}: speedup in optimizer steps", fontsize=9)
        if mine:
            ax.legend(fontsize=7)
    return figure


def _forest_row_colored(ax: Axes, y: float, found: SpeedupEstimate, color: str, label: str | None) -> None:
    low, high = _clip(found.interval.low)[0], _clip(found.interval.high)[0]
    centre, edge = _clip(found.point)
    ax.hlines(y, low, high, color=color, linewidth=1.6)
    ax.plot(centre, y, marker=edge or "o", color=color, markersize=5, label=label)


# -- cost breakdown and energy -----------------------------------------------------------

BREAKDOWN = (("wall_train_s", "training", "#2c3e50"), ("wall_overhead_s", "technique overhead", "#e67e22"),
             ("wall_pretrain_s", "pretraining", "#8e44ad"), ("wall_eval_s", "evaluation (not cost)", "#bdc3c7"))


def _median_per_arm(trials: pd.DataFrame, workload: str, columns: Sequence[str]) -> pd.DataFrame:
    mine = trials[(trials["workload"] == workload) & (trials["status"] != "failed")]
    order = list(dict.fromkeys(mine["arm"]))
    return mine.groupby("arm")[list(columns)].median().reindex(order)


def _cost_breakdown(trials: pd.DataFrame, workloads: list[str]) -> Figure:
    figure, axes = _grid(1, len(workloads), 6.0, 0.42 * trials["arm"].nunique() + 1.5)
    for column, workload in enumerate(workloads):
        ax = axes[0, column]
        medians = _median_per_arm(trials, workload, [name for name, _, _ in BREAKDOWN])
        left = np.zeros(len(medians))
        for name, label, color in BREAKDOWN:
            values = medians[name].fillna(0).to_numpy(dtype=float)
            ax.barh([_label(a) for a in medians.index], values, left=left, color=color, label=label)
            left += values
        ax.invert_yaxis()
        # Missed trials are in the median at their whole budget: say so rather than imply a cost to target.
        ax.set_xlabel("wall seconds (median trial; missed trials at their whole budget)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(workload, fontsize=9)
        ax.legend(fontsize=7)
    return figure


def _energy(trials: pd.DataFrame, workloads: list[str]) -> Figure:
    figure, axes = _grid(len(workloads), 2, 5.6, 0.42 * trials["arm"].nunique() + 1.5)
    for row, workload in enumerate(workloads):
        medians = _median_per_arm(trials, workload, ["energy_j", "energy_pretrain_j", "device_s", "device_pretrain_s"])
        for column, (metric, pretrain, unit_scale, label) in enumerate(
                (("energy_j", "energy_pretrain_j", 1.0, "energy [J]"),
                 ("device_s", "device_pretrain_s", 1 / 3600, "device-hours"))):
            ax = axes[row, column]
            own = medians[metric].fillna(0).to_numpy(dtype=float) * unit_scale
            extra = medians[pretrain].fillna(0).to_numpy(dtype=float) * unit_scale
            labels = [_label(a) for a in medians.index]
            ax.barh(labels, own, color="#16a085", label="training + overhead")
            ax.barh(labels, extra, left=own, color="#8e44ad", label="pretraining")
            ax.invert_yaxis()
            ax.set_xlabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(f"{workload}: {label}", fontsize=9)
            ax.legend(fontsize=7)
    return figure
