"""Time-activity (or dose-rate) curve fitting and time integration, per VOI and voxel-wise.

Units
-----
Times are hours after administration (``_h``). Values are in whatever unit the caller uses
(activity MBq, activity concentration Bq/mL, or absorbed-dose rate Gy/h); an integral is then in
value·h (MBq·h, Bq·h/mL, or Gy). Rates are per hour (``_per_h``). The physical half-life is
always passed in by the caller (``physical_half_life_h``; for 177Lu get it from
``LuDosimetryLib.radionuclides.get_nuclide("Lu-177").half_life_h``), never typed in here.

Models (``fit_time_activity(..., model=...)``)
----------------------------------------------
``"mono"``       A·e^(−λt), λ ≥ λ_phys.                                  2 parameters
``"biexp"``      A·(e^(−λ1 t) − e^(−λ2 t)) (seed 000, Eq. 1), washout λ1 ≥ λ_phys, uptake
                 λ2 > λ1, A ≥ 0.                                          3 parameters
``"triexp"``     A1·e^(−λ1 t) + A2·e^(−λ2 t) − (A1 + A2)·e^(−λ3 t), λ_phys ≤ λ1 < λ2 < λ3,
                 A1, A2 ≥ 0 (two washout phases, one uptake; zero at t = 0). 5 parameters
``"trapezoid"``  0 at t = 0, straight lines between the points, then a mono-exponential tail
                 from the last point: ``tail="physical"`` (default) decays with λ_phys;
                 ``tail="last_segment"`` uses the rate through the last two points when that
                 decays faster than physical decay (otherwise physical decay, with a warning).
``"mono_last2"`` 0 at t = 0, straight lines up to the second-to-last point, then the
                 mono-exponential through the last two points to infinity (rate clamped to
                 ≥ λ_phys with a warning). This is the "uptake trapezoid + mono-exponential
                 through the last two points" fallback.
``"auto"``       the rule below.

The ``"auto"`` rule
-------------------
1. All values zero → integral 0 (``trapezoid``, flag ``all_zero``).
2. Rising curve (last point ≥ every earlier point) → ``trapezoid`` with a physical-decay tail and
   a warning (flags ``rising``, ``fallback:trapezoid``, ``tail:physical``): the washout was not
   observed, so nothing faster than physical decay can be claimed.
3. n ≥ 5 points: AICc selection among the parametric models that converge to a physically valid
   solution and have AICc defined (n ≥ k + 2): mono (k = 2), biexp (k = 3), triexp (k = 5, n ≥ 7).
   AICc = n·ln(RSS/n) + 2k + 2k(k+1)/(n−k−1), RSS the σ-weighted residual sum of squares
   (floored at n·1e-12 so that exact fits tie and the simplest one wins).
4. n = 3 or 4 (the clinical 4, 24, 72 h case has as many parameters as points, so AICc is not
   defined for biexp): the seed-000 bi-exponential is tried first.
5. If no parametric model is accepted (did not converge; λ1 at/below the physical bound, i.e. the
   data decay slower than physical decay; λ2 ≤ λ1 or uptake faster than resolvable; A ≤ 0;
   non-finite integral; singular Jacobian; for n = k, the curve does not pass through the
   points), fall back to ``mono_last2`` when the last two points decay faster than physical
   decay, else to ``trapezoid`` with a physical tail. The chosen model and the reason are
   recorded in ``warnings`` and ``flags``.

A rejected fit at the physical bound is a documented choice: in ``"auto"`` mode a parametric
curve whose washout sits exactly on λ_phys carries no information beyond "not faster than
physical decay", which the trapezoid + physical tail says explicitly. An explicitly requested
model (``model="biexp"``) is returned even at a bound (with a warning); it raises
:class:`~LuDosimetryLib.errors.FitError` only if it cannot be fitted at all.

Uncertainty (EANM practice, Gear et al. 2018, EJNMMI 45:2456)
-------------------------------------------------------------
Per-point standard uncertainties σ_i are ``value_uncertainty``: ``None`` → 5 % relative
(:data:`DEFAULT_RELATIVE_UNCERTAINTY`), a scalar → that relative fraction of each value, a
sequence → absolute σ per point (value units). Relative σ use the measured values, floored at
1e-3 of the largest value. Parametric fits are σ-weighted least squares and the 1σ uncertainty
of the integral is the linear (Jacobian) propagation with absolute σ:
u²(I) = g·(JᵀWJ)⁻¹·gᵀ, g = ∂I/∂p, W = diag(σ⁻²), which is also valid when the number of points
equals the number of parameters (then J is square and the fit interpolates). Non-parametric
integrals are linear (or nearly) in the data and use u²(I) = Σ(∂I/∂y_i)²σ_i². Model-selection
and tail-model uncertainties are not included (they are reported as flags).
"""

from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import optimize

from ..checks import scalar
from ..errors import FitError, InputDataError

__all__ = [
    "DEFAULT_RELATIVE_UNCERTAINTY",
    "MODELS",
    "TimeActivityFit",
    "VoxelwiseFit",
    "fit_time_activity",
    "fit_time_activity_voxelwise",
    "hanscheid_tia",
    "madsen_tia",
    "later_cycle_dose_scaling",
]

#: Relative 1σ per-point uncertainty assumed when ``value_uncertainty`` is not given.
DEFAULT_RELATIVE_UNCERTAINTY = 0.05

#: Model names accepted by :func:`fit_time_activity`.
MODELS = ("auto", "mono", "biexp", "triexp", "trapezoid", "mono_last2")

_TAILS = ("physical", "last_segment")
_LN2 = math.log(2.0)
# Numerical search range of the bi-exponential uptake-minus-washout rate (per hour). It only
# limits the root search: an uptake faster than a 2-min half-time is not resolvable from
# clinical imaging, such a fit is rejected and the fallback is used.
_MIN_UPTAKE_EXCESS_PER_H = 1e-5
_MAX_UPTAKE_EXCESS_PER_H = 20.0
_RSS_FLOOR_PER_POINT = 1e-12
_BOUND_RTOL = 1e-6
_MAX_CONDITION = 1e10


# ----------------------------------------------------------------------------- validation


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


# ----------------------------------------------------------------------------- result type


