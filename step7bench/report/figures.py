"""The report's figures as PNG files (matplotlib's object API: no pyplot, no global state).

Speedups sit on a log2 axis, where 2x faster and 2x slower are equally far from 1, ticked at the
powers of two (0.25×, 0.5×, 1×, 2×, 4×) and limited to what the data need. A miss is censored
data, not a speedup of 0: an arm that missed on every seed is drawn as an arrow "<" at the bound
its misses allow, labelled "missed k/n"; an interval open on one side ends in an arrow at the
axis edge. Nothing is pushed onto the axis spine: the limits leave room for the arrows.

Learning curves are the median over seeds with a band from the lowest to the highest seed (a seed
that stopped keeps its last loss, so the median crosses the target at the median seed's cost to
target), each seed's end marked: a dot where it reached the target, a cross where it missed. The
loss axis is limited to the region around the target, where the crossing is read.

Figures (keys of `write_figures`, and file names): `claims`, `forest`, `cumulative`, `curves` (the
baseline and the stacks), `controls`, `cost_breakdown`, `energy`; per technique and workload
`technique_<technique>_<workload>`, and per technique whose tuning grid varies one number
`tuning_<technique>`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from step7bench.analysis.checks import ControlComparison
from step7bench.analysis.claims import ClaimResult, CumulativeRow
from step7bench.analysis.metrics import get_metric
from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import BASELINE_ARM, SpeedupEstimate
from step7bench.report import display
from step7bench.report.arms import ROLE_LABELS, TechniqueArms, reference_arms, stack_arms, technique_arms

DPI = 100
FONT = 8
CLAIMED = "#c0392b"  # the claimed factor, in every figure
ROLE_COLORS = {"baseline": "#404040", "aa": "#9e9e9e", "tuned": "#1f77b4", "as_specified": "#ff7f0e",
               "control": "#2ca02c"}
KIND_COLORS = {"aa": "#9e9e9e", "positive_control": "#8c564b", "alone": "#1f77b4", "as_specified": "#ff7f0e",
               "control": "#2ca02c", "stack": "#9467bd", "leave_one_out": "#17becf", "pair": "#bcbd22",
               "cumulative": "#e377c2"}
# Distinct hues, dark first: a panel holds at most a handful of arms, and no two share a colour.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
           "#636363", "#de9ed6")
FOREST_METRICS = ("steps", "flops", "device_hours")
EDGE_LOG2 = 0.6  # room (in log2) beyond the data on a speedup axis, for arrows and labels
SPAN_LOG2 = 3.0  # an interval end more than 8x beyond every mark runs off the axis in an arrow
LOSS_WINDOW = 1.6  # the loss axis shows up to this multiple of the target (or the highest final loss)
CURVE_POINTS = 120
TECHNIQUE_WIDTH_IN = 6.2  # two abreast on a 1400 px page (the page's CSS assumes 620 px)
CURVE_COLUMNS = {"steps": ("steps", "step"), "flops": ("flops_total",), "device": ("device_s",)}
BREAKDOWN = (("wall_train_s", "training", "#2c3e50"), ("wall_overhead_s", "technique overhead", "#e67e22"),
             ("wall_pretrain_s", "pretraining", "#8e44ad"))
EVALUATION = ("wall_eval_s", "evaluation (not cost)", "#d5d8dc")


@dataclass(frozen=True)
class FigureFile:
    """A written figure: its file and what it shows (used as alt text and caption)."""

    path: Path
    caption: str


def write_figures(analysis: Analysis, folder: Path) -> dict[str, FigureFile]:
    """Draw every figure of the report into `folder`; keys name the figures (module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    trials, curves = analysis.results.trials, Curves(analysis.results.curves)
    workloads = sorted(trials["workload"].unique())
    measured = trials[trials["status"] != "failed"]
    figures: dict[str, tuple[Figure | None, str]] = {
        "claims": (_claims(analysis.claims, workloads),
                   "Each claim: the tuned arm's speedup (geometric mean over seeds, with its interval) on the claim's "
                   "metric against the factor claimed (red ×); hollow: the arm at the seed document's settings"),
        "forest": (_forest(analysis, workloads),
                   "Speedup of every arm over the baseline (geometric mean, interval; red ×: the factor claimed)"),
        "cumulative": (_cumulative(analysis.cumulative, workloads),
                       "The seed's cumulative table: claimed vs each stack measured directly, and the product of "
                       "its techniques' speedups alone"),
        "curves": _stack_curves(measured, curves, workloads),
        "controls": (_controls(analysis.controls, workloads),
                     "Each data technique and its random control: speedup over the baseline in optimizer steps"),
        "cost_breakdown": (_cost_breakdown(same_target(measured), workloads),
                           "Where the wall-clock went: the median trial of each arm (a trial that missed counts its "
                           "whole budget; a positive control trained to another target is left out)"),
        "energy": _energy(same_target(measured), workloads),
    }
    for entry in technique_arms(trials):
        for workload in workloads:  # one figure per workload: side by side on a wide screen, stacked on a narrow one
            figures[technique_figure(entry.technique, workload)] = _technique(entry, measured, curves, [workload])
        figures[f"tuning_{entry.technique}"] = _tuning(entry, analysis, measured)
    written = {}
    for name, (figure, caption) in figures.items():
        if figure is None:
            continue
        path = folder / f"{name}.png"
        FigureCanvasAgg(figure).print_png(str(path))
        written[name] = FigureFile(path, caption)
    for stale in set(folder.glob("*.png")) - {f.path for f in written.values()}:
        stale.unlink()  # a figure of an earlier report of this folder that this one does not draw
    return written


def _grid(rows: int, columns: int, width: float, height: float, **kwargs: Any) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(width * columns, height * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, **kwargs)
    for ax in axes.flat:
        ax.tick_params(labelsize=FONT)
    return figure, axes


ARM_LABEL_WIDTH = 44  # characters per line of an arm's name on an axis


def _label(arm: str, width: int = ARM_LABEL_WIDTH) -> str:
    """An arm's name wrapped at its '+' so a stack of eight techniques does not squash the axes."""
    lines, line = [], ""
    for part in arm.split("+"):
        candidate = f"{line}+{part}" if line else part
        if line and len(candidate) > width:
            lines.append(line + "+")
            line = part
        else:
            line = candidate
    return "\n".join([*lines, line])


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if line and len(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return "\n".join([*lines, line])


# -- speedups on a log2 axis ------------------------------------------------------------------


@dataclass(frozen=True)
class Glyph:
    """How one speedup is drawn. kind: "estimate" (point and interval; an open side is None),
    "below" (the arm missed on every seed: under `bound`), "above" (the baseline missed: over
    `bound`), "undefined" or "absent"."""

    kind: str
    point: float | None = None
    low: float | None = None
    high: float | None = None
    bound: float | None = None
    label: str = ""

    def marks(self) -> list[float]:
        """Where its marks sit: the point or the bound (the axis always holds these)."""
        return [v for v in (self.point, self.bound) if v is not None]

    def ends(self) -> list[float]:
        """Its interval's ends (the axis holds these only within SPAN_LOG2 of the marks)."""
        return [v for v in (self.low, self.high) if v is not None]


def glyph(found: SpeedupEstimate | None) -> Glyph:
    if found is None:
        return Glyph("absent", label=display.NOT_MEASURED)
    if found.n_seeds and found.n_arm_missed == found.n_seeds:
        return Glyph("below", bound=display.missed_bound(found), label=f"missed {found.n_arm_missed}/{found.n_seeds}")
    if math.isinf(found.point):
        return Glyph("above", bound=display.baseline_missed_bound(found),
                     label=f"baseline missed {found.n_reference_missed}/{found.n_seeds}")
    if math.isnan(found.point):  # no point; where misses bound it, the interval's upper end does
        high = found.interval.high
        if found.n_arm_missed and math.isfinite(high) and high > 0:
            return Glyph("below", bound=high, label=f"missed {found.n_arm_missed}/{found.n_seeds}")
        return Glyph("undefined", label=display.UNDEFINED)
    if found.point <= 0:
        bounds = [v for v in found.per_seed_high if math.isfinite(v) and v > 0]
        return Glyph("below", bound=max(bounds) if bounds else None,
                     label=f"missed {found.n_arm_missed}/{found.n_seeds}")
    low, high = found.interval.low, found.interval.high
    return Glyph("estimate", point=found.point, low=low if low > 0 and math.isfinite(low) else None,
                 high=high if math.isfinite(high) else None)


def speedup_limits(marks: Sequence[float], ends: Sequence[float] = ()) -> tuple[float, float]:
    """Limits of a speedup axis holding `marks` (points, bounds, claimed factors) and the interval
    `ends` within SPAN_LOG2 of them (a wider interval runs off the edge in an arrow, so two seeds'
    huge intervals cannot squash every point into the middle), 0.5x-2x at least, with room at both
    edges for the arrows."""
    marks = [v for v in marks if v is not None and math.isfinite(v) and v > 0]
    low, high = min([*marks, 0.5]), max([*marks, 2.0])
    floor, ceiling = low / 2 ** SPAN_LOG2, high * 2 ** SPAN_LOG2
    ends = [v for v in ends if v is not None and math.isfinite(v) and v > 0]
    low, high = min([low, *(v for v in ends if v >= floor)]), max([high, *(v for v in ends if v <= ceiling)])
    low2, high2 = max(math.log2(low) - EDGE_LOG2, -12.0), min(math.log2(high) + EDGE_LOG2, 12.0)
    return 2.0 ** low2, 2.0 ** high2


def _limits(shapes: Sequence[Glyph], extra: Sequence[float] = ()) -> tuple[float, float]:
    return speedup_limits([v for g in shapes for v in g.marks()] + list(extra), [v for g in shapes for v in g.ends()])


def _factor_label(value: float, _position: float = 0) -> str:
    """0.25×, 0.5×, 1×, 2×, 4×; below a quarter as a fraction (1/8×), which stays short."""
    if value >= 0.25:
        return f"{value:g}×"
    return f"1/{round(1 / value)}×"


def speedup_axis(axis: Axis, limits: tuple[float, float], most: int = 7) -> None:
    """A log2 speedup axis ticked at the powers of two within `limits`, labelled 0.25×, 0.5×, 1×...:
    at most `most` labels, 1× among them."""
    low, high = limits
    exponents = list(range(math.ceil(math.log2(low)), math.floor(math.log2(high)) + 1))
    step = math.ceil(len(exponents) / most)
    axis.set_major_locator(FixedLocator([2.0 ** e for e in exponents if e % step == 0]))
    axis.set_major_formatter(FuncFormatter(_factor_label))
    axis.set_minor_locator(NullLocator())


def _speedup_axes(ax: Axes, limits: tuple[float, float], vertical: bool = False, most: int = 7) -> None:
    if vertical:
        ax.set_yscale("log", base=2)
        ax.set_ylim(*limits)
        speedup_axis(ax.yaxis, limits, most)
        ax.axhline(1.0, color="black", linewidth=0.8, zorder=1)
        ax.grid(axis="y", alpha=0.3)
    else:
        ax.set_xscale("log", base=2)
        ax.set_xlim(*limits)
        speedup_axis(ax.xaxis, limits, most)
        ax.axvline(1.0, color="black", linewidth=0.8, zorder=1)
        ax.grid(axis="x", alpha=0.3)


def draw_glyph(ax: Axes, position: float, shape: Glyph, color: str, limits: tuple[float, float],
               vertical: bool = False, marker: str = "o", filled: bool = True, label: str | None = None) -> None:
    """Draw one speedup at `position` on the category axis (y, or x when `vertical`)."""
    edge_low, edge_high = limits[0] * 2 ** (EDGE_LOG2 / 2), limits[1] / 2 ** (EDGE_LOG2 / 2)

    def xy(value: float) -> tuple[float, float]:
        return (position, value) if vertical else (value, position)

    def segment(start: float, end: float, style: str = "-") -> None:
        if vertical:
            ax.vlines(position, start, end, color=color, linewidth=1.6, linestyles=style)
        else:
            ax.hlines(position, start, end, color=color, linewidth=1.6, linestyles=style)

    down, up = ("v", "^") if vertical else ("<", ">")
    face = color if filled else "white"
    text_style = dict(fontsize=FONT - 1, color=color, textcoords="offset points")
    if shape.kind in ("absent", "undefined"):
        ax.annotate(shape.label, xy(edge_low), xytext=(0, 0), ha="center" if vertical else "left",
                    va="bottom" if vertical else "center", color="#666", fontsize=FONT - 1, textcoords="offset points")
        return
    # A censored speedup: a dotted line from the axis edge to the bound and an arrow at the bound,
    # labelled beside the line (away from the claimed mark, which sits on the other side).
    if shape.kind == "below":
        at = shape.bound if shape.bound is not None else edge_low
        segment(edge_low, at, ":")
        ax.plot(*xy(at), marker=down, color=color, markerfacecolor=face, markersize=7, linestyle="none", label=label)
        roomy = math.log2(at / limits[0]) > 1.2  # room for the label over the dotted line
        ax.annotate(shape.label, xy(at), xytext=(6, -4) if vertical else ((-3, 3) if roomy else (6, 3)),
                    ha="left" if vertical or not roomy else "right", va="top" if vertical else "bottom",
                    **text_style)
        return
    if shape.kind == "above":
        at = shape.bound if shape.bound is not None else edge_high
        segment(at, edge_high, ":")
        ax.plot(*xy(at), marker=up, color=color, markerfacecolor=face, markersize=7, linestyle="none", label=label)
        ax.annotate(shape.label, xy(at), xytext=(6, 4) if vertical else (3, 3),
                    ha="left", va="bottom", **text_style)
        return
    # An interval without a bound on a side, or running past the axis, ends in an arrow at the edge.
    open_low = shape.low is None or shape.low < edge_low
    open_high = shape.high is None or shape.high > edge_high
    segment(edge_low if open_low else shape.low, edge_high if open_high else shape.high)
    if open_low:
        ax.plot(*xy(edge_low), marker=down, color=color, markersize=5, linestyle="none")
    if open_high:
        ax.plot(*xy(edge_high), marker=up, color=color, markersize=5, linestyle="none")
    ax.plot(*xy(shape.point), marker=marker, color=color, markerfacecolor=face, markersize=5.5, linestyle="none",
            label=label, zorder=3)


# -- the claims at a glance --------------------------------------------------------------------


def headline_claims(claims: Sequence[ClaimResult]) -> list[ClaimResult]:
    """The claims the page leads with: every claim but the cumulative table's rows (judged in their
    own table), or all of them when the file holds nothing else."""
    lead = [c for c in claims if c.kind != "cumulative"]
    return lead or list(claims)


def _claims(claims: Sequence[ClaimResult], workloads: list[str]) -> Figure | None:
    shown = headline_claims(claims)
    names = list(dict.fromkeys(c.name for c in shown))
    if not names:
        return None
    by_key = {(c.name, c.workload): c for c in shown}
    limits = _limits([glyph(c.measured) for c in shown] + [glyph(c.as_specified) for c in shown],
                     [c.claimed for c in shown])
    figure, axes = _grid(1, len(workloads), 4.2, 0.34 * len(names) + 1.3, sharey=True)
    for column, workload in enumerate(workloads):
        ax = axes[0, column]
        for y, name in enumerate(names):
            result = by_key.get((name, workload))
            if result is None:
                continue
            draw_glyph(ax, y, glyph(result.measured), "#263238", limits)
            if result.as_specified is not None:
                draw_glyph(ax, y + 0.28, glyph(result.as_specified), ROLE_COLORS["as_specified"], limits,
                           filled=False)
            ax.plot(result.claimed, y, marker="x", color=CLAIMED, markersize=8, markeredgewidth=2, zorder=4)
        ax.set_yticks(range(len(names)), [_wrap(n, 28) for n in names], fontsize=FONT)
        ax.set_ylim(len(names) - 0.4, -0.6)
        _speedup_axes(ax, limits, most=6)
        metrics = sorted({get_metric(c.metric).label for c in shown if c.workload == workload})
        ax.set_xlabel(f"speedup ({'; '.join(_short_metric(m) for m in metrics)})", fontsize=FONT)
        ax.set_title(workload, fontsize=FONT + 1)
    figure.legend(handles=[Line2D([], [], color="#263238", marker="o", label="measured (tuned), interval"),
                           Line2D([], [], color=ROLE_COLORS["as_specified"], marker="o", markerfacecolor="white",
                                  label="as specified"),
                           Line2D([], [], color=CLAIMED, marker="x", linestyle="none", markeredgewidth=2,
                                  label="claimed")],
                  loc="outside lower center", ncol=3, fontsize=FONT, frameon=False)
    return figure


def _short_metric(label: str) -> str:
    return label.split(" (")[0]


# -- every arm ---------------------------------------------------------------------------------


def _forest(analysis: Analysis, workloads: list[str]) -> Figure | None:
    by_key = {(e.workload, e.arm, e.metric, e.accounting): e for e in analysis.estimates}
    claimed = {(c.workload, frozenset(c.techniques)): c.claimed for c in analysis.claims if c.kind != "target"}
    arms = list(dict.fromkeys(e.arm for e in analysis.estimates if e.arm != BASELINE_ARM))
    if not arms:
        return None
    metrics = [m for m in FOREST_METRICS if any(e.metric == m for e in analysis.estimates)]
    kinds = {e.arm: e.arm_kind for e in analysis.estimates}
    limits = _limits([glyph(e) for e in analysis.estimates if e.metric in metrics], list(claimed.values()))
    figure, axes = _grid(len(workloads), len(metrics), 4.0, _rows_height([arms]) + 1.1, sharey=True)
    for row, workload in enumerate(workloads):
        for column, name in enumerate(metrics):
            metric = get_metric(name)
            accounting = "all_in" if metric.pretrain_column else "finetune"
            ax = axes[row, column]
            for y, arm in enumerate(arms):
                found = by_key.get((workload, arm, name, accounting))
                if found is None:
                    continue
                draw_glyph(ax, y, glyph(found), KIND_COLORS.get(found.arm_kind, "#34495e"), limits)
                mark = claimed.get((workload, frozenset(found.techniques)))
                if mark is not None and found.arm_kind not in ("control", "as_specified"):
                    ax.plot(mark, y, marker="x", color=CLAIMED, markersize=7, markeredgewidth=1.8, zorder=4)
            ax.set_yticks(range(len(arms)), [_label(a) for a in arms], fontsize=FONT - 1)
            ax.set_ylim(len(arms) - 0.5, -0.5)
            _speedup_axes(ax, limits)
            ax.set_title(f"{workload}: {_short_metric(metric.label)} ({accounting.replace('_', '-')})",
                         fontsize=FONT + 1)
    present = list(dict.fromkeys(kinds[a] for a in arms))
    figure.legend(handles=[Patch(color=KIND_COLORS.get(k, "#34495e"), label=k.replace("_", " ")) for k in present]
                  + [Line2D([], [], color=CLAIMED, marker="x", linestyle="none", label="claimed")],
                  loc="outside lower center", ncol=min(len(present) + 1, 6), fontsize=FONT, frameon=False)
    return figure


# -- the cumulative table ----------------------------------------------------------------------


def _cumulative(rows: Sequence[CumulativeRow], workloads: list[str]) -> Figure | None:
    if not rows:
        return None
    present = [w for w in workloads if any(r.workload == w for r in rows)]
    limits = _limits([glyph(r.measured) for r in rows],
                     [r.claimed for r in rows] + [r.product_alone for r in rows if r.product_alone])
    width = max(4.2, 1.1 * max(sum(r.workload == w for r in rows) for w in present) + 1.2)
    figure, axes = _grid(1, len(present), width, 3.4)
    for column, workload in enumerate(present):
        ax = axes[0, column]
        mine = [row for row in rows if row.workload == workload]
        x = np.arange(len(mine))
        ax.plot(x, [row.claimed for row in mine], marker="s", color=CLAIMED, linewidth=1.2, zorder=2)
        for i, row in enumerate(mine):
            draw_glyph(ax, i, glyph(row.measured), "#263238", limits, vertical=True)
            if row.product_alone is not None and row.product_alone > 0 and math.isfinite(row.product_alone):
                ax.plot(i + 0.18, row.product_alone, marker="D", color="#7f8c8d", markerfacecolor="white",
                        markersize=5, linestyle="none")
        _speedup_axes(ax, limits, vertical=True)
        ax.set_xlim(-0.6, len(mine) - 0.4)
        ax.set_xticks(x, [_wrap(_short(row.name), 16) for row in mine], fontsize=FONT - 1)
        ax.set_ylabel("speedup over the baseline", fontsize=FONT)
        ax.set_title(workload, fontsize=FONT + 1)
    figure.legend(handles=[Line2D([], [], color=CLAIMED, marker="s", label="claimed"),
                           Line2D([], [], color="#263238", marker="o", label="measured stack, interval"),
                           Line2D([], [], color="#7f8c8d", marker="D", markerfacecolor="white", linestyle="none",
                                  label="product of alone")],
                  loc="outside lower center", ncol=3, fontsize=FONT, frameon=False)
    return figure


def _short(name: str) -> str:
    return name.split(":", 1)[-1].strip()


# -- technique vs control ----------------------------------------------------------------------


def _controls(comparisons: Sequence[ControlComparison], workloads: list[str]) -> Figure | None:
    shown = [c for c in comparisons if c.metric == "steps"]
    if not shown:
        return None
    present = [w for w in workloads if any(c.workload == w for c in shown)]
    techniques = list(dict.fromkeys(c.technique for c in shown))
    limits = _limits([glyph(found) for c in shown for found in (c.technique_vs_baseline, c.control_vs_baseline)])
    figure, axes = _grid(1, len(present), 4.6, 0.55 * len(techniques) + 1.3, sharey=True)
    for column, workload in enumerate(present):
        ax = axes[0, column]
        for y, technique in enumerate(techniques):
            found = next((c for c in shown if c.workload == workload and c.technique == technique), None)
            if found is None:
                continue
            draw_glyph(ax, y - 0.15, glyph(found.technique_vs_baseline), ROLE_COLORS["tuned"], limits)
            draw_glyph(ax, y + 0.15, glyph(found.control_vs_baseline), ROLE_COLORS["control"], limits, marker="s")
        ax.set_yticks(range(len(techniques)), techniques, fontsize=FONT)
        ax.set_ylim(len(techniques) - 0.5, -0.5)
        _speedup_axes(ax, limits)
        ax.set_xlabel("speedup over the baseline (optimizer steps)", fontsize=FONT)
        ax.set_title(workload, fontsize=FONT + 1)
    figure.legend(handles=[Line2D([], [], color=ROLE_COLORS["tuned"], marker="o", label="technique"),
                           Line2D([], [], color=ROLE_COLORS["control"], marker="s", label="its random control")],
                  loc="outside lower center", ncol=2, fontsize=FONT, frameon=False)
    return figure


# -- learning curves ---------------------------------------------------------------------------


class Curves:
    """The curves table indexed by trial, so each arm's band reads its trials' rows directly."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._rows = {key: np.asarray(rows) for key, rows in frame.groupby("trial_id", sort=False).indices.items()} \
            if len(frame) else {}
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, column: str) -> np.ndarray:
        if column not in self._arrays:
            self._arrays[column] = pd.to_numeric(self.frame[column], errors="coerce").to_numpy(dtype=float)
        return self._arrays[column]

    def column(self, axis: str) -> str | None:
        """The first of the axis's columns the curves record."""
        for column in CURVE_COLUMNS[axis]:
            if column in self.frame and np.isfinite(self.array(column)).any():
                return column
        return None

    def points(self, trial_id: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows.get(trial_id, np.array([], dtype=int))
        return self.array(column)[rows], self.array("val_loss")[rows]

    def largest(self, trial_ids: Sequence[str], column: str) -> float:
        rows = [self._rows[t] for t in trial_ids if t in self._rows]
        values = self.array(column)[np.concatenate(rows)] if rows else np.array([])
        values = values[np.isfinite(values)]
        return float(values.max()) if values.size else 0.0


@dataclass(frozen=True)
class Band:
    """An arm's learning curves over seeds: the median and the band from the lowest to the highest
    seed (a seed that stopped keeps its last loss), and each seed's end (x, loss, reached)."""

    x: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    ends: list[tuple[float, float, bool]]


def band(trials: pd.DataFrame, curves: Curves, column: str, scale: float = 1.0) -> Band | None:
    series, ends = [], []
    for trial_id, status in zip(trials["trial_id"], trials["status"]):
        x, y = curves.points(trial_id, column)
        keep = np.isfinite(x) & np.isfinite(y)
        if not keep.any():
            continue
        x, y = x[keep] * scale, y[keep]
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        series.append((x, y))
        ends.append((float(x[-1]), float(y[-1]), status == "reached"))
    if not series:
        return None
    start = min(float(x[0]) for x, _ in series)
    stop = max(float(x[-1]) for x, _ in series)
    grid = np.linspace(start, stop, CURVE_POINTS) if stop > start else np.array([start])
    values = np.full((len(series), grid.size), np.nan)
    for i, (x, y) in enumerate(series):
        # After its last check a seed keeps its last loss (it stopped at the target, or at its budget):
        # the median then crosses the target at the median seed's cost to target.
        started = grid >= x[0]
        values[i, started] = np.interp(grid[started], x, y)
    counts = np.isfinite(values).sum(axis=0)
    median = np.full(grid.size, np.nan)
    low, high = np.full(grid.size, np.nan), np.full(grid.size, np.nan)
    enough = counts >= max(1, math.ceil(len(series) / 2))
    if enough.any():
        median[enough] = np.nanmedian(values[:, enough], axis=0)
    spread = counts >= 2
    if spread.any():
        low[spread] = np.where(np.isfinite(values[:, spread]), values[:, spread], np.inf).min(axis=0)
        high[spread] = np.where(np.isfinite(values[:, spread]), values[:, spread], -np.inf).max(axis=0)
    return Band(grid, median, low, high, ends)


def loss_limits(target: float | None, bands: Sequence[Band]) -> tuple[float, float] | None:
    """The loss axis: from just under the lowest loss (or the target) up to LOSS_WINDOW x the
    target, raised to hold every seed's final loss, never above the highest loss drawn."""
    losses = np.concatenate([b.median[np.isfinite(b.median)] for b in bands] +
                            [b.low[np.isfinite(b.low)] for b in bands] + [np.array([e[1] for b in bands
                                                                                   for e in b.ends])])
    losses = losses[np.isfinite(losses)]
    if not losses.size:
        return None
    lowest, highest = float(losses.min()), float(losses.max())
    finals = [e[1] for b in bands for e in b.ends if math.isfinite(e[1])]
    if target is not None and math.isfinite(target) and target > 0:
        top = max(target * LOSS_WINDOW, max(finals, default=target) * 1.05)
        bottom = min(lowest, target)
    else:
        top, bottom = float(np.quantile(losses, 0.9)), lowest
    top = min(top, highest) if highest > bottom else bottom + 1.0
    span = max(top - bottom, 1e-9)
    return bottom - 0.06 * span, top + 0.03 * span


def _draw_band(ax: Axes, found: Band, color: str, label: str, dashed: bool = False) -> None:
    ax.fill_between(found.x, found.low, found.high, color=color, alpha=0.15, linewidth=0)
    ax.plot(found.x, found.median, color=color, linewidth=1.6, linestyle="--" if dashed else "-", label=label)
    ends = np.array([(x, y) for x, y, reached in found.ends if reached])
    if ends.size:
        ax.plot(ends[:, 0], ends[:, 1], marker="o", markersize=3.5, color=color, linestyle="none")
    ends = np.array([(x, y) for x, y, reached in found.ends if not reached])
    if ends.size:
        ax.plot(ends[:, 0], ends[:, 1], marker="x", markersize=6, markeredgewidth=1.5, color=color,
                linestyle="none")


@dataclass(frozen=True)
class CostAxis:
    """An x axis of cost: the curves' column, its scale to the shown unit, its label and ticks."""

    column: str
    scale: float
    label: str
    formatter: Callable[[float, float], str]


def cost_axis(axis: str, curves: Curves, trial_ids: Sequence[str] | None = None) -> CostAxis | None:
    """The x axis of `axis` ("steps", "flops", "device"), its unit chosen for `trial_ids` (all: None)."""
    column = curves.column(axis)
    if column is None:
        return None
    if axis == "steps":
        return CostAxis(column, 1.0, "optimizer steps", lambda v, _: f"{v:,.0f}")
    if axis == "flops":
        return CostAxis(column, 1.0, "FLOPs", lambda v, _: display.prefixed(v))
    largest = curves.largest(list(curves._rows) if trial_ids is None else trial_ids, column)
    unit, scale = display.time_unit(largest)
    return CostAxis(column, 1 / scale, f"device time [{unit}]", lambda v, _: f"{v:g}")


def _curves_panel(ax: Axes, lines: Sequence[tuple[Band, str, str, bool]], target: float | None,
                  cost: CostAxis) -> None:
    for found, color, label, dashed in lines:
        _draw_band(ax, found, color, label, dashed)
    limits = loss_limits(target, [line[0] for line in lines])
    if limits is not None:
        ax.set_ylim(*limits)
    if target is not None and math.isfinite(target):
        ax.axhline(target, color="black", linestyle=(0, (4, 3)), linewidth=0.9, zorder=1)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(cost.formatter))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.set_xlabel(cost.label, fontsize=FONT)
    ax.set_ylabel("validation loss", fontsize=FONT)


def _target(trials: pd.DataFrame) -> float | None:
    """The workload's target: the baseline's (a positive control may train to a weaker one)."""
    baseline = trials.loc[trials["arm"] == BASELINE_ARM, "target_val_loss"].dropna()
    targets = baseline if not baseline.empty else trials["target_val_loss"].dropna()
    return float(targets.median()) if not targets.empty else None


def same_target(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that trained to their workload's target (the baseline's): only their costs compare."""
    keep = pd.Series(True, index=trials.index)
    for workload, mine in trials.groupby("workload"):
        target = _target(mine)
        if target is not None:
            keep[mine.index] = np.isclose(mine["target_val_loss"].astype(float), target) | \
                mine["target_val_loss"].isna()
    return trials[keep]


def _stack_curves(trials: pd.DataFrame, curves: Curves,
                  workloads: list[str]) -> tuple[Figure | None, str]:
    """The baseline against every arm of several techniques, grouped by kind; the baseline and the
    A/A arm where the suite ran no stack."""
    caption = ("Validation loss against optimizer steps: median over seeds, band from the lowest to the highest "
               "seed; dot: a seed reached the target, cross: it missed; dashed: the target. Finetuning only: "
               "pretraining is not on these axes")
    cost = cost_axis("steps", curves)
    if cost is None:
        return None, caption
    groups: dict[str, dict[str, list[str]]] = {}
    for workload in workloads:
        mine: dict[str, list[str]] = {}
        for info in stack_arms(trials, workload):
            group = {"leave_one_out": "leave one out", "pair": "pairs"}.get(info.kind, "stacks")
            mine.setdefault(group, []).append(info.arm)
        groups[workload] = mine
    names = [g for g in ("stacks", "leave one out", "pairs") if any(g in m for m in groups.values())]
    if not names:
        names = ["baseline and A/A"]
        caption = caption.replace("Validation loss", "The baseline and the A/A arm (the baseline on other seeds): "
                                  "validation loss", 1)
    figure, axes = _grid(len(workloads), len(names), 4.4, 3.2)
    for row, workload in enumerate(workloads):
        mine = trials[trials["workload"] == workload]
        target = _target(mine)
        for column, name in enumerate(names):
            ax = axes[row, column]
            arms = reference_arms(trials, workload) if name == "baseline and A/A" else (
                [BASELINE_ARM] if BASELINE_ARM in set(mine["arm"]) else []) + groups[workload].get(name, [])
            lines = []
            for i, arm in enumerate(arms):
                found = band(mine[mine["arm"] == arm], curves, cost.column, cost.scale)
                if found is None:
                    continue
                color = ROLE_COLORS.get(arm, PALETTE[(i - 1) % len(PALETTE)])
                lines.append((found, color, _label(arm, 40), False))
            if not lines:
                ax.set_axis_off()
                continue
            _curves_panel(ax, lines, target, cost)
            ax.set_title(f"{workload}: {name}", fontsize=FONT + 1)
            ax.legend(fontsize=FONT - 1, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    return figure, caption


# -- one technique -----------------------------------------------------------------------------


def technique_figure(technique: str, workload: str) -> str:
    """The key (and file name) of a technique's figure on one workload."""
    return f"technique_{technique}_{workload}"


def _technique(entry: TechniqueArms, trials: pd.DataFrame, curves: Curves,
               workloads: list[str]) -> tuple[Figure | None, str]:
    """Per workload: loss against steps and against device time (the technique's arms beside the
    baseline), and below them where each arm's wall-clock went. Two panels abreast, so the figure
    reads at its own size on a narrow screen."""
    present = [w for w in workloads if set(entry.arms(w)) - {"baseline"}]
    caption = (f"{entry.technique} on {', '.join(present) or ', '.join(workloads)}: validation loss against cost "
               "and where the wall-clock went")
    kinds = [kind for kind in ("steps", "device") if curves.column(kind) is not None]
    if not present:
        return None, caption
    bar_heights = [0.3 * len(entry.arms(w)) + 0.9 for w in present]
    heights = [h for w, bars in zip(present, bar_heights) for h in ((2.7, bars) if kinds else (bars,))]
    figure = Figure(figsize=(TECHNIQUE_WIDTH_IN, sum(heights) + 0.5), dpi=DPI, layout="constrained")
    grid = figure.add_gridspec(len(heights), 2, height_ratios=heights)
    row = 0
    for workload in present:
        arms = entry.arms(workload)
        mine = trials[trials["workload"] == workload]
        target = _target(mine)
        if kinds:
            for column, kind in enumerate(kinds):
                ax = figure.add_subplot(grid[row, column])
                ax.tick_params(labelsize=FONT)
                cost = cost_axis(kind, curves, list(mine["trial_id"]))
                lines = []
                for role, arm in arms.items():
                    found = band(mine[mine["arm"] == arm], curves, cost.column, cost.scale) if cost else None
                    if found is not None:
                        lines.append((found, ROLE_COLORS[role], ROLE_LABELS[role], role == "as_specified"))
                if not lines or cost is None:
                    ax.set_axis_off()
                    continue
                _curves_panel(ax, lines, target, cost)
                ax.set_title(f"{workload}: loss against {cost.label.split(' [')[0]}", fontsize=FONT + 1)
            row += 1
        ax = figure.add_subplot(grid[row, :])
        ax.tick_params(labelsize=FONT)
        _cost_bars(ax, mine, list(arms.values()), [ROLE_LABELS[r] for r in arms])
        ax.set_title(f"{workload}: where the wall-clock went", fontsize=FONT + 1)
        row += 1
    roles = list(dict.fromkeys(role for w in present for role in entry.arms(w)))
    handles = [Line2D([], [], color=ROLE_COLORS[r], linestyle="--" if r == "as_specified" else "-",
                      label=ROLE_LABELS[r]) for r in roles]
    handles += [Line2D([], [], color="black", linestyle=(0, (4, 3)), label="target"),
                Line2D([], [], color="#555", marker="o", markersize=3.5, linestyle="none", label="reached"),
                Line2D([], [], color="#555", marker="x", linestyle="none", label="missed")]
    handles += [Patch(color=color, label=label) for _, label, color in (*BREAKDOWN, EVALUATION)]
    figure.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=FONT - 1, frameon=False)
    return figure, caption


# -- tuning over a grid ------------------------------------------------------------------------


def tuning_records(analysis: Analysis, technique: str) -> list[dict[str, Any]]:
    """The calibration's [[tuning]] records of `technique`, one per workload/preset."""
    records = []
    for entry in analysis.results.calibration.values():
        for record in (entry or {}).get("tuning") or []:
            if isinstance(record, dict) and record.get("technique") == technique and record.get("grid"):
                records.append(record)
    return records


def varying_key(grid: Sequence[dict[str, Any]]) -> str | None:
    """The numeric setting a tuning grid varies over the most values (at least three), if any."""
    counts: dict[str, set[float]] = {}
    for point in grid:
        for key, value in (point.get("settings") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                counts.setdefault(key, set()).add(float(value))
    best = max(counts, key=lambda k: len(counts[k]), default=None)
    return best if best is not None and len(counts[best]) >= 3 else None


def _tuning(entry: TechniqueArms, analysis: Analysis, trials: pd.DataFrame) -> tuple[Figure | None, str]:
    """Per workload, the tuning grid's median all-in cost over the setting it varies most, where
    it varies a number over three points or more (transfer: the pretraining length)."""
    technique = entry.technique
    records = [r for r in tuning_records(analysis, technique) if varying_key(r["grid"])]
    caption = f"{technique}: tuning on calibration seeds"
    if not records:
        return None, caption
    figure, axes = _grid(1, len(records), 4.4, 3.0)
    for column, record in enumerate(records):
        ax = axes[0, column]
        key = varying_key(record["grid"])
        metric = get_metric(record.get("metric", "device_hours"))
        points = [(p, float(p["settings"][key])) for p in record["grid"] if key in (p.get("settings") or {})]
        # The line joins the points that share every other setting (the most common such set);
        # a point that also changes another setting is drawn apart.
        rest = [json.dumps({k: v for k, v in p["settings"].items() if k != key}, sort_keys=True) for p, _ in points]
        usual = max(set(rest), key=rest.count)
        line = [point for point, r in zip(points, rest) if r == usual]
        extra = [point for point, r in zip(points, rest) if r != usual]
        costs = [float(p["median_cost"]) if p.get("median_cost") is not None else math.inf for p, _ in points]
        finite = [c for c in costs if math.isfinite(c)]
        base = _baseline_cost(trials, record.get("workload"), metric)
        largest = max(finite + ([base] if base else []), default=1.0)
        is_time = metric.column in ("device_s", "wall_s", "wall_train_s")
        unit, scale = display.time_unit(largest) if is_time else ("", 1.0)
        top = (largest / scale) * 1.25
        xs = sorted({x for _, x in points})
        if max(xs) / max(min(xs), 1e-12) >= 8 and min(xs) > 0:
            ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        specified_arm = entry.arms(str(record.get("workload"))).get("as_specified")
        specified = (analysis.results.arm_settings(str(record.get("workload")), specified_arm).get(technique, {})
                     .get(key) if specified_arm else None)
        if isinstance(specified, (int, float)) and not isinstance(specified, bool):
            ax.axvline(float(specified), color=ROLE_COLORS["as_specified"], linestyle=":", linewidth=1.2)
            ax.annotate(f"as specified: {float(specified):.3g}", (float(specified), top * 0.55), xytext=(3, 0),
                        textcoords="offset points", rotation=90, va="center", fontsize=FONT - 1,
                        color=ROLE_COLORS["as_specified"])
        for group, style in ((line, dict(marker="o", linestyle="-", markerfacecolor="#1f77b4")),
                             (extra, dict(marker="s", linestyle="none", markerfacecolor="white"))):
            reached = [(x, float(p["median_cost"]) / scale) for p, x in sorted(group, key=lambda item: item[1])
                       if p.get("median_cost") is not None and math.isfinite(float(p["median_cost"]))]
            if reached:
                ax.plot(*zip(*reached), color="#1f77b4", markersize=5, **style)
            for p, x in group:
                cost = p.get("median_cost")
                if cost is None or not math.isfinite(float(cost)):
                    ax.plot(x, top * 0.97, marker="^", color="#d62728", markersize=7, linestyle="none")
                    ax.annotate("missed", (x, top * 0.97), xytext=(0, -10), textcoords="offset points",
                                ha="center", va="top", fontsize=FONT - 1, color="#d62728")
                else:
                    ax.annotate(f"{p.get('reached', '?')}/{p.get('of', '?')}", (x, float(cost) / scale),
                                xytext=(0, 6), textcoords="offset points", ha="center", fontsize=FONT - 2,
                                color="#555")
        winner = record.get("winner") or {}
        for p, x in points:
            if p["settings"] == winner:
                ax.plot(x, float(p["median_cost"]) / scale, marker="*", color="#f1c40f", markeredgecolor="black",
                        markersize=12, linestyle="none", zorder=4)
        if base:
            ax.axhline(base / scale, color=ROLE_COLORS["baseline"], linestyle=(0, (4, 3)), linewidth=1)
        ax.set_ylim(0, top)
        ax.set_xlabel(key.replace("_", " "), fontsize=FONT)
        label = {"device_s": "device time", "wall_s": "wall-clock"}.get(metric.column, _short_metric(metric.label))
        ax.set_ylabel(f"median {label}, all-in" + (f" [{unit}]" if unit else ""), fontsize=FONT)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if is_time else display.prefixed(v)))
        ax.set_title(f"{record.get('workload')}/{record.get('preset')}", fontsize=FONT + 1)
        handles = [Line2D([], [], color="#1f77b4", marker="o", label=f"grid over {key.replace('_', ' ')}"),
                   Line2D([], [], color="#f1c40f", marker="*", markeredgecolor="black", markersize=10,
                          linestyle="none", label="chosen"),
                   Line2D([], [], color=ROLE_COLORS["baseline"], linestyle=(0, (4, 3)),
                          label="baseline (judged seeds)")]
        if extra:
            handles.append(Line2D([], [], color="#1f77b4", marker="s", markerfacecolor="white", linestyle="none",
                                  label=_wrap("; ".join(display.settings_line({k: v for k, v in p["settings"].items()
                                                                                if k != key}) for p, _ in extra), 40)))
        ax.legend(handles=handles, fontsize=FONT - 1, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  frameon=False, ncol=2)
    caption = (f"{technique}: tuning on calibration seeds, the median all-in cost to the target at each grid point "
               "(pretraining counted; k/n: seeds that reached), the point chosen (star) and the baseline's median on "
               "the judged seeds (dashed)")
    return figure, caption


