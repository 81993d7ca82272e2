"""Candidate models of a time-activity curve: mono-, bi-, tri-exponential fits (Macsuka et al. 2026 Eq. 1 and relatives) and
piecewise-linear (trapezoid) integrals with their tails; AICc for model selection."""

from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import optimize

from ._inputs import (
    _BOUND_RTOL,
    _LN2,
    _MAX_CONDITION,
    _MAX_UPTAKE_EXCESS_PER_H,
    _MIN_UPTAKE_EXCESS_PER_H,
    _RSS_FLOOR_PER_POINT,
)


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