@dataclass(frozen=True)
class TimeActivityFit:
    """Result of :func:`fit_time_activity`.

    Attributes
    ----------
    model : str
        ``"mono"``, ``"biexp"``, ``"triexp"``, ``"trapezoid"`` or ``"mono_last2"``.
    params : dict
        Model parameters: amplitudes in value units (``A``, ``A1``, ``A2``), rates in 1/h
        (``lambda1_per_h`` …); piecewise models give ``tail_rate_per_h`` and ``tail``.
    integral : float
        ∫₀^∞ of the curve, value·h (e.g. MBq·h, or Gy when values are Gy/h).
    effective_half_life_h : float
        Terminal (washout) half-life, h: ln2/λ1 for the exponential models, ln2 of the tail rate
        for the piecewise models (the physical half-life when the physical tail is used).
    uncertainty : float
        1σ standard uncertainty of ``integral`` (value·h), see module docstring.
    warnings : list[str]
        Human-readable notes: chosen model and why, rejected models, bounds, rising curve.
    aicc : float or None
        AICc of the chosen parametric model (None when not defined: n ≤ k + 1 or piecewise).
    times_h, values, physical_half_life_h :
        The data and the half-life the fit was made with.
    flag_tokens : tuple[str]
        Backing store of :attr:`flags`.
    candidates : dict
        Per parametric model tried by ``"auto"``: its AICc, or why it was rejected.
    knots_h, knot_values, tail_rate_per_h :
        Piecewise curve (trapezoid, mono_last2): straight lines through the knots, then
        ``knot_values[-1]·e^(−tail_rate_per_h·(t − knots_h[-1]))``; empty for exponential models.
    """

    model: str
    params: dict
    integral: float
    effective_half_life_h: float
    uncertainty: float
    warnings: list = field(default_factory=list)
    aicc: float | None = None
    times_h: tuple = ()
    values: tuple = ()
    physical_half_life_h: float = float("nan")
    flag_tokens: tuple = ()
    candidates: dict = field(default_factory=dict)
    knots_h: tuple = ()
    knot_values: tuple = ()
    tail_rate_per_h: float = float("nan")
    _terms: tuple | None = field(default=None, repr=False)

    @property
    def flags(self) -> tuple[str, ...]:
        """Short tokens for a CSV ``flags`` column (join with ``";"``), e.g.
        ``("fallback:trapezoid", "tail:physical", "rising")``."""
        return tuple(self.flag_tokens)

    @property
    def relative_uncertainty(self) -> float:
        """``uncertainty / integral`` (0 when the integral is 0)."""
        return self.uncertainty / self.integral if self.integral > 0 else 0.0

    @property
    def is_exponential(self) -> bool:
        """True when the curve is a sum of exponentials (mono, biexp, triexp)."""
        return self._terms is not None

    def exponential_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """``(coefficients, rates_per_h)`` with curve(t) = Σ c_i·e^(−r_i t) (value units, 1/h).

        Raises FitError for the piecewise models (trapezoid, mono_last2); use
        :attr:`knots_h`, :attr:`knot_values` and :attr:`tail_rate_per_h` for those.
        """
        if self._terms is None:
            raise FitError(f"model {self.model!r} is piecewise, not a sum of exponentials")
        c, r = self._terms
        return np.array(c, dtype=float), np.array(r, dtype=float)

    def evaluate(self, t_h) -> np.ndarray:
        """Fitted curve at times ``t_h`` (h, any shape, ≥ 0), in value units."""
        t = np.asarray(t_h, dtype=float)
        if not np.all(np.isfinite(t)):
            raise InputDataError("t_h contains NaN or infinite values")
        if np.any(t < 0):
            raise InputDataError("t_h must be >= 0 h")
        if self._terms is not None:
            c, r = self._terms
            out = np.zeros_like(t)
            for ci, ri in zip(c, r):
                out = out + ci * np.exp(-ri * t)
            return out
        kt = np.asarray(self.knots_h, dtype=float)
        kv = np.asarray(self.knot_values, dtype=float)
        out = np.interp(t, kt, kv)
        after = t > kt[-1]
        out = np.where(after, kv[-1] * np.exp(-self.tail_rate_per_h * (t - kt[-1])), out)
        return out


# ----------------------------------------------------------------------------- candidates


@dataclass
class _Candidate:
    model: str
    ok: bool
    reason: str = ""
    params: dict = field(default_factory=dict)
    integral: float = float("nan")
    variance: float = float("inf")
    rss: float = float("nan")
    k: int = 0
    eff_half_life_h: float = float("nan")
    terms: tuple | None = None
    knots_h: tuple = ()
    knot_values: tuple = ()
    tail_rate: float = float("nan")
    notes: list = field(default_factory=list)
    at_bound: bool = False