def _baseline_cost(trials: pd.DataFrame, workload: str | None, metric) -> float | None:
    mine = trials[(trials["workload"] == workload) & (trials["arm"] == BASELINE_ARM) & (trials["status"] == "reached")]
    if mine.empty or metric.column not in mine:
        return None
    cost = mine[metric.column].astype(float)
    if metric.pretrain_column and metric.pretrain_column in mine:
        cost = cost + mine[metric.pretrain_column].fillna(0).astype(float)
    return float(cost.median())


# -- cost breakdown and energy -----------------------------------------------------------------


def _median_per_arm(trials: pd.DataFrame, workload: str, columns: Sequence[str],
                    arms: Sequence[str] | None = None) -> pd.DataFrame:
    mine = trials[(trials["workload"] == workload) & (trials["status"] != "failed")]
    order = list(arms) if arms is not None else list(dict.fromkeys(mine["arm"]))
    present = [c for c in columns if c in mine]
    frame = mine.groupby("arm")[present].median().reindex(order)
    for column in columns:
        if column not in frame:
            frame[column] = 0.0
    return frame


def _cost_bars(ax: Axes, trials: pd.DataFrame, arms: Sequence[str], labels: Sequence[str]) -> str:
    """Stacked horizontal bars of each arm's median wall-clock; returns the unit shown."""
    workload = trials["workload"].iloc[0] if len(trials) else ""
    columns = [name for name, _, _ in (*BREAKDOWN, EVALUATION)]
    medians = _median_per_arm(trials, workload, columns, arms).fillna(0.0)
    largest = float(medians[columns].sum(axis=1).max()) if len(medians) else 0.0
    unit, scale = display.time_unit(largest)
    left = np.zeros(len(medians))
    y = np.arange(len(medians))
    for name, label, color in (*BREAKDOWN, EVALUATION):
        values = medians[name].to_numpy(dtype=float) / scale
        ax.barh(y, values, left=left, color=color, label=label, height=0.6,
                hatch="//" if name == EVALUATION[0] else None, edgecolor="white" if name != EVALUATION[0] else "#999")
        left += values
    ax.set_yticks(y, [_label(label) for label in labels], fontsize=FONT - 1)
    ax.set_ylim(len(medians) - 0.5, -0.5)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    word = {"ms": "milliseconds", "s": "seconds", "min": "minutes", "h": "hours"}[unit]
    ax.set_xlabel(f"wall {word} (median trial; missed trials at their whole budget)", fontsize=FONT - 1)
    return unit


