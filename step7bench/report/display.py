"""Numbers as a reader reads them, shared by the page and the figures.

Speedups: a miss is censored data, never a speedup of 0. An arm that missed the target on every
seed reads "missed 3/3 (< 0.75×)": its speedup is below the largest bound its misses allow. A
baseline that missed everywhere reads "baseline missed 3/3 (> 1.3×)". A figure the data do not
define reads "undefined", never ∞.

Units: times in ms, s, min or h and energies in J, kJ or MJ, chosen so the number has one to
three digits before the point; device time in device-seconds, -minutes or -hours, never
0.00005 device-hours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from step7bench.analysis.speedups import SpeedupEstimate
from step7bench.analysis.stats import Interval

UNDEFINED = "undefined"
NOT_MEASURED = "not measured"
ENERGIES = (("mJ", 1e-3), ("J", 1.0), ("kJ", 1e3), ("MJ", 1e6), ("GJ", 1e9))
PREFIXES = (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("E", 1e18))


def factor(value: float | None) -> str:
    """A finite positive speedup or claimed factor: three significant digits, "1.40×"."""
    if value is None or not math.isfinite(value):
        return UNDEFINED
    if value >= 100:
        return f"{value:.0f}×"
    if value >= 10:
        return f"{value:.1f}×"
    if value >= 0.1:
        return f"{value:.2f}×"
    return f"{value:.2g}×"  # never "0.00×": a tiny speedup keeps two significant digits


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if math.isfinite(v) and v > 0]


def missed_bound(found: SpeedupEstimate) -> float | None:
    """When the arm missed on every seed: the largest speedup its misses allow
    (`SpeedupEstimate.upper_bound`), else None."""
    bound = found.upper_bound
    return bound if math.isfinite(bound) and bound > 0 else None


def baseline_missed_bound(found: SpeedupEstimate) -> float | None:
    """When only the reference missed on every informative seed (speedup above every bound): the
    smallest speedup those seeds allow, else None."""
    if not math.isinf(found.point) or found.point < 0:
        return None
    bounds = _finite(found.per_seed_low)
    return min(bounds) if bounds else None


def speedup(found: SpeedupEstimate | None) -> str:
    """The speedup as read: "0.57×", "missed 3/3 (< 0.75×)", "baseline missed 2/2 (> 1.3×)",
    "missed 8/9" (one exact seed: no point, an interval from the sign test), "undefined" or
    "not measured"."""
    if found is None:
        return NOT_MEASURED
    if found.n_seeds and found.n_arm_missed == found.n_seeds:
        bound = missed_bound(found)
        text = f"missed {found.n_arm_missed}/{found.n_seeds}"
        return f"{text} (< {factor(bound)})" if bound else text
    if math.isinf(found.point):
        bound = baseline_missed_bound(found)
        text = f"baseline missed {found.n_reference_missed}/{found.n_seeds}"
        return f"{text} (> {factor(bound)})" if bound else text
    if math.isnan(found.point):  # too few exact seeds to place a point: the misses and the interval say it
        return f"missed {found.n_arm_missed}/{found.n_seeds}" if found.n_arm_missed else UNDEFINED
    if found.point <= 0:  # the reached seeds are too few to place it: most seeds missed
        bound = max(_finite(found.per_seed_high), default=None)
        text = f"missed {found.n_arm_missed}/{found.n_seeds}"
        return f"{text} (< {factor(bound)})" if bound else text
    return factor(found.point)


def interval(found: Interval | None) -> str:
    """"[0.51, 0.58]"; a side without a bound is open ("[1.2, ∞)", "(0, 0.87]"); an interval
    without either bound says so."""
    if found is None or math.isnan(found.low) or math.isnan(found.high):
        return ""
    low_open, high_open = not (found.low > 0 and math.isfinite(found.low)), not math.isfinite(found.high)
    if low_open and high_open:
        return "no interval"
    low = "(0" if low_open else f"[{_bare(found.low)}"
    high = "∞)" if high_open else f"{_bare(found.high)}]"
    return f"{low}, {high}"


def _bare(value: float) -> str:
    """An interval's end; beyond 1/1000 or 1000 only its side is worth reading (two seeds' interval)."""
    if value < 1e-3:
        return "<0.001"
    if value > 1e3:
        return ">1000"
    return factor(value).rstrip("×")


def shows_interval(found: SpeedupEstimate | None) -> bool:
    """Whether the speedup is read with its interval: a point, or no point but an interval (one
    exact seed); not where misses or the reference's misses give a bound instead."""
    if found is None:
        return False
    return math.isnan(found.point) or (0 < found.point < math.inf and found.n_arm_missed < found.n_seeds)


def speedup_with_interval(found: SpeedupEstimate | None) -> str:
    """The speedup and, where it is a number, its interval: "0.57× [0.38, 0.87]"."""
    text = speedup(found)
    if not shows_interval(found):
        return text
    bounds = interval(found.interval)
    return f"{text} {bounds}" if bounds else text


def reached(found: SpeedupEstimate | None) -> str:
    """Seeds on which the arm reached the target, of those paired: "2/3"."""
    return "—" if found is None else f"{found.n_reached}/{found.n_seeds}"


def p_value(value: float) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


# -- units ---------------------------------------------------------------------------------------


def pick(largest: float, units: tuple[tuple[str, float], ...]) -> tuple[str, float]:
    """The unit in which `largest` reads with one to three digits before the point."""
    chosen = units[0]
    for unit in units:
        if largest >= unit[1]:
            chosen = unit
    return chosen


def time_unit(largest_s: float) -> tuple[str, float]:
    """(unit, seconds per unit) for times up to `largest_s`: minutes from 2 min, hours from 2 h."""
    if not math.isfinite(largest_s) or largest_s <= 0:
        return "s", 1.0
    if largest_s < 1:
        return "ms", 1e-3
    if largest_s < 120:
        return "s", 1.0
    if largest_s < 7200:
        return "min", 60.0
    return "h", 3600.0


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    unit, scale = time_unit(seconds)
    return f"{digits(seconds / scale)} {unit}"


def energy_unit(largest_j: float) -> tuple[str, float]:
    if not math.isfinite(largest_j) or largest_j <= 0:
        return "J", 1.0
    return pick(largest_j, ENERGIES)


def energy(joules: float | None) -> str:
    if joules is None or not math.isfinite(joules):
        return "—"
    unit, scale = energy_unit(joules)
    return f"{digits(joules / scale)} {unit}"


def prefixed(value: float | None, unit: str = "") -> str:
    """A count with an SI prefix: "1.2 TFLOP"; below 10,000 written out ("4,321")."""
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) < 1e4:
        return f"{value:,.0f}{' ' + unit if unit else ''}"
    prefix, scale = pick(abs(value), PREFIXES)
    return f"{digits(value / scale)} {prefix}{unit}"


def count(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}"


def digits(value: float) -> str:
    """Three significant digits without a trailing point."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def setting(value: Any) -> str:
    """A technique's setting as written in a suite: numbers to four significant digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (int, str)):
        return str(value)
    if value is None:
        return "—"
    return json.dumps(value, sort_keys=True)


def settings_line(settings: dict[str, Any]) -> str:
    """`{"a": 1, "b": 0.5}` -> "a=1, b=0.5"."""
    return ", ".join(f"{key}={setting(value)}" for key, value in settings.items()) or "defaults"
