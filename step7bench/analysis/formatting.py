"""Numbers for display, shared by the gate's plain-text table and the HTML report."""

from __future__ import annotations

import math


def number(value: float | None, digits: int = 2, *, absent: str = "—", infinite: str = "∞") -> str:
    """A speedup or factor for display: `digits` decimals, `infinite` for ±inf, `absent` for None or NaN."""
    if value is None or math.isnan(value):
        return absent
    if math.isinf(value):
        return infinite
    return f"{value:.{digits}f}"