def _rows_height(arm_lists, width: int = ARM_LABEL_WIDTH) -> float:
    """Inches for a panel with one row per arm, every row as tall as the longest wrapped name needs
    (rows are evenly spaced, so one tall name sets them all)."""
    arm_lists = [list(arms) for arms in arm_lists]
    lines = max((_label(a, width).count(chr(10)) + 1 for arms in arm_lists for a in arms), default=1)
    return max((len(arms) for arms in arm_lists), default=1) * max(0.3, 0.12 * lines + 0.08)


def _cost_breakdown(trials: pd.DataFrame, workloads: list[str]) -> Figure:
    """Every arm's median wall-clock, split into training, technique overhead, pretraining and
    evaluation (not cost), one panel per workload."""
    arms_per_workload = {w: list(dict.fromkeys(trials.loc[trials["workload"] == w, "arm"])) for w in workloads}
    figure, axes = _grid(1, len(workloads), 5.6, _rows_height(arms_per_workload.values()) + 1.4)
    for column, workload in enumerate(workloads):
        ax = axes[0, column]
        arms = arms_per_workload[workload]
        _cost_bars(ax, trials[trials["workload"] == workload], arms, arms)
        ax.set_title(workload, fontsize=FONT + 1)
    figure.legend(handles=[Patch(color=color, label=label) for _, label, color in (*BREAKDOWN, EVALUATION)],
                  loc="outside lower center", ncol=4, fontsize=FONT, frameon=False)
    return figure