def _knots(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prepend (0, 0) unless the first time is 0."""
    if t[0] > 0:
        return np.concatenate(([0.0], t)), np.concatenate(([0.0], y))
    return t.copy(), y.copy()


def _trapz_weights(kt: np.ndarray) -> np.ndarray:
    """Weights w with Σ w_j y_j = trapezoidal integral over knots kt (works for 1 knot → 0)."""
    w = np.zeros_like(kt)
    if kt.size >= 2:
        d = np.diff(kt)
        w[:-1] += d / 2
        w[1:] += d / 2
    return w


def _piecewise_candidate(t, y, sigma, lam_phys, model: str, tail: str = "physical") -> _Candidate:
    """Trapezoid (+ tail) or mono_last2; integral and linear-propagation variance."""
    n = t.size
    notes: list[str] = []
    if model == "trapezoid":
        kt, kv = _knots(t, y)
        offset = kt.size - n
        w = _trapz_weights(kt)[offset:]
        grad = w.copy()
        lam = lam_phys
        tail_used = "physical"
        if tail == "last_segment":
            if n >= 2 and y[-2] > 0 and y[-1] > 0:
                dt = t[-1] - t[-2]
                lam_seg = math.log(y[-2] / y[-1]) / dt
                if lam_seg > lam_phys:
                    lam = lam_seg
                    tail_used = "last_segment"
                    # d(y_L/λ)/dy_L and d/dy_{L-1} with λ = ln(y_{L-1}/y_L)/Δt
                    grad[-1] += 1 / lam + 1 / (lam * lam * dt)
                    grad[-2] += -y[-1] / (lam * lam * y[-2] * dt)
                else:
                    notes.append(
                        "tail='last_segment' requested but the last two points do not decay "
                        "faster than physical decay: physical-decay tail used"
                    )
            else:
                notes.append("tail='last_segment' needs two positive last points: physical-decay tail used")
        if tail_used == "physical":
            grad[-1] += 1 / lam
        integral = float(np.dot(w, y) + y[-1] / lam)
        var = float(np.sum((grad * sigma) ** 2))
        return _Candidate(
            model="trapezoid", ok=True, integral=integral, variance=var, k=0,
            params={"tail": tail_used, "tail_rate_per_h": lam},
            eff_half_life_h=_LN2 / lam, knots_h=tuple(kt), knot_values=tuple(kv),
            tail_rate=lam, notes=notes,
        )
    # mono_last2
    if n < 2 or y[-2] <= 0 or y[-1] <= 0:
        return _Candidate(model="mono_last2", ok=False, reason="the last two values must be > 0")
    dt = t[-1] - t[-2]
    lam_seg = math.log(y[-2] / y[-1]) / dt
    kt, kv = _knots(t[:-1], y[:-1])
    offset = kt.size - (n - 1)
    grad = np.zeros(n)
    grad[:-1] = _trapz_weights(kt)[offset:]
    ok = True
    reason = ""
    if lam_seg > lam_phys:
        lam = lam_seg
        grad[-2] += 1 / lam - 1 / (lam * lam * dt)
        grad[-1] += y[-2] / (lam * lam * y[-1] * dt)
    else:
        lam = lam_phys
        grad[-2] += 1 / lam
        ok = False
        reason = "the last two points do not decay faster than physical decay"
        notes.append(
            f"mono_last2: last-segment rate {lam_seg:.4g}/h is not faster than physical decay; "
            "rate clamped to the physical decay constant"
        )
    integral = float(np.dot(_trapz_weights(kt)[offset:], y[:-1]) + y[-2] / lam)
    var = float(np.sum((grad * sigma) ** 2))
    return _Candidate(
        model="mono_last2", ok=ok, reason=reason, integral=integral, variance=var, k=0,
        params={"tail": "last_segment" if ok else "physical", "tail_rate_per_h": lam,
                "A": float(y[-2] * math.exp(lam * t[-2]))},
        eff_half_life_h=_LN2 / lam, knots_h=tuple(kt), knot_values=tuple(kv), tail_rate=lam,
        notes=notes, at_bound=not ok,
    )


# --- parametric models, in normalised units (values / max(values)); p in fit coordinates ---


def _mono_f(t, p):
    A, lam = p
    return A * np.exp(-lam * t)


def _mono_j(t, p):
    A, lam = p
    e = np.exp(-lam * t)
    return np.stack([e, -A * t * e], axis=1)


def _mono_int(p):
    A, lam = p
    return A / lam, np.array([1 / lam, -A / lam**2])


def _bi_f(t, p):
    A, l1, d = p
    return A * (np.exp(-l1 * t) - np.exp(-(l1 + d) * t))


def _bi_j(t, p):
    A, l1, d = p
    e1 = np.exp(-l1 * t)
    e2 = np.exp(-(l1 + d) * t)
    return np.stack([e1 - e2, -A * t * (e1 - e2), A * t * e2], axis=1)


def _bi_int(p):
    A, l1, d = p
    l2 = l1 + d
    return A * (1 / l1 - 1 / l2), np.array([1 / l1 - 1 / l2, A * (-1 / l1**2 + 1 / l2**2), A / l2**2])


def _tri_f(t, p):
    A1, A2, l1, d1, d2 = p
    l2 = l1 + d1
    l3 = l2 + d2
    return A1 * np.exp(-l1 * t) + A2 * np.exp(-l2 * t) - (A1 + A2) * np.exp(-l3 * t)


def _tri_j(t, p):
    A1, A2, l1, d1, d2 = p
    l2 = l1 + d1
    l3 = l2 + d2
    e1, e2, e3 = np.exp(-l1 * t), np.exp(-l2 * t), np.exp(-l3 * t)
    S = A1 + A2
    return np.stack(
        [
            e1 - e3,
            e2 - e3,
            -t * (A1 * e1 + A2 * e2 - S * e3),
            -t * (A2 * e2 - S * e3),
            t * S * e3,
        ],
        axis=1,
    )


def _tri_int(p):
    A1, A2, l1, d1, d2 = p
    l2 = l1 + d1
    l3 = l2 + d2
    S = A1 + A2
    I = A1 / l1 + A2 / l2 - S / l3
    g = np.array(
        [
            1 / l1 - 1 / l3,
            1 / l2 - 1 / l3,
            -A1 / l1**2 - A2 / l2**2 + S / l3**2,
            -A2 / l2**2 + S / l3**2,
            S / l3**2,
        ]
    )
    return I, g


class _Psi:
    """ψ(u) of the 3-point bi-exponential problem for fixed times, with an inverse table.

    ψ depends on d = e^u only (the times are shared by all voxels), so its inverse is tabulated
    once per set of times. The table is uniform in z = ln ψ − ln(ψ(u_lo) − ψ), in which u(z) is
    smooth over the whole range, so a start value is an O(1) lookup + linear interpolation
    (no search); Newton then starts within ~1e-5 of the root."""

    _cache: ClassVar[dict] = {}
    _TABLE = 4096

    def __init__(self, t3):
        self.t0, self.t1, self.t2 = (float(v) for v in t3)
        self.tt = np.array([self.t0, self.t1, self.t2])[:, None]
        self.h_a, self.h_b = 1.0 / (self.t1 - self.t0), 1.0 / (self.t2 - self.t1)
        self.u_lo = math.log(_MIN_UPTAKE_EXCESS_PER_H)
        self.u_hi = math.log(_MAX_UPTAKE_EXCESS_PER_H)
        with np.errstate(all="ignore"):
            u_d = np.linspace(self.u_lo, self.u_hi, 1 << 16)
            p_d = self(u_d)[0]
            self.p_lo = float(p_d[0])
            self.p_hi = float(p_d[-1])
            z_d = np.log(p_d) - np.log(self.p_lo - p_d)
        keep = np.isfinite(z_d)
        u_d, z_d = u_d[keep], z_d[keep]
        keep = np.concatenate(([True], np.diff(z_d) < 0))  # strictly decreasing part
        u_d, z_d = u_d[keep], z_d[keep]
        self.z_min, self.z_max = float(z_d.min()), float(z_d.max())
        z_grid = np.linspace(self.z_min, self.z_max, self._TABLE)
        self.u_grid = np.interp(z_grid, z_d[::-1], u_d[::-1])
        self.inv_dz = (self._TABLE - 1) / (self.z_max - self.z_min)

    @classmethod
    def get(cls, t3):
        key = tuple(float(v) for v in t3)
        if key not in cls._cache:
            if len(cls._cache) > 32:
                cls._cache.clear()
            cls._cache[key] = cls(t3)
        return cls._cache[key]

    def __call__(self, u):
        """ψ(u), ∂ψ/∂u, L = ln(1 − e^(−d t_i)) (3, n) and ∂L/∂u (3, n)."""
        dd = np.exp(u)
        em = -np.expm1(-dd * self.tt)  # 1 − e^(−d t), shape (3, n)
        L = np.log(em)
        dLu = self.tt * (1.0 - em) / em * dd  # ∂L/∂u
        p = (L[1] - L[0]) * self.h_a - (L[2] - L[1]) * self.h_b
        dp = (dLu[1] - dLu[0]) * self.h_a - (dLu[2] - dLu[1]) * self.h_b
        return p, dp, L, dLu

    def start(self, target):
        """Start value of u for 0 < target < ψ(u_lo) (table lookup, no search)."""
        with np.errstate(all="ignore"):
            z = np.log(target) - np.log(self.p_lo - target)
        x = (np.clip(np.nan_to_num(z, nan=self.z_min), self.z_min, self.z_max) - self.z_min) * self.inv_dz
        i = np.minimum(x.astype(np.int64), self._TABLE - 2)
        f = x - i
        return self.u_grid[i] * (1.0 - f) + self.u_grid[i + 1] * f


def _biexp3_exact(t3: np.ndarray, Y3: np.ndarray, max_iter: int = 60):
    """Vectorised exact bi-exponential through 3 points (t3 > 0 increasing, Y3 > 0, shape (3, N)).

    With d = λ2 − λ1 and L(t) = ln(1 − e^(−d t)), the interpolation conditions reduce to one
    monotone (decreasing) equation in d: ψ(d) = [L(t1)−L(t0)]/(t1−t0) − [L(t2)−L(t1)]/(t2−t1)
    = s_a − s_b, where s_a, s_b are the log-slopes of the data on the two segments (so a solution
    needs log-concave data). It is solved by a safeguarded (bracketed) Newton iteration in
    u = ln d from a tabulated inverse of ψ, iterating only on the voxels not yet converged; a
    voxel is converged when the Newton step is below 1e-6 (the root is then known to ~1e-12 by
    quadratic convergence, and L is carried to it to first order). Then
    λ1 = [L(t2)−L(t1)]/(t2−t1) − s_b and A = y2·e^(λ1 t2)/(1 − e^(−d t2)).

    Returns (A, lambda1, lambda2, ok) arrays; ok is False where no solution exists in the
    search range (data not log-concave, uptake unresolvably fast or slow) or no convergence.
    """
    psi = _Psi.get(t3)
    t2 = psi.t2
    ly = np.log(Y3)
    s_a = (ly[1] - ly[0]) * psi.h_a
    s_b = (ly[2] - ly[1]) * psi.h_b
    target = s_a - s_b
    n = target.shape[0]
    with np.errstate(all="ignore"):
        ok = np.isfinite(target) & (target > 0) & (target < psi.p_lo) & (target > psi.p_hi)
    act = np.flatnonzero(ok)
    tg = target[act]
    ua = psi.start(tg)
    u = np.zeros(n)
    conv = np.zeros(n, dtype=bool)
    L1 = np.zeros(n)
    L2 = np.ones(n)
    tol = 1e-13 * np.maximum(1.0, np.abs(tg))
    lo = np.full(act.size, psi.u_lo)
    hi = np.full(act.size, psi.u_hi)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            if act.size == 0:
                break
            p, dp, L, dLu = psi(ua)
            F = p - tg
            up = F > 0  # ψ decreases with u: F > 0 means the root is above u
            lo = np.where(up, ua, lo)
            hi = np.where(up, hi, ua)
            un = ua - F / dp
            bad = ~((un > lo) & (un < hi))
            step = un - ua
            done = (~bad & (np.abs(step) < 1e-6)) | (np.abs(F) <= tol)
            step = np.where(np.abs(F) <= tol, 0.0, step)
            un = np.where(bad, 0.5 * (lo + hi), un)
            fin = act[done]
            conv[fin] = True
            u[fin] = ua[done] + step[done]
            L1[fin] = L[1, done] + dLu[1, done] * step[done]
            L2[fin] = L[2, done] + dLu[2, done] * step[done]
            keep = ~done
            act, ua, tg, tol, lo, hi = act[keep], un[keep], tg[keep], tol[keep], lo[keep], hi[keep]
        d = np.exp(u)
        l1 = (L2 - L1) * psi.h_b - s_b
        l2 = l1 + d
        A = np.exp(ly[2] + l1 * t2 - L2)
    ok = ok & conv & np.isfinite(A) & np.isfinite(l1) & (l1 > 0) & (A > 0)
    return A, l1, l2, ok


def _fit_parametric(model: str, t, yn, sn, lam_phys, biexp_start=None) -> _Candidate:
    """σ-weighted bounded least squares in normalised units; candidate with integral/variance.

    ``biexp_start``: normalised (A, λ1, λ2 − λ1) of a bi-exponential fit, used to start the
    tri-exponential fit."""
    n = t.size
    k_of = {"mono": 2, "biexp": 3, "triexp": 5}
    if model in k_of and n < k_of[model]:
        return _Candidate(model=model, ok=False, k=k_of[model],
                          reason=f"{k_of[model]} parameters need at least {k_of[model]} points, got {n}")
    if model == "mono":
        f, jf, intf, k = _mono_f, _mono_j, _mono_int, 2
        pos = yn > 0
        if pos.sum() >= 2:
            slope, icpt = np.polyfit(t[pos], np.log(yn[pos]), 1)
            lam0 = max(-slope, lam_phys * 1.05)
            A0 = math.exp(icpt)
        else:
            lam0, A0 = lam_phys * 1.5, float(yn.max())
        starts = [np.array([A0, lam0]), np.array([float(yn.max()) * math.exp(lam0 * t[np.argmax(yn)]), lam0])]
        lb, ub = np.array([0.0, lam_phys]), np.array([np.inf, np.inf])
    elif model == "biexp":
        f, jf, intf, k = _bi_f, _bi_j, _bi_int, 3
        starts = []
        tp = t > 0
        if tp.sum() >= 3 and np.all(yn[tp] > 0):
            tpos, ypos = t[tp], yn[tp]
            mid = int(np.argmin(np.abs(np.log(tpos[1:-1]) - 0.5 * (np.log(tpos[0]) + np.log(tpos[-1]))))) + 1
            sel = [0, mid, tpos.size - 1]
            A, l1, l2, ok = _biexp3_exact(tpos[sel], ypos[sel][:, None])
            if ok[0] and l1[0] > lam_phys:
                starts.append(np.array([A[0], l1[0], l2[0] - l1[0]]))
        lam_seg = lam_phys * 1.1
        if yn[-2] > 0 and yn[-1] > 0:
            lam_seg = max(math.log(yn[-2] / yn[-1]) / (t[-1] - t[-2]) * 1.05, lam_phys * 1.1)
        for d0 in (_LN2 / 1.0, _LN2 / 4.0, _LN2 / 12.0):
            A0 = max(yn[-1], 1e-6) * math.exp(lam_seg * t[-1]) / max(-math.expm1(-d0 * t[-1]), 1e-12)
            starts.append(np.array([A0, lam_seg, d0]))
        lb = np.array([0.0, lam_phys, 0.0])
        ub = np.array([np.inf, np.inf, _MAX_UPTAKE_EXCESS_PER_H])
    elif model == "triexp":
        f, jf, intf, k = _tri_f, _tri_j, _tri_int, 5
        starts = []
        if biexp_start is None:
            bi = _fit_parametric("biexp", t, yn, sn, lam_phys)
            biexp_start = bi.params.get("_p")
        if biexp_start is not None:
            A, l1, d = biexp_start
            # split the washout into a slower and a faster phase around the biexp washout rate
            starts.append(np.array([0.7 * A, 0.3 * A, max(0.8 * l1, lam_phys), 2.0 * l1, max(0.5 * d, 1e-3)]))
        starts.append(np.array([float(yn.max()) * 1.2, float(yn.max()) * 0.5, lam_phys * 1.5, 0.05, 0.5]))
        lb = np.array([0.0, 0.0, lam_phys, 0.0, 0.0])
        ub = np.array([np.inf, np.inf, np.inf, np.inf, _MAX_UPTAKE_EXCESS_PER_H])
    else:  # pragma: no cover - internal
        raise ValueError(model)

    def resid(p):
        return (f(t, p) - yn) / sn

    def jac(p):
        return jf(t, p) / sn[:, None]

    best = None
    for x0 in starts:
        x0 = np.clip(np.asarray(x0, dtype=float), lb, np.where(np.isfinite(ub), ub, np.inf))
        if not np.all(np.isfinite(x0)):
            continue
        try:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                with np.errstate(all="ignore"):
                    r = optimize.least_squares(
                        resid, x0, jac=jac, bounds=(lb, ub), method="trf", x_scale="jac",
                        xtol=1e-13, ftol=1e-13, gtol=1e-13, max_nfev=(150 if model == "triexp" else 100 * k),
                    )
        except (ValueError, np.linalg.LinAlgError):
            continue
        if not np.all(np.isfinite(r.x)) or not np.isfinite(r.cost):
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None:
        return _Candidate(model=model, ok=False, reason="the optimiser did not converge", k=k)
    p = best.x
    rss = float(2.0 * best.cost)
    with np.errstate(all="ignore"):
        integral_n, g = intf(p)
    cand = _Candidate(model=model, ok=True, k=k, rss=rss)
    cand.params = {"_p": tuple(float(v) for v in p)}
    cand.integral = float(integral_n)
    reasons = []
    if best.status <= 0:
        reasons.append("the optimiser did not converge")
    if model == "mono":
        rates = [p[1]]
    elif model == "biexp":
        rates = [p[1], p[1] + p[2]]
        if p[2] <= _BOUND_RTOL * p[1]:
            reasons.append("uptake rate λ2 ≤ washout rate λ1")
        if p[2] >= _MAX_UPTAKE_EXCESS_PER_H * (1 - _BOUND_RTOL):
            reasons.append("uptake too fast to be resolved by the time points")
    else:
        rates = [p[2], p[2] + p[3], p[2] + p[3] + p[4]]
        if p[3] <= _BOUND_RTOL * p[2] or p[4] <= _BOUND_RTOL * p[2]:
            reasons.append("rates not distinct (λ1 < λ2 < λ3 violated)")
        if p[1] <= 1e-9 * max(p[0], 1e-300):
            reasons.append("second washout amplitude A2 is zero (reduces to biexp)")
        if p[4] >= _MAX_UPTAKE_EXCESS_PER_H * (1 - _BOUND_RTOL):
            reasons.append("uptake too fast to be resolved by the time points")
    if rates[0] <= lam_phys * (1 + _BOUND_RTOL):
        cand.at_bound = True
        reasons.append("washout at the physical-decay bound (λ1 = λ_phys): the data decay slower than physical decay")
    if p[0] <= 0:
        reasons.append("amplitude A ≤ 0")
    if not math.isfinite(cand.integral) or cand.integral <= 0:
        reasons.append("integral not finite and positive")
    # Linear propagation: dI/dy = g (JwᵀJw)⁻¹ Jwᵀ diag(1/σ); var = Σ (dI/dy_i σ_i)²
    Jw = jac(p)
    try:
        with np.errstate(all="ignore"):
            sv = np.linalg.svd(Jw, compute_uv=False)
            cond = sv[0] / sv[-1] if sv[-1] > 0 else np.inf
            if not np.isfinite(cond) or cond > _MAX_CONDITION:
                raise np.linalg.LinAlgError
            cov = np.linalg.inv(Jw.T @ Jw)
            cand.variance = float(g @ cov @ g)
    except np.linalg.LinAlgError:
        cand.variance = float("inf")
        reasons.append("singular Jacobian (parameters not identifiable from these points)")
    if n == k and math.sqrt(rss / n) > 1e-6:
        reasons.append("the curve cannot pass through the points")
    if reasons:
        cand.ok = False
        cand.reason = "; ".join(dict.fromkeys(reasons))
    cand.eff_half_life_h = _LN2 / rates[0]
    return cand


def _denormalise(cand: _Candidate, scale: float) -> _Candidate:
    """Scale amplitudes, integral and variance back to value units and fill params/terms."""
    if "_p" not in cand.params:
        return cand
    p = cand.params.pop("_p")
    cand.integral *= scale
    cand.variance *= scale * scale
    if cand.model == "mono":
        A, lam = p
        A *= scale
        cand.params.update({"A": A, "lambda_per_h": lam})
        cand.terms = ((A,), (lam,))
    elif cand.model == "biexp":
        A, l1, d = p
        A *= scale
        cand.params.update({"A": A, "lambda1_per_h": l1, "lambda2_per_h": l1 + d})
        cand.terms = ((A, -A), (l1, l1 + d))
    else:
        A1, A2, l1, d1, d2 = p
        A1 *= scale
        A2 *= scale
        l2, l3 = l1 + d1, l1 + d1 + d2
        cand.params.update({"A1": A1, "A2": A2, "lambda1_per_h": l1, "lambda2_per_h": l2, "lambda3_per_h": l3})
        cand.terms = ((A1, A2, -(A1 + A2)), (l1, l2, l3))
    return cand


def _aicc(rss: float, n: int, k: int) -> float | None:
    if n - k - 1 <= 0:
        return None
    rss = max(rss, n * _RSS_FLOOR_PER_POINT)
    return n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


# ----------------------------------------------------------------------------- public fit


def fit_time_activity(
    times_h,
    values,
    model: str = "auto",
    *,
    physical_half_life_h: float,
    value_uncertainty=None,
    tail: str = "physical",
) -> TimeActivityFit:
    """Fit and integrate one time–activity (or dose-rate) curve.

    Parameters
    ----------
    times_h : sequence of float
        Times after administration, h; ≥ 0, strictly increasing, at least 2 points.
    values : sequence of float
        Activity (MBq), concentration (Bq/mL) or dose rate (Gy/h) at ``times_h``; ≥ 0.
    model : str
        One of :data:`MODELS`; ``"auto"`` applies the rule in the module docstring.
    physical_half_life_h : float
        Physical half-life of the nuclide, h (bounds every washout rate from below).
    value_uncertainty : None, float or sequence
        None → 5 % relative; scalar → relative fraction; sequence → absolute 1σ per point.
    tail : {"physical", "last_segment"}
        Tail of the ``"trapezoid"`` model (also used by ``"auto"`` only as ``"physical"``).

    Returns
    -------
    TimeActivityFit
        ``integral`` in value·h with 1σ ``uncertainty``; ``warnings`` and ``flags`` say which
        model was used and why.

    Raises
    ------
    InputDataError
        Invalid input (argument named in the message).
    FitError
        An explicitly requested parametric model cannot be fitted.
    """
    t = _as_times(times_h, "times_h", min_points=2)
    y = _as_values(values, t.size, "values")
    if not isinstance(model, str) or model not in MODELS:
        raise InputDataError(f"model must be one of {MODELS}, got {model!r}")
    if tail not in _TAILS:
        raise InputDataError(f"tail must be one of {_TAILS}, got {tail!r}")
    t_phys = _positive_scalar(physical_half_life_h, "physical_half_life_h", "h")
    lam_phys = _LN2 / t_phys
    sigma, sigma_desc = _sigma(y, value_uncertainty)
    n = t.size
    scale = float(y.max())
    notes: list[str] = []
    flags: list[str] = []
    candidates: dict = {}

    def finish(c: _Candidate, aicc=None) -> TimeActivityFit:
        c = _denormalise(c, scale) if "_p" in c.params else c
        ws = list(notes) + list(c.notes)
        ws.append(f"model {c.model}; per-point uncertainty {sigma_desc}")
        if c.model in ("trapezoid", "mono_last2"):
            flags.append(f"tail:{c.params.get('tail', 'physical')}")
        if c.at_bound and c.model not in ("trapezoid", "mono_last2"):
            flags.append("bound:lambda1_phys")
        params = {k: float(v) if isinstance(v, (int, float, np.floating)) else v for k, v in c.params.items()}
        unc = math.sqrt(c.variance) if math.isfinite(c.variance) else float("inf")
        return TimeActivityFit(
            model=c.model, params=params, integral=float(c.integral),
            effective_half_life_h=float(c.eff_half_life_h), uncertainty=unc, warnings=ws,
            aicc=aicc, times_h=tuple(t.tolist()), values=tuple(y.tolist()),
            physical_half_life_h=t_phys, flag_tokens=tuple(dict.fromkeys(flags)),
            candidates=candidates, knots_h=c.knots_h, knot_values=c.knot_values,
            tail_rate_per_h=float(c.tail_rate), _terms=c.terms,
        )

    yn = y / scale if scale > 0 else y
    sn = sigma / scale if scale > 0 else sigma

    # ---- explicit model
    if model != "auto":
        if model in ("trapezoid", "mono_last2"):
            c = _piecewise_candidate(t, y, sigma, lam_phys, model, tail)
            if model == "mono_last2" and not c.ok and not c.knots_h:
                raise FitError(f"mono_last2 cannot be used: {c.reason}")
            if scale == 0:
                flags.append("all_zero")
            return finish(c)
        if scale == 0:
            raise FitError(f"{model} cannot be fitted: all values are zero")
        c = _fit_parametric(model, t, yn, sn, lam_phys)
        if not c.params.get("_p") or not math.isfinite(c.integral):
            raise FitError(f"{model} fit failed: {c.reason or 'no solution'}")
        if not c.ok:
            notes.append(f"{model} fit returned as requested although: {c.reason}")
            flags.append(f"questionable:{model}")
        return finish(c, _aicc(c.rss, n, c.k) if np.isfinite(c.rss) else None)

    # ---- auto
    if scale == 0:
        notes.append("all values are zero: integral 0")
        flags.append("all_zero")
        return finish(_piecewise_candidate(t, y, sigma, lam_phys, "trapezoid"))
    if y[-1] >= y[:-1].max():
        notes.append(
            "rising curve (last point is the highest): washout not observed; trapezoid with a "
            "physical-decay tail from the last point"
        )
        flags += ["rising", "fallback:trapezoid"]
        return finish(_piecewise_candidate(t, y, sigma, lam_phys, "trapezoid"))

    chosen = None
    chosen_aicc = None
    if n >= 5:
        pool = ["mono", "biexp"] + (["triexp"] if n >= 7 else [])
        best_a = None
        bstart = None
        for name in pool:
            c = _fit_parametric(name, t, yn, sn, lam_phys, biexp_start=bstart)
            if name == "biexp":
                bstart = c.params.get("_p")
            a = _aicc(c.rss, n, c.k) if c.ok else None
            candidates[name] = a if c.ok else f"rejected: {c.reason}"
            if c.ok and a is not None and (best_a is None or a < best_a):
                best_a, chosen = a, c
        if chosen is not None:
            chosen_aicc = best_a
            notes.append(
                f"{chosen.model} selected by AICc among "
                + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k} ({v})" for k, v in candidates.items())
            )
            flags.append("aicc")
    elif n >= 3:
        c = _fit_parametric("biexp", t, yn, sn, lam_phys)
        candidates["biexp"] = "accepted" if c.ok else f"rejected: {c.reason}"
        if c.ok:
            chosen = c
            chosen_aicc = _aicc(c.rss, n, c.k)
            notes.append("bi-exponential (seed 000 Eq. 1) fitted (n ≤ 4: biexp-first rule, AICc not defined)")
    else:
        notes.append("2 points: no parametric model; mono-exponential through the last two points")

    if chosen is not None:
        return finish(chosen, chosen_aicc)
    if n >= 3:
        why = "; ".join(f"{k}: {v}" for k, v in candidates.items() if isinstance(v, str))
        notes.append(f"parametric fit not accepted ({why})")
        tok = "biexp_rejected" if n < 5 else "parametric_rejected"
        flags.append(tok)
    c = _piecewise_candidate(t, y, sigma, lam_phys, "mono_last2")
    if c.ok:
        notes.append("fallback: trapezoid up to the second-to-last point + mono-exponential through the last two points")
        flags.append("fallback:mono_last2")
        return finish(c)
    notes.append(f"fallback: trapezoid + physical-decay tail (mono_last2 not usable: {c.reason})")
    flags.append("fallback:trapezoid")
    return finish(_piecewise_candidate(t, y, sigma, lam_phys, "trapezoid"))


# ----------------------------------------------------------------------------- single time point


def hanscheid_tia(value, time_h) -> float:
    """Single-time-point integral after Hänscheid et al. 2018 (JNM 59:75): value·2t/ln2.

    ``value`` in value units (MBq, Bq/mL or Gy/h) measured at ``time_h`` (h); returns value·h.
    Exact for a mono-exponential when t equals the effective half-life (or 2× it, approximately);
    recommended at t ≈ 72–96 h for 177Lu-DOTATATE.
    """
    v = _nonneg_scalar(value, "value")
    t = _positive_scalar(time_h, "time_h", "h")
    return v * 2.0 * t / _LN2


def madsen_tia(value, time_h, effective_half_life_h) -> float:
    """Single-time-point integral after Madsen et al. 2018 (Med Phys 45:2318): value·e^(kt)/k.

    k = ln2/``effective_half_life_h`` (a population value, h); ``value`` at ``time_h`` (h).
    Returns value·h. Exact for a mono-exponential with that half-life.
    """
    v = _nonneg_scalar(value, "value")
    t = _positive_scalar(time_h, "time_h", "h")
    k = _LN2 / _positive_scalar(effective_half_life_h, "effective_half_life_h", "h")
    return v * math.exp(k * t) / k


def fit_single_time_point(time_h, value, *, physical_half_life_h: float, effective_half_life_h: float | None = None,
                          value_uncertainty=None) -> TimeActivityFit:
    """Integral from one measurement, as a mono-exponential through the point.

    With ``effective_half_life_h`` (e.g. the same VOI's fit from another cycle, or a population
    value): Madsen et al. 2018, integral = value·e^(kt)/k, k = ln2/T_eff. Without it: Hänscheid et
    al. 2018, integral = value·2t/ln2, which is the same formula with T_eff = t (accurate when the
    scan is taken near the effective half-life, 72–96 h for 177Lu-DOTATATE). The effective
    half-life is bounded by the physical one. The uncertainty propagates the value's uncertainty
    only (the half-life assumption is not included; a warning says so). Returns a
    :class:`TimeActivityFit` with model ``"single_time_point"`` (exponential, so its curve and
    Lea–Catcheside factor are defined).
    """
    t = _positive_scalar(time_h, "time_h", "h")
    v = _nonneg_scalar(value, "value")
    t_phys = _positive_scalar(physical_half_life_h, "physical_half_life_h", "h")
    if effective_half_life_h is None:
        t_eff, method = t, "hanscheid"
        notes = [f"single time point at {t:g} h: Hänscheid 2018 (T_eff taken equal to the scan time)"]
    else:
        t_eff, method = _positive_scalar(effective_half_life_h, "effective_half_life_h", "h"), "madsen"
        notes = [f"single time point at {t:g} h: Madsen 2018 with T_eff {t_eff:.1f} h"]
    if t_eff > t_phys:
        notes.append(f"T_eff {t_eff:.1f} h longer than physical decay: {t_phys:.1f} h used")
        t_eff = t_phys
    k = _LN2 / t_eff
    a = v * math.exp(k * t)
    sigma, _ = _sigma(np.array([v]), value_uncertainty)
    integral = a / k
    unc = float(sigma[0]) * math.exp(k * t) / k
    notes.append("uncertainty from the measured value only (the half-life assumption is not included)")
    return TimeActivityFit(model="single_time_point", params={"A": a, "lambda1_per_h": k, "method": method},
                           integral=integral, effective_half_life_h=t_eff, uncertainty=unc, warnings=notes,
                           times_h=(t,), values=(v,), physical_half_life_h=t_phys,
                           flag_tokens=(f"single_time_point:{method}",), _terms=((a,), (k,)))


def later_cycle_dose_scaling(
    dose_ref_Gy, counts_24h_ref, counts_24h_cycle, volume_24h_ref_ml, volume_24h_cycle_ml
) -> float:
    """Absorbed dose of a later cycle from one 24-h image (seed 001, Hebert et al.).

    AD_c = AD_ref × (counts_24h,c / counts_24h,ref) × (V_24h,ref / V_24h,c), with the reference
    cycle (cycle 2 in seed 001) dosimetry made from serial imaging. Counts in the VOI on the 24-h
    SPECT (any consistent unit), volumes in mL, doses in Gy. Assumes unchanged kinetics.
    """
    d = _nonneg_scalar(dose_ref_Gy, "dose_ref_Gy", "Gy")
    c_ref = _positive_scalar(counts_24h_ref, "counts_24h_ref")
    c_cyc = _nonneg_scalar(counts_24h_cycle, "counts_24h_cycle")
    v_ref = _positive_scalar(volume_24h_ref_ml, "volume_24h_ref_ml", "mL")
    v_cyc = _positive_scalar(volume_24h_cycle_ml, "volume_24h_cycle_ml", "mL")
    return d * (c_cyc / c_ref) * (v_ref / v_cyc)


# ----------------------------------------------------------------------------- voxel-wise


@dataclass(frozen=True)
class VoxelwiseFit:
    """Result of :func:`fit_time_activity_voxelwise` (maps have the images' spatial shape).

    Attributes
    ----------
    integral : ndarray float64
        ∫₀^∞ per voxel, value·h (never NaN; 0 outside the mask and for empty voxels).
    model : ndarray uint8
        Model code per voxel, see :attr:`MODEL_CODES`.
    quality : ndarray float32
        R² of the curve used against the voxel's points (1 for interpolating models, i.e. for
        every fitted voxel with 3 time points; informative for more time points); 0 where
        model code is 0.
    relative_uncertainty : ndarray float32
        1σ relative uncertainty of the integral propagated from ``value_uncertainty``.
    warnings : list[str]
    n_nonfinite_voxels, n_negative_voxels : int
        Voxels with NaN/inf values (set to 0) and with negative values (clipped to 0).
    """

    MODEL_CODES: ClassVar[dict] = {0: "none", 1: "biexp", 2: "mono_last2", 3: "trapezoid"}

    integral: np.ndarray
    model: np.ndarray
    quality: np.ndarray
    relative_uncertainty: np.ndarray
    warnings: list = field(default_factory=list)
    n_nonfinite_voxels: int = 0
    n_negative_voxels: int = 0

    def counts(self) -> dict:
        """Number of voxels per model name."""
        codes, num = np.unique(self.model, return_counts=True)
        return {self.MODEL_CODES[int(c)]: int(k) for c, k in zip(codes, num)}


def _adjugate3(m00, m01, m02, m11, m12, m22):
    """Cofactors (c00, c01, c02, c11, c12, c22) and determinant of a symmetric 3×3 M (vectorised)."""
    c00 = m11 * m22 - m12 * m12
    c01 = m02 * m12 - m01 * m22
    c02 = m01 * m12 - m02 * m11
    c11 = m00 * m22 - m02 * m02
    c12 = m01 * m02 - m00 * m12
    c22 = m00 * m11 - m01 * m01
    return (c00, c01, c02, c11, c12, c22), m00 * c00 + m01 * c01 + m02 * c02


def _adj_times(c, b0, b1, b2):
    """adj(M) b for the cofactors ``c`` of :func:`_adjugate3`."""
    c00, c01, c02, c11, c12, c22 = c
    return (c00 * b0 + c01 * b1 + c02 * b2, c01 * b0 + c11 * b1 + c12 * b2, c02 * b0 + c12 * b1 + c22 * b2)


def _solve3_quadform(m00, m01, m02, m11, m12, m22, g0, g1, g2):
    """gᵀ M⁻¹ g for symmetric 3×3 M given by components (vectorised, Cramer/adjugate)."""
    c, det = _adjugate3(m00, m01, m02, m11, m12, m22)
    a0, a1, a2 = _adj_times(c, g0, g1, g2)
    return (g0 * a0 + g1 * a1 + g2 * a2) / det, det


def _solve3(m00, m01, m02, m11, m12, m22, b0, b1, b2):
    """x = M⁻¹ b for symmetric 3×3 M (vectorised)."""
    c, det = _adjugate3(m00, m01, m02, m11, m12, m22)
    a0, a1, a2 = _adj_times(c, b0, b1, b2)
    return a0 / det, a1 / det, a2 / det


def _biexp_gn(t, Y, S, A, l1, l2, max_iter=40):
    """Vectorised σ-weighted Gauss–Newton (with step halving) for A(e^(−λ1 t) − e^(−λ2 t)).

    t (T,), Y and S (T, n); returns A, l1, l2, converged."""
    tt = t[:, None]
    W = 1.0 / (S * S)

    def cost(A, l1, l2):
        r = A * (np.exp(-l1 * tt) - np.exp(-l2 * tt)) - Y
        return np.sum(W * r * r, axis=0)

    c = cost(A, l1, l2)
    conv = np.zeros(A.shape, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            e1 = np.exp(-l1 * tt)
            e2 = np.exp(-l2 * tt)
            h = e1 - e2
            r = Y - A * h
            j0, j1, j2 = h, -A * tt * e1, A * tt * e2
            m00 = np.sum(W * j0 * j0, 0); m01 = np.sum(W * j0 * j1, 0); m02 = np.sum(W * j0 * j2, 0)
            m11 = np.sum(W * j1 * j1, 0); m12 = np.sum(W * j1 * j2, 0); m22 = np.sum(W * j2 * j2, 0)
            b0 = np.sum(W * j0 * r, 0); b1 = np.sum(W * j1 * r, 0); b2 = np.sum(W * j2 * r, 0)
            dA, d1, d2 = _solve3(m00, m01, m02, m11, m12, m22, b0, b1, b2)
            step = np.ones_like(A)
            accepted = np.zeros(A.shape, dtype=bool)
            nA, n1, n2, nc = A, l1, l2, c
            for _half in range(8):
                tA, t1, t2 = A + step * dA, l1 + step * d1, l2 + step * d2
                tc = cost(tA, t1, t2)
                good = ~accepted & np.isfinite(tc) & (tc <= c) & (t1 > 0) & (t2 > t1)
                nA = np.where(good, tA, nA); n1 = np.where(good, t1, n1)
                n2 = np.where(good, t2, n2); nc = np.where(good, tc, nc)
                accepted |= good
                if accepted.all():
                    break
                step = np.where(accepted, step, step * 0.5)
            rel = (np.abs(nA - A) / np.abs(A) + np.abs(n1 - l1) / l1 + np.abs(n2 - l2) / l2)
            newly = ~accepted | (rel < 1e-10) | (np.abs(c - nc) <= 1e-14 * (1 + c))
            A = np.where(conv, A, nA); l1 = np.where(conv, l1, n1)
            l2 = np.where(conv, l2, n2); c = np.where(conv, c, nc)
            conv |= newly
            if conv.all():
                break
    return A, l1, l2, conv


def _voxel_chunk(t, Y, lam_phys, rel):
    """Fit one chunk Y (T, n) ≥ 0, finite. Returns integral, code, quality, rel_unc.

    Order: bi-exponential on the candidates, then mono_last2, then trapezoid + physical tail on
    whatever is left (each model is only evaluated on the voxels that need it)."""
    T, n = Y.shape
    S = _relative_sigma(Y, rel)
    integral = np.zeros(n)
    var = np.zeros(n)
    code = np.zeros(n, dtype=np.uint8)
    quality = np.zeros(n, dtype=np.float32)
    ymax = Y.max(axis=0)
    nonzero = ymax > 0
    rising = Y[-1] >= Y[:-1].max(axis=0)
    todo = nonzero.copy()

    # 1: bi-exponential (seed 000 Eq. 1)
    tp = t > 0
    if tp.sum() >= 3:
        tpos = t[tp]
        Ypos = Y[tp] if not tp.all() else Y
        cand = nonzero & ~rising & np.all(Ypos > 0, axis=0)
        if cand.any():
            idx = np.flatnonzero(cand)
            Yp = Ypos[:, idx]
            Sp = S[:, idx][tp] if not tp.all() else S[:, idx]
            if tpos.size == 3:
                A, l1, l2, ok = _biexp3_exact(tpos, Yp)
            else:
                mid = int(np.argmin(np.abs(np.log(tpos[1:-1]) - 0.5 * (np.log(tpos[0]) + np.log(tpos[-1]))))) + 1
                sel = [0, mid, tpos.size - 1]
                A, l1, l2, ok0 = _biexp3_exact(tpos[sel], Yp[sel])
                # fallback start where the 3-point solve fails: last-segment rate, 2-h uptake
                with np.errstate(all="ignore"):
                    ls0 = np.maximum(np.log(Yp[-2] / Yp[-1]) / (tpos[-1] - tpos[-2]), lam_phys) * 1.05
                    A0 = Yp[-1] * np.exp(ls0 * tpos[-1])
                A = np.where(ok0, A, A0)
                l1 = np.where(ok0, l1, ls0)
                l2 = np.where(ok0, l2, ls0 + _LN2 / 2.0)
                A, l1, l2, ok = _biexp_gn(tpos, Yp, Sp, A, l1, l2)
            with np.errstate(all="ignore"):
                d = l2 - l1
                ok &= (l1 > lam_phys * (1 + _BOUND_RTOL)) & (d > _BOUND_RTOL * l1) & (
                    d < _MAX_UPTAKE_EXCESS_PER_H * (1 - _BOUND_RTOL)) & (A > 0)
            if ok.any():
                if not ok.all():
                    idx, Yp, Sp, A, l1, l2 = idx[ok], Yp[:, ok], Sp[:, ok], A[ok], l1[ok], l2[ok]
                with np.errstate(all="ignore"):
                    tt = tpos[:, None]
                    e1 = np.exp(-l1 * tt)
                    e2 = np.exp(-l2 * tt)
                    h = e1 - e2
                    f = A * h
                    Wt = 1.0 / (Sp * Sp)
                    j0, j1, j2 = h, -A * tt * e1, A * tt * e2
                    Wj0, Wj1 = Wt * j0, Wt * j1
                    g0 = 1 / l1 - 1 / l2
                    vb, _det = _solve3_quadform(
                        np.sum(Wj0 * j0, 0), np.sum(Wj0 * j1, 0), np.sum(Wj0 * j2, 0),
                        np.sum(Wj1 * j1, 0), np.sum(Wj1 * j2, 0), np.sum(Wt * j2 * j2, 0),
                        g0, -A / (l1 * l1), A / (l2 * l2),
                    )
                    Ib = A * g0
                    good = np.isfinite(Ib) & (Ib > 0) & np.isfinite(vb) & (vb >= 0)
                    if tpos.size == 3:
                        good &= np.max(np.abs(f - Yp) / Yp, axis=0) < 1e-6
                sel_i = idx[good]
                integral[sel_i] = Ib[good]
                var[sel_i] = vb[good]
                code[sel_i] = 1
                todo[sel_i] = False
                if tpos.size > 3:
                    res = Yp[:, good] - f[:, good]
                    ym = Yp[:, good].mean(0)
                    tss = np.sum((Yp[:, good] - ym) ** 2, 0)
                    quality[sel_i] = np.where(tss > 0, 1 - np.sum(res * res, 0) / np.where(tss > 0, tss, 1), 1.0)
                else:
                    quality[sel_i] = 1.0

    # 2: mono_last2 where the last two points decay faster than physical decay
    if todo.any():
        dt = t[-1] - t[-2]
        cand2 = todo & ~rising & (Y[-2] > 0) & (Y[-1] > 0)
        idx = np.flatnonzero(cand2)
        if idx.size:
            y2, y1 = Y[-2, idx], Y[-1, idx]
            ls = np.log(y2 / y1) / dt
            fast = ls > lam_phys
            idx, ls, y2, y1 = idx[fast], ls[fast], y2[fast], y1[fast]
        if idx.size:
            kt2, _ = _knots(t[:-1], np.zeros(T - 1))
            w2 = _trapz_weights(kt2)[kt2.size - (T - 1):]
            Ys = Y[:, idx]
            S2 = S[:, idx]
            gr = np.zeros((T, idx.size))
            gr[:-1] = w2[:, None]
            gr[-2] += 1 / ls - 1 / (ls * ls * dt)
            gr[-1] += y2 / (ls * ls * y1 * dt)
            integral[idx] = w2 @ Ys[:-1] + y2 / ls
            var[idx] = np.sum((gr * S2) ** 2, axis=0)
            code[idx] = 2
            quality[idx] = 1.0
            todo[idx] = False

    # 3: trapezoid + physical-decay tail for the rest
    if todo.any():
        idx = np.flatnonzero(todo)
        Ys = Y[:, idx]
        kt, _ = _knots(t, np.zeros(T))
        g = _trapz_weights(kt)[kt.size - T:]
        integral[idx] = g @ Ys + Ys[-1] / lam_phys
        g = g.copy()
        g[-1] += 1.0 / lam_phys
        var[idx] = np.sum((g[:, None] * S[:, idx]) ** 2, axis=0)
        code[idx] = 3
        quality[idx] = 1.0

    with np.errstate(all="ignore"):
        relu = np.where(integral > 0, np.sqrt(var) / np.where(integral > 0, integral, 1.0), 0.0)
    return integral, code, quality, relu.astype(np.float32)


def fit_time_activity_voxelwise(
    times_h,
    images,
    physical_half_life_h: float,
    mask=None,
    *,
    value_uncertainty: float | None = None,
    chunk_voxels: int = 8192,
) -> VoxelwiseFit:
    """Voxel-wise time integration of registered images, fully vectorised (no per-voxel loop).

    Per voxel the same rule as ``fit_time_activity(model="auto")`` for n ≤ 4 points is used:
    rising → trapezoid + physical tail; else the seed-000 bi-exponential A(e^(−λ1 t) − e^(−λ2 t))
    (exact interpolation through 3 points by a vectorised 1-D safeguarded Newton solve, or a
    vectorised σ-weighted Gauss–Newton for more points; points at t = 0 are not used by this
    model, which is 0 there), accepted only if λ1 > λ_phys, λ2 > λ1, A > 0 and it converged;
    else mono_last2 if the last two points decay faster than physical decay; else trapezoid +
    physical-decay tail. AICc selection (used by the VOI fit for ≥ 5 points) is not applied
    voxel-wise.

    Parameters
    ----------
    times_h : sequence of float
        Acquisition times, h after administration (T ≥ 2, strictly increasing).
    images : array (T, ...)
        Registered images (activity concentration, or dose rate), one per time point.
    physical_half_life_h : float
        Physical half-life, h.
    mask : bool array of the spatial shape, optional
        Voxels to fit; others get 0 (model code 0).
    value_uncertainty : float, optional
        Relative 1σ per voxel value (default 5 %), for the weights (T > 3) and the
        ``relative_uncertainty`` map.
    chunk_voxels : int
        Voxels processed per vectorised block (memory/speed trade-off).

    Returns
    -------
    VoxelwiseFit
        Integral map in value·h (e.g. Bq·h/mL, or Gy for dose-rate maps), model codes, quality.
        NaN/inf voxels are set to 0 and counted; negative values are clipped to 0 and counted.
    """
    t = _as_times(times_h, "times_h", min_points=2)
    try:
        imgs = np.asarray(images)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputDataError(f"images must be an array of shape (T, ...); {exc}") from None
    if imgs.dtype == object or not (np.issubdtype(imgs.dtype, np.number) or imgs.dtype == bool):
        raise InputDataError(f"images must be a numeric array of shape (T, ...), got dtype {imgs.dtype}")
    if imgs.ndim < 2:
        raise InputDataError(f"images must have shape (T, ...) with at least one spatial axis, got {imgs.shape}")
    if imgs.shape[0] != t.size:
        raise InputDataError(
            f"images has {imgs.shape[0]} time frames (axis 0) but times_h has {t.size} entries"
        )
    t_phys = _positive_scalar(physical_half_life_h, "physical_half_life_h", "h")
    lam_phys = _LN2 / t_phys
    rel = DEFAULT_RELATIVE_UNCERTAINTY if value_uncertainty is None else value_uncertainty
    try:
        rel = float(rel)
    except (TypeError, ValueError):
        raise InputDataError("value_uncertainty must be a relative fraction (a number) for voxel-wise fits") from None
    if not math.isfinite(rel) or rel <= 0:
        raise InputDataError(f"value_uncertainty must be finite and > 0, got {rel!r}")
    if not isinstance(chunk_voxels, (int, np.integer)) or chunk_voxels < 1:
        raise InputDataError(f"chunk_voxels must be a positive integer, got {chunk_voxels!r}")
    spatial = imgs.shape[1:]
    T = t.size
    flat = imgs.reshape(T, -1)
    nvox = flat.shape[1]
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != spatial:
            raise InputDataError(f"mask has shape {m.shape} but the images' spatial shape is {spatial}")
        if m.dtype != bool:
            if not np.issubdtype(m.dtype, np.number) or not np.all(np.isin(m, (0, 1))):
                raise InputDataError("mask must be boolean (or 0/1)")
            m = m.astype(bool)
        sel = np.flatnonzero(m.ravel())
    else:
        sel = None

    integral = np.zeros(nvox)
    code = np.zeros(nvox, dtype=np.uint8)
    quality = np.zeros(nvox, dtype=np.float32)
    relu = np.zeros(nvox, dtype=np.float32)
    n_nonfinite = 0
    n_negative = 0
    n_sel = nvox if sel is None else sel.size
    for start in range(0, n_sel, int(chunk_voxels)):
        stop = min(start + int(chunk_voxels), n_sel)
        ids = slice(start, stop) if sel is None else sel[start:stop]
        Y = np.array(flat[:, ids], dtype=np.float64)
        fin = np.isfinite(Y).all(axis=0)
        if not fin.all():
            n_nonfinite += int((~fin).sum())
            Y[:, ~fin] = 0.0
        neg = (Y < 0).any(axis=0)
        if neg.any():
            n_negative += int(neg.sum())
            np.maximum(Y, 0.0, out=Y)
        I, c, q, r = _voxel_chunk(t, Y, lam_phys, rel)
        integral[ids] = I
        code[ids] = c
        quality[ids] = q
        relu[ids] = r
    ws = []
    if n_nonfinite:
        ws.append(f"{n_nonfinite} voxel(s) with NaN/inf values at some time point were set to 0")
    if n_negative:
        ws.append(f"{n_negative} voxel(s) with negative values: negatives clipped to 0")
    n_fb = int(np.count_nonzero(code >= 2))
    if n_fb:
        ws.append(
            f"{n_fb} voxel(s) used a fallback (mono_last2: {int(np.count_nonzero(code == 2))}, "
            f"trapezoid + physical tail: {int(np.count_nonzero(code == 3))})"
        )
    return VoxelwiseFit(
        integral=integral.reshape(spatial), model=code.reshape(spatial),
        quality=quality.reshape(spatial), relative_uncertainty=relu.reshape(spatial),
        warnings=ws, n_nonfinite_voxels=n_nonfinite, n_negative_voxels=n_negative,
    )
