"""Radiobiology of protracted irradiation: Lea–Catcheside factor, BED, EQD2, and activity planning.

Linear-quadratic model with incomplete repair (Dale 1985; EANM/MIRD practice):

    BED = Σ_cycles [ D_c + G_c · D_c² / (α/β) ],      EQD2 = BED / (1 + 2 Gy / (α/β))

with the Lea–Catcheside factor of a dose-rate curve Ḋ(t), repair rate μ = ln2 / T_rep,

    G = (2 / D²) ∫₀^∞ Ḋ(t) ∫₀^t Ḋ(w) e^(−μ(t−w)) dw dt,   D = ∫₀^∞ Ḋ(t) dt.

For Ḋ(t) = Σ_i a_i e^(−b_i t) (b_i > 0) the double integral is, in closed form,

    ∫∫ = Σ_i Σ_j a_i a_j / ((b_i + b_j)(b_i + μ)),

(inner integral Σ_j a_j (e^(−b_j t) − e^(−μ t))/(μ − b_j), then the (μ − b_j) cancels, so there
is no singularity at b_j = μ). Mono-exponential: G = λ/(λ + μ) = T_rep/(T_rep + T_eff).
Macsuka et al. 2026 Eq. 1, Ḋ = A(e^(−λ1 t) − e^(−λ2 t)), is the case a = (A, −A), b = (λ1, λ2). G depends on
the shape only, so an activity curve of the same shape can be used instead of the dose rate.

Units: doses in Gy (``_Gy``), times in h (``_h``), rates in 1/h (``_per_h``), activities in GBq.

Kidney parameters (:data:`KIDNEY`): α/β = 2.6 Gy, T_rep = 2.8 h, as used by Sundlöv et al. 2022
(Sundlöv et al. 2022, ILUMINET, discussion: "α/β = 2.6, and repair half-life of 2.8 h assumed",
citing Sundlöv et al. 2017, EJNMMI 44:1480, its ref. 20, for the BED method). Tumour parameters
vary widely in the literature and must be supplied by the caller (:class:`TissueParameters`).

Planning rules
--------------
* :func:`plan_next_activity_seed000` — OZM-067 (Macsuka et al. 2026, Methods): first cycle 7.4 GBq; at each
  later cycle AA = (23 Gy − kidney AD delivered so far) / (kidney AD/AA) / (cycles remaining),
  capped at 11.1 GBq.
* :func:`plan_seed002` — ILUMINET (Sundlöv et al. 2022): 7.4 GBq cycles, 10 ± 2 weeks apart, until the
  cumulative renal BED reaches 27 ± 2 Gy (step 1), or 40 ± 2 Gy for patients eligible for step 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate

from ..checks import scalar
from ..errors import InputDataError

__all__ = [
    "KIDNEY",
    "KIDNEY_ALPHA_BETA_GY",
    "KIDNEY_REPAIR_HALF_TIME_H",
    "TissueParameters",
    "ActivityPlan",
    "lea_catcheside_g",
    "lea_catcheside_g_mono",
    "lea_catcheside_g_biexp",
    "g_factor_from_fit",
    "bed_per_cycle_Gy",
    "bed_Gy",
    "eqd2_Gy",
    "plan_next_activity_seed000",
    "plan_seed002",
]

_LN2 = math.log(2.0)

#: Kidney α/β (Gy) used by Sundlöv et al. 2022.
KIDNEY_ALPHA_BETA_GY = 2.6
#: Kidney repair half-time (h) used by Sundlöv et al. 2022.
KIDNEY_REPAIR_HALF_TIME_H = 2.8


@dataclass(frozen=True)
class TissueParameters:
    """Linear-quadratic parameters of a tissue: α/β (Gy) and repair half-time (h)."""

    alpha_beta_Gy: float
    repair_half_time_h: float
    name: str = ""
    source: str = ""

    def __post_init__(self):
        _pos(self.alpha_beta_Gy, "alpha_beta_Gy")
        _pos(self.repair_half_time_h, "repair_half_time_h")


# ----------------------------------------------------------------------------- validation


def _pos(x, name: str) -> float:
    return scalar(x, name, positive=True)


def _nonneg(x, name: str) -> float:
    return scalar(x, name, nonneg=True)


def _vector(x, name: str, allow_empty: bool = False) -> np.ndarray:
    try:
        a = np.atleast_1d(np.asarray(x, dtype=float))
    except (TypeError, ValueError):
        raise InputDataError(f"{name} must be a number or a 1-D sequence of numbers") from None
    if a.ndim != 1:
        raise InputDataError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0 and not allow_empty:
        raise InputDataError(f"{name} must not be empty")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise InputDataError(f"{name} contains NaN or infinite values (index {int(bad[0])})")
    return a


KIDNEY = TissueParameters(
    KIDNEY_ALPHA_BETA_GY, KIDNEY_REPAIR_HALF_TIME_H, "kidney",
    "Sundlöv et al. 2022 and its ref. 20 (Sundlöv et al. 2017)",
)


# ----------------------------------------------------------------------------- Lea–Catcheside


def lea_catcheside_g(coefficients, rates_per_h, repair_half_time_h: float = KIDNEY_REPAIR_HALF_TIME_H) -> float:
    """Lea–Catcheside factor G of Ḋ(t) = Σ a_i e^(−b_i t), closed form (dimensionless, 0 < G ≤ 1).

    Parameters
    ----------
    coefficients : sequence of float
        a_i in any dose-rate (or activity) unit; may be negative (uptake terms).
    rates_per_h : sequence of float
        b_i > 0, 1/h, same length.
    repair_half_time_h : float
        Sub-lethal damage repair half-time T_rep, h (μ = ln2/T_rep).
    """
    a = _vector(coefficients, "coefficients")
    b = _vector(rates_per_h, "rates_per_h")
    if a.size != b.size:
        raise InputDataError(f"coefficients has {a.size} entries but rates_per_h has {b.size}")
    bad = np.flatnonzero(b <= 0)
    if bad.size:
        raise InputDataError(f"rates_per_h must be > 0 (index {int(bad[0])} is {b[bad[0]]:g})")
    mu = _LN2 / _pos(repair_half_time_h, "repair_half_time_h")
    D = float(np.sum(a / b))
    if not D > 0:
        raise InputDataError(f"the curve Σ coefficients·e^(−rates·t) must integrate to > 0, got {D:g}")
    bi = b[:, None]
    bj = b[None, :]
    S = float(np.sum(np.outer(a, a) / ((bi + bj) * (bi + mu))))
    return 2.0 * S / (D * D)


def lea_catcheside_g_mono(effective_half_life_h: float, repair_half_time_h: float = KIDNEY_REPAIR_HALF_TIME_H) -> float:
    """G = T_rep / (T_rep + T_eff) for a mono-exponential dose rate (T_eff in h, T_rep in h)."""
    te = _pos(effective_half_life_h, "effective_half_life_h")
    tr = _pos(repair_half_time_h, "repair_half_time_h")
    return tr / (tr + te)


def lea_catcheside_g_biexp(
    washout_rate_per_h: float, uptake_rate_per_h: float, repair_half_time_h: float = KIDNEY_REPAIR_HALF_TIME_H
) -> float:
    """G for Macsuka et al. 2026 Eq. 1, Ḋ = A(e^(−λ1 t) − e^(−λ2 t)) (A cancels); λ2 > λ1 > 0, in 1/h."""
    l1 = _pos(washout_rate_per_h, "washout_rate_per_h")
    l2 = _pos(uptake_rate_per_h, "uptake_rate_per_h")
    if not l2 > l1:
        raise InputDataError(
            f"uptake_rate_per_h ({l2:g}) must be greater than washout_rate_per_h ({l1:g})"
        )
    return lea_catcheside_g([1.0, -1.0], [l1, l2], repair_half_time_h)


def _g_piecewise(knots_h, knot_values, tail_rate_per_h, mu) -> float:
    """G of a curve linear between knots (t, v) and v_K e^(−λ(t − t_K)) after the last knot.

    The repair-weighted inner integral q(t) = ∫₀^t Ḋ(w) e^(−μ(t−w)) dw is in closed form on each
    linear segment; ∫ Ḋ q over each segment is integrated with adaptive quadrature (quad, smooth
    integrand) and the tail in closed form."""
    kt = np.asarray(knots_h, dtype=float)
    kv = np.asarray(knot_values, dtype=float)
    lam = float(tail_rate_per_h)
    D = float(np.sum(np.diff(kt) * (kv[1:] + kv[:-1]) / 2.0)) + kv[-1] / lam
    if not D > 0:
        raise InputDataError("the curve must integrate to > 0")
    q0 = 0.0
    J = 0.0
    # before the first knot the curve is zero (knots start at 0 for kinetics fits)
    for a, b, va, vb in zip(kt[:-1], kt[1:], kv[:-1], kv[1:]):
        h = b - a
        if h <= 0:
            continue
        p, m = va, (vb - va) / h

        def q(s, q0=q0, p=p, m=m):
            e = math.exp(-mu * s)
            return q0 * e + p / mu * (1 - e) + m * (s / mu - (1 - e) / (mu * mu))

        val, _err = integrate.quad(lambda s: (p + m * s) * q(s), 0.0, h, epsabs=0.0, epsrel=1e-12, limit=200)
        J += val
        q0 = q(h)
    v = kv[-1]
    J += v * q0 / (lam + mu) + v * v / (2 * lam * (lam + mu))
    return 2.0 * J / (D * D)


def g_factor_from_fit(fit, repair_half_time_h: float = KIDNEY_REPAIR_HALF_TIME_H) -> float:
    """Lea–Catcheside G of a fitted curve (a :class:`~LuDosimetryLib.kinetics.TimeActivityFit`).

    Sums of exponentials (mono, biexp, triexp) use the closed form; the piecewise fallbacks
    (trapezoid, mono_last2: linear segments from (0, 0) then an exponential tail) use a closed-form
    repair kernel on each segment with adaptive quadrature for the outer integral.
    """
    tr = _pos(repair_half_time_h, "repair_half_time_h")
    if getattr(fit, "is_exponential", False):
        c, r = fit.exponential_terms()
        return lea_catcheside_g(c, r, tr)
    for attr in ("knots_h", "knot_values", "tail_rate_per_h"):
        if not hasattr(fit, attr):
            raise InputDataError(f"fit must be a TimeActivityFit-like object (missing {attr!r})")
    kt = np.asarray(fit.knots_h, dtype=float)
    kv = np.asarray(fit.knot_values, dtype=float)
    if kt.size == 0 or kt.size != kv.size:
        raise InputDataError("fit has no piecewise curve (knots_h / knot_values)")
    return _g_piecewise(kt, kv, _pos(fit.tail_rate_per_h, "fit.tail_rate_per_h"), _LN2 / tr)


# ----------------------------------------------------------------------------- BED / EQD2


def _doses_and_g(doses_Gy, g_factors):
    d = _vector(doses_Gy, "doses_Gy")
    neg = np.flatnonzero(d < 0)
    if neg.size:
        raise InputDataError(f"doses_Gy must be >= 0 (cycle index {int(neg[0])} is {d[neg[0]]:g})")
    g = _vector(g_factors, "g_factors")
    if g.size == 1 and d.size > 1:
        g = np.full(d.size, g[0])
    if g.size != d.size:
        raise InputDataError(f"g_factors has {g.size} entries but doses_Gy has {d.size} (one per cycle)")
    bad = np.flatnonzero((g < 0) | (g > 1))
    if bad.size:
        raise InputDataError(f"g_factors must be within [0, 1] (index {int(bad[0])} is {g[bad[0]]:g})")
    return d, g


def bed_per_cycle_Gy(doses_Gy, g_factors, alpha_beta_Gy: float = KIDNEY_ALPHA_BETA_GY) -> np.ndarray:
    """BED of each cycle, D + G·D²/(α/β), Gy (doses per cycle in Gy, G per cycle or one for all)."""
    d, g = _doses_and_g(doses_Gy, g_factors)
    ab = _pos(alpha_beta_Gy, "alpha_beta_Gy")
    return d + g * d * d / ab


def bed_Gy(doses_Gy, g_factors, alpha_beta_Gy: float = KIDNEY_ALPHA_BETA_GY) -> float:
    """Total BED over cycles, Σ [D_c + G_c·D_c²/(α/β)], Gy. Kidney default α/β = 2.6 Gy.

    Cycles are weeks apart (complete repair between cycles), so only intra-cycle terms appear.
    """
    return float(np.sum(bed_per_cycle_Gy(doses_Gy, g_factors, alpha_beta_Gy)))


def eqd2_Gy(doses_Gy, g_factors, alpha_beta_Gy: float = KIDNEY_ALPHA_BETA_GY) -> float:
    """Equivalent dose in 2-Gy fractions, EQD2 = BED / (1 + 2/(α/β)), Gy."""
    ab = _pos(alpha_beta_Gy, "alpha_beta_Gy")
    return bed_Gy(doses_Gy, g_factors, ab) / (1.0 + 2.0 / ab)


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class ActivityPlan:
    """Next-cycle activity proposal with the numbers and the reasoning behind it.

    ``next_activity_GBq`` is 0 when no further cycle is proposed (``continue_treatment`` False).
    """

    rule: str
    next_activity_GBq: float
    continue_treatment: bool
    reasoning: str
    numbers: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def _last_positive(x, name: str) -> float:
    a = _vector(x, name)
    if np.any(a <= 0):
        raise InputDataError(f"{name} must be > 0")
    return float(a[-1])


def plan_next_activity_seed000(
    kidney_doses_Gy_so_far,
    kidney_ad_per_aa_Gy_per_GBq,
    cycles_remaining: int,
    limit_Gy: float = 23.0,
    first_cycle_GBq: float = 7.4,
    cap_GBq: float = 11.1,
) -> ActivityPlan:
    """Macsuka et al. 2026 (OZM-067) rule: AA = (limit − delivered kidney AD)/(kidney AD/AA)/cycles remaining.

    Parameters
    ----------
    kidney_doses_Gy_so_far : sequence of float
        Kidney absorbed dose (Gy) of each completed cycle; empty before cycle 1 (→ first_cycle_GBq).
    kidney_ad_per_aa_Gy_per_GBq : float or sequence
        Measured kidney AD/AA, Gy/GBq; with a sequence (one per cycle) the latest is used.
        Ignored (may be None) before cycle 1.
    cycles_remaining : int
        Cycles still to be given, including the one being planned (≥ 1).
    limit_Gy, first_cycle_GBq, cap_GBq : float
        Cumulative kidney AD limit (23 Gy), first-cycle activity (7.4 GBq), cap (11.1 GBq).
    """
    d = _vector(kidney_doses_Gy_so_far, "kidney_doses_Gy_so_far", allow_empty=True)
    if np.any(d < 0):
        raise InputDataError("kidney_doses_Gy_so_far must be >= 0")
    if isinstance(cycles_remaining, bool) or not isinstance(cycles_remaining, (int, np.integer)) or cycles_remaining < 1:
        raise InputDataError(f"cycles_remaining must be an integer >= 1, got {cycles_remaining!r}")
    limit = _pos(limit_Gy, "limit_Gy")
    first = _pos(first_cycle_GBq, "first_cycle_GBq")
    cap = _pos(cap_GBq, "cap_GBq")
    rule = "kidney_23Gy"
    if d.size == 0:
        return ActivityPlan(
            rule, first, True,
            f"Cycle 1: standard activity {first:g} GBq (first cycle standardised, Macsuka et al., J Nucl Med 2026).",
            {"delivered_Gy": 0.0, "limit_Gy": limit, "cycles_remaining": int(cycles_remaining)},
        )
    adaa = _last_positive(kidney_ad_per_aa_Gy_per_GBq, "kidney_ad_per_aa_Gy_per_GBq")
    delivered = float(d.sum())
    remaining = limit - delivered
    numbers = {
        "delivered_Gy": delivered, "remaining_Gy": remaining, "limit_Gy": limit,
        "kidney_ad_per_aa_Gy_per_GBq": adaa, "cycles_remaining": int(cycles_remaining), "cap_GBq": cap,
    }
    if remaining <= 0:
        return ActivityPlan(
            rule, 0.0, False,
            f"Kidney AD delivered {delivered:.2f} Gy has reached the {limit:g} Gy limit: no further cycle.",
            numbers,
        )
    uncapped = remaining / adaa / cycles_remaining
    aa = min(uncapped, cap)
    numbers.update({"uncapped_activity_GBq": uncapped, "projected_total_Gy": delivered + aa * adaa * cycles_remaining})
    text = (
        f"Remaining kidney AD {limit:g} − {delivered:.2f} = {remaining:.2f} Gy; at {adaa:.3f} Gy/GBq over "
        f"{cycles_remaining} remaining cycle(s): {remaining:.2f}/{adaa:.3f}/{cycles_remaining} = {uncapped:.2f} GBq"
    )
    text += f", capped at {cap:g} GBq." if uncapped > cap else "."
    return ActivityPlan(rule, aa, True, text, numbers)


def plan_seed002(
    kidney_doses_Gy_so_far,
    g_factors_so_far,
    kidney_ad_per_aa_Gy_per_GBq=None,
    step: int = 1,
    next_g_factor: float | None = None,
    alpha_beta_Gy: float = KIDNEY_ALPHA_BETA_GY,
    activity_per_cycle_GBq: float = 7.4,
    target_bed_Gy: float | None = None,
    tolerance_Gy: float = 2.0,
) -> ActivityPlan:
    """Sundlöv et al. 2022 (ILUMINET) rule: fixed 7.4 GBq cycles until the renal BED reaches 27 ± 2 Gy.

    Step 1 target 27 Gy, step 2 target 40 Gy (only for patients eligible for step 2 in the trial:
    GFR > 50 mL/min with ≤ 40 % decrease, no grade 3–4 toxicity, age ≤ 70, no diabetes/uncontrolled
    hypertension, no prior liver embolisation or chemotherapy; a clinical decision, not checked
    here). Tolerance ± 2 Gy.

    Decision (our reading of "up to a cumulative renal BED of 27 ± 2 Gy"; the paper gives no
    finer rule): with B the BED delivered and ΔB the BED predicted for one more cycle of
    ``activity_per_cycle_GBq`` (kidney AD/AA × activity, G of the next cycle = ``next_g_factor``
    or the last measured one):
      * no cycle given yet → give the first cycle;
      * B ≥ target − tolerance → stop (target window reached);
      * B + ΔB ≤ target + tolerance → give another cycle;
      * otherwise stop, and report the reduced activity that would reach the target exactly
        (not part of the published fixed-activity rule; for information).

    Parameters
    ----------
    kidney_doses_Gy_so_far : sequence of float
        Kidney AD per completed cycle, Gy (may be empty).
    g_factors_so_far : sequence of float
        Lea–Catcheside G of each completed cycle (same length).
    kidney_ad_per_aa_Gy_per_GBq : float or sequence, optional
        For the prediction of the next cycle (latest used); required once a cycle has been given.
    """
    d = _vector(kidney_doses_Gy_so_far, "kidney_doses_Gy_so_far", allow_empty=True)
    g = _vector(g_factors_so_far, "g_factors_so_far", allow_empty=True)
    if g.size != d.size:
        raise InputDataError(
            f"g_factors_so_far has {g.size} entries but kidney_doses_Gy_so_far has {d.size}"
        )
    if step not in (1, 2):
        raise InputDataError(f"step must be 1 or 2, got {step!r}")
    ab = _pos(alpha_beta_Gy, "alpha_beta_Gy")
    act = _pos(activity_per_cycle_GBq, "activity_per_cycle_GBq")
    tol = _nonneg(tolerance_Gy, "tolerance_Gy")
    target = _pos(target_bed_Gy, "target_bed_Gy") if target_bed_Gy is not None else (27.0 if step == 1 else 40.0)
    rule = "renal_BED_27Gy" if step == 1 else "renal_BED_40Gy"
    B = bed_Gy(d, g, ab) if d.size else 0.0
    numbers = {"delivered_bed_Gy": B, "target_bed_Gy": target, "tolerance_Gy": tol, "cycles_given": int(d.size)}
    if d.size == 0:
        return ActivityPlan(rule, act, True, f"Cycle 1: {act:g} GBq (fixed activity per cycle, Sundlöv et al., Eur J Nucl Med Mol Imaging 2022).", numbers)
    if kidney_ad_per_aa_Gy_per_GBq is None:
        raise InputDataError("kidney_ad_per_aa_Gy_per_GBq is required to predict the next cycle's BED")
    adaa = _last_positive(kidney_ad_per_aa_Gy_per_GBq, "kidney_ad_per_aa_Gy_per_GBq")
    gn = float(g[-1]) if next_g_factor is None else _nonneg(next_g_factor, "next_g_factor")
    if gn > 1:
        raise InputDataError(f"next_g_factor must be within [0, 1], got {gn:g}")
    dn = adaa * act
    dB = dn + gn * dn * dn / ab
    numbers.update({"predicted_next_dose_Gy": dn, "predicted_next_bed_Gy": dB, "projected_bed_Gy": B + dB})
    head = f"Renal BED delivered {B:.2f} Gy after {d.size} cycle(s); target {target:g} ± {tol:g} Gy"
    if B >= target - tol:
        return ActivityPlan(rule, 0.0, False, head + ": target window reached, no further cycle.", numbers)
    if B + dB <= target + tol:
        return ActivityPlan(
            rule, act, True,
            head + f"; one more {act:g} GBq cycle adds ≈ {dB:.2f} Gy (kidney {dn:.2f} Gy at "
            f"{adaa:.3f} Gy/GBq, G = {gn:.4f}) → {B + dB:.2f} Gy, within the limit {target:g} ± {tol:g} Gy.",
            numbers,
        )
    # reduced activity x solving B + k1 x + k2 x² = target
    k1 = adaa
    k2 = gn * adaa * adaa / ab
    rem = target - B
    x = rem / k1 if k2 == 0 else (-k1 + math.sqrt(k1 * k1 + 4 * k2 * rem)) / (2 * k2)
    numbers["reduced_activity_to_target_GBq"] = x
    return ActivityPlan(
        rule, 0.0, False,
        head + f"; a full {act:g} GBq cycle would add ≈ {dB:.2f} Gy → {B + dB:.2f} Gy > "
        f"{target + tol:g} Gy: no further cycle of this activity. (For information: {x:.2f} GBq would reach {target:g} Gy; a "
        "reduced final activity is not part of the published fixed-activity rule.)",
        numbers,
        ["stopping below the target window because a full cycle would exceed it"],
    )
