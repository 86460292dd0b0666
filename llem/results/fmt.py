"""How numbers and intervals read on screen: one place for the terminal summary, the study
table, ``llem results show`` and ``compare``.

An interval is always written ``[a, b]`` (never ``a-b``, which reads as a negative number), its
bounds with as many decimals as the point it belongs to, so the three line up."""
from __future__ import annotations

import math
from typing import Optional


def _missing(v) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v)) or bool(v != v)
    except (TypeError, ValueError):  # pandas.NA refuses bool()
        return True


def decimals_for(v: float, digits: int = 4) -> Optional[int]:
    """Decimals that show ``v`` with ``digits`` significant digits, or None where a fixed-point
    number would be unreadable (below 1e-3, or 1e6 and above): use ``g`` there."""
    x = abs(float(v))
    if x == 0:
        return digits - 1
    if not 1e-3 <= x < 1e6:
        return None
    return max(0, digits - 1 - math.floor(math.log10(x)))


def fmt_num(v, digits: int = 4, decimals: Optional[int] = None) -> str:
    """``v`` with ``digits`` significant digits (or exactly ``decimals``); "n/a" when missing."""
    if _missing(v):
        return "n/a"
    x = float(v)
    d = decimals if decimals is not None else decimals_for(x, digits)
    return f"{x:.{digits}g}" if d is None else f"{x:.{d}f}"


def fmt_ci(lo, hi, point=None, digits: int = 4) -> str:
    """``[lo, hi]``, with the point's decimals when a point is given; "" when a bound is missing."""
    if _missing(lo) or _missing(hi):
        return ""
    ref = point if not _missing(point) else (abs(float(lo)) + abs(float(hi))) / 2
    d = decimals_for(float(ref), digits)
    if d is not None and (lo != 0 and abs(float(lo)) < 10 ** -d or hi != 0 and abs(float(hi)) < 10 ** -d):
        d = None  # a bound that the point's decimals would round to zero keeps its own digits
    return f"[{fmt_num(lo, digits, d)}, {fmt_num(hi, digits, d)}]"


def fmt_with_ci(v, lo, hi, digits: int = 4) -> str:
    """``v [lo, hi]`` (just ``v`` without an interval; "n/a" when ``v`` is missing)."""
    if _missing(v):
        return "n/a"
    ci = fmt_ci(lo, hi, v, digits)
    d = decimals_for(float(v), digits)
    return fmt_num(v, digits, d) + (f" {ci}" if ci else "")
