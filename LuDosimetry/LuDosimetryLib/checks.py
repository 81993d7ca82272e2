"""Input validation shared by the library modules: one message style that names the argument."""

from __future__ import annotations

import math

from .errors import InputDataError


def scalar(x, name: str, *, positive: bool = False, nonneg: bool = False, lo=None, hi=None, unit: str = "") -> float:
    """``x`` as a finite float, checked against the requested bounds.

    Raises :class:`InputDataError` naming ``name`` (and ``unit`` when given), e.g.
    ``"physical_half_life_h: must be > 0 h, got -1.0"``.
    """
    u = f" {unit}" if unit else ""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InputDataError(f"{name}: expected a number{u and ' in' + u}, got {x!r}") from None
    if not math.isfinite(v):
        raise InputDataError(f"{name}: must be finite, got {v}")
    if positive and v <= 0:
        raise InputDataError(f"{name}: must be > 0{u}, got {v}")
    if nonneg and v < 0:
        raise InputDataError(f"{name}: must be >= 0{u}, got {v}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InputDataError(f"{name}: must be in [{lo}, {hi}]{u}, got {v}")
    return v
