"""Input checks and constants shared by the kinetics modules (times in h, values in the caller's unit)."""

from __future__ import annotations

import math

import numpy as np

from ...checks import scalar
from ...errors import InputDataError

#: Relative 1σ per-point uncertainty assumed when ``value_uncertainty`` is not given.
_LN2 = math.log(2.0)
DEFAULT_RELATIVE_UNCERTAINTY = 0.05


#: Model names accepted by :func:`fit_time_activity`.
MODELS = ("auto", "mono", "biexp", "triexp", "trapezoid", "mono_last2")


_TAILS = ("physical", "last_segment")


# Numerical search range of the bi-exponential uptake-minus-washout rate (per hour). It only
# limits the root search: an uptake faster than a 2-min half-time is not resolvable from
# clinical imaging, such a fit is rejected and the fallback is used.
_MIN_UPTAKE_EXCESS_PER_H = 1e-5


_MAX_UPTAKE_EXCESS_PER_H = 20.0


_RSS_FLOOR_PER_POINT = 1e-12


_BOUND_RTOL = 1e-6


_MAX_CONDITION = 1e10


def _as_times(times_h, name: str = "times_h", min_points: int = 2) -> np.ndarray:
    try:
        t = np.asarray(times_h, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"{name} must be a 1-D sequence of numbers (hours); {exc}") from None
    if t.ndim != 1:
        raise InputDataError(f"{name} must be 1-D (one time per image), got shape {t.shape}")
    if t.size < min_points:
        raise InputDataError(f"{name} needs at least {min_points} time points, got {t.size}")
    _check_finite_nonneg(t, name, " h after administration", " h")
    back = np.flatnonzero(np.diff(t) <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputDataError(
            f"{name} must be strictly increasing; index {i} ({t[i]:g} h) is not after "
            f"index {i - 1} ({t[i - 1]:g} h)"
        )
    return t


def _positive_scalar(x, name: str, unit: str = "") -> float:
    return scalar(x, name, positive=True, unit=unit)


def _nonneg_scalar(x, name: str, unit: str = "") -> float:
    return scalar(x, name, nonneg=True, unit=unit)


def _as_values(values, n: int, name: str = "values") -> np.ndarray:
    try:
        y = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"{name} must be a 1-D sequence of numbers; {exc}") from None
    if y.ndim != 1:
        raise InputDataError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size != n:
        raise InputDataError(f"{name} has {y.size} entries but times_h has {n}")
    _check_finite_nonneg(y, name)
    return y


def _check_finite_nonneg(a: np.ndarray, name: str, what: str = "", unit: str = "") -> None:
    """Raise InputDataError naming ``name`` and the first index that is NaN/inf or negative."""
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise InputDataError(f"{name} contains NaN or infinite values (index {int(bad[0])})")
    neg = np.flatnonzero(a < 0)
    if neg.size:
        i = int(neg[0])
        raise InputDataError(f"{name} must be >= 0{what}; index {i} is {a[i]:g}{unit}")


def _relative_sigma(y: np.ndarray, rel: float) -> np.ndarray:
    """σ_i = rel·max(y_i, 1e-3·max(y)) along axis 0 (works for (T,) and (T, N)); 0 if all y = 0."""
    return rel * np.maximum(y, 1e-3 * np.max(y, axis=0))


def _sigma(y: np.ndarray, value_uncertainty) -> tuple[np.ndarray, str]:
    if value_uncertainty is None:
        return _relative_sigma(y, DEFAULT_RELATIVE_UNCERTAINTY), (
            f"default {DEFAULT_RELATIVE_UNCERTAINTY:.0%} relative"
        )
    arr = np.asarray(value_uncertainty, dtype=float) if not isinstance(value_uncertainty, str) else None
    if arr is None:
        raise InputDataError("value_uncertainty must be a number (relative) or a sequence (absolute σ)")
    if arr.ndim == 0:
        rel = float(arr)
        if not math.isfinite(rel) or rel <= 0:
            raise InputDataError(
                f"value_uncertainty as a scalar is a relative fraction and must be finite and > 0, got {rel!r}"
            )
        return _relative_sigma(y, rel), f"{rel:.3g} relative"
    if arr.shape != y.shape:
        raise InputDataError(
            f"value_uncertainty as a sequence is the absolute σ per point and must have "
            f"{y.size} entries, got shape {arr.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
    if bad.size:
        raise InputDataError(
            f"value_uncertainty must be finite and > 0 at every point (index {int(bad[0])})"
        )
    return arr, "absolute per point"