def energy_is_estimate(trials: pd.DataFrame) -> bool:
    """Whether every trial's energy is the CPU-time estimate (no meter read)."""
    methods = {str(m) for m in trials.get("energy_method", pd.Series(dtype=object)).dropna()}
    return bool(methods) and all("estimate" in m for m in methods)


def _energy(trials: pd.DataFrame, workloads: list[str]) -> tuple[Figure, str]:
    estimate = energy_is_estimate(trials)
    caption = ("Energy and device time to the target, the median trial of each arm (pretraining stacked on top; a "
               "trial that missed counts its whole budget)")
    if estimate:
        caption += (". Every trial's energy here is the CPU-time estimate (CPU seconds times a stated power per "
                    "core), not a measurement: the energy panel is proportional to CPU time and repeats the "
                    "device-time panel")
    columns = ["energy_j", "energy_pretrain_j", "device_s", "device_pretrain_s"]
    arms_per_workload = {w: list(dict.fromkeys(trials.loc[trials["workload"] == w, "arm"])) for w in workloads}
    figure, axes = _grid(len(workloads), 2, 4.8, _rows_height(arms_per_workload.values()) + 1.3)
    for row, workload in enumerate(workloads):
        medians = _median_per_arm(trials, workload, columns).fillna(0.0)
        labels = [_label(a) for a in medians.index]
        for column, (own_name, pretrain_name, kind) in enumerate(
                (("energy_j", "energy_pretrain_j", "energy"), ("device_s", "device_pretrain_s", "device time"))):
            ax = axes[row, column]
            own = medians[own_name].to_numpy(dtype=float)
            extra = medians[pretrain_name].to_numpy(dtype=float)
            largest = float((own + extra).max()) if len(own) else 0.0
            unit, scale = (display.energy_unit(largest) if kind == "energy" else display.time_unit(largest))
            y = np.arange(len(labels))
            ax.barh(y, own / scale, color="#16a085", height=0.6, label="training + overhead")
            ax.barh(y, extra / scale, left=own / scale, color="#8e44ad", height=0.6, label="pretraining")
            ax.set_yticks(y, labels if column == 0 else [""] * len(labels), fontsize=FONT - 1)
            ax.set_ylim(len(labels) - 0.5, -0.5)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_major_locator(MaxNLocator(5))
            suffix = " (estimate ∝ CPU time)" if kind == "energy" and estimate else ""
            ax.set_xlabel(f"{kind} [{'device-' if kind == 'device time' else ''}{unit}]{suffix}", fontsize=FONT)
            ax.set_title(f"{workload}: {kind}", fontsize=FONT + 1)
    figure.legend(handles=[Patch(color="#16a085", label="training + overhead"),
                           Patch(color="#8e44ad", label="pretraining")],
                  loc="outside lower center", ncol=2, fontsize=FONT, frameon=False)
    return figure, caption


__all__ = ["FigureFile", "write_figures", "glyph", "speedup_limits", "band", "loss_limits"]
