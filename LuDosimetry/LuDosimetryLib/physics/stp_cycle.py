"""A cycle imaged once (single time point, STP): which method, which T_eff, and how sure.

Method choice (``options.stp_method``, default ``"auto"``):

``"ratio"``  Hebert et al., J Nucl Med 2024: where the same VOI has a fully imaged cycle (the
    nearest one), the STP cycle's absorbed dose is that cycle's dose scaled by the ratio of the
    activities at the scan time and by the masses (:func:`kinetics.later_cycle_dose_scaling`):
    AD_c = AD_ref × A_c(t)/A_ref(t) × m_ref/m_c, with A_ref(t) the reference cycle's fitted
    (partial-volume corrected) curve at the STP scan time t. It assumes the kinetics of the two
    cycles are the same; the curve of the STP cycle is the reference curve scaled by the ratio.
``"madsen"``  Madsen et al., Med Phys 2018: TIA = A(t)·e^(kt)/k, k = ln2/T_eff, with T_eff from
    the patient (the same VOI's fit in another cycle) or else the population value of
    :data:`POPULATION_T_EFF_H` for the VOI kind/organ.
``"hanscheid"``  Hänscheid et al., J Nucl Med 2018 (59:75): TIA = A(t)·2t/ln2 (T_eff taken equal
    to t). The paper recommends one measurement after about 4 days (96 h); the approximation is
    within 6 % of the mono-exponential integral when T_eff ≤ t ≤ 2·T_eff (2x·2^(−x) ∈ [1, 1.06]
    for x = t/T_eff ∈ [1, 2]) and degrades quickly outside (−31 % at 24 h for T_eff 50 h).
    It is used only when requested; a scan outside ``options.hanscheid_window_h`` (default
    :data:`HANSCHEID_WINDOW_H` = 72–120 h, i.e. 4 d ± 1 d around the paper's 96 h) is flagged
    ``stp:hanscheid_outside_window`` with a warning.
``"auto"``  ratio when the VOI has a fully imaged cycle, else Madsen with the population T_eff.

Each row records ``single_time_point_method`` ("" for a multi-point cycle), ``t_eff_h`` and
``t_eff_uncertainty_h`` (1σ of the T_eff assumption: from the reference fit's relative
uncertainty, or the population spread) and ``stp_t_eff_dose_uncertainty_Gy`` (the part of the
dose uncertainty due to T_eff). ``absorbed_dose_uncertainty_Gy`` of an STP row combines the
measured value's and the T_eff assumption's uncertainty in quadrature: for Madsen/Hänscheid
d ln TIA / d T_eff = (1 − kt)/T_eff.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import InputDataError
from . import kinetics
from .dose import led_dose_Gy

__all__ = ["HANSCHEID_WINDOW_H", "POPULATION_T_EFF_H", "POPULATION_T_EFF_SOURCE", "STP_METHODS", "population_t_eff",
           "single_time_point_dose"]

STP_METHODS = ("auto", "ratio", "madsen", "hanscheid")
#: Scan-time window (h) in which the Hänscheid method is used unflagged. Centre: the paper's single
#: measurement "after 4 days" (96 h; title of Hänscheid et al., J Nucl Med 2018;59(1):75–81, as cited in
#: Sundlöv et al., Eur J Nucl Med Mol Imaging 2022, ref. 31). The ±1 d width is this project's choice
#: (approximate, unverified against the paper): with the kidney and tumour T_eff of
#: :data:`POPULATION_T_EFF_H` the 2t/ln2 integral stays within 15 % of the mono-exponential one over
#: 72–120 h (tested in Testing/test_stp_cycle.py).
HANSCHEID_WINDOW_H = (72.0, 120.0)

#: Macsuka et al., J Nucl Med 2026, Table 2, cycle 1 (all 73 patients of the study): median ± SE (h) of
#: the washout half-time of the bi-exponential dose-rate fit (Eq. 1). The table labels it "washout rate
#: (h)"; it is read as a half-time because the Methods constrain the "washout half-time" against the
#: physical 159.5 h. Being the late-phase half-time of a dose-rate curve, it includes physical decay (an
#: effective half-life). Cycles 2–4: tumour 82.8, 79.2, 77.1 h; kidney 48.1, 46.9, 46.8 h (no significant
#: change between cycles, Table 2).
MACSUKA_2026_WASHOUT_HALF_TIME_H = {"kidney": (47.2, 2.1), "tumor": (79.5, 3.2)}
MACSUKA_2026_N_PATIENTS = 73


def _population_sd_h(se_h: float, n: int) -> float:
    """Between-patient 1σ (h) from the standard error of a summary over ``n`` patients: SE·√n.

    Approximate: treats the reported SE of the median as σ/√n (for a normal population the SE of the
    median is ≈ 1.25 σ/√n, so this overstates σ by up to 25 %, the conservative side)."""
    return float(se_h) * math.sqrt(n)


#: Population effective half-lives of [177Lu]Lu-DOTATATE, (T_eff h, 1σ spread h), per VOI kind or organ
#: name, used by the Madsen method when a VOI has no fully imaged cycle. Kidney and tumour: Macsuka et
#: al. 2026 (above), σ computed from the SE. Spleen, liver and other organs: approximate, unverified
#: (no value found in the seed papers or a retrieved source; Hou et al., J Nucl Med 2021;62(7):1006–1011
#: model T_eff distributions as log-normal and find ~72 h the best single scan time for DOTATATE, but
#: their per-organ values were not retrieved). Replace with the local population where it is known.
POPULATION_T_EFF_H = {
    **{k: (t, _population_sd_h(se, MACSUKA_2026_N_PATIENTS))
       for k, (t, se) in MACSUKA_2026_WASHOUT_HALF_TIME_H.items()},
    "spleen": (70.0, 15.0),  # approximate, unverified
    "liver": (75.0, 20.0),  # approximate, unverified
    "organ": (70.0, 20.0),  # approximate, unverified
}
#: Where each :data:`POPULATION_T_EFF_H` entry comes from (printed in the warning of every row that uses it).
POPULATION_T_EFF_SOURCE = {
    "kidney": "Macsuka et al., J Nucl Med 2026, Table 2, cycle 1 median; σ = SE·√73",
    "tumor": "Macsuka et al., J Nucl Med 2026, Table 2, cycle 1 median; σ = SE·√73",
    "spleen": "approximate, unverified",
    "liver": "approximate, unverified",
    "organ": "approximate, unverified",
}
_LN2 = math.log(2.0)


def population_t_eff(voi) -> tuple[float, float, str]:
    """(T_eff h, 1σ h, key) of :data:`POPULATION_T_EFF_H` for a VOI (organ name first, then kind)."""
    for key in (voi.name.lower(), voi.kind):
        if key in POPULATION_T_EFF_H:
            t, s = POPULATION_T_EFF_H[key]
            return t, s, key
    raise InputDataError(f"{voi.name}: no population T_eff for kind {voi.kind!r}")


def _reference_cycle(fits: dict, voi: str, cycle: int):
    other = sorted(((abs(c - cycle), c, f) for (name, c), f in fits.items()
                    if name == voi and c != cycle and len(f.times_h) > 1), key=lambda x: x[:2])
    return (other[0][1], other[0][2]) if other else (None, None)


def _scaled_fit(ref, ratio: float, t: float, value: float, sigma_rel: float):
    """The reference curve scaled by ``ratio`` as the STP cycle's curve."""
    kw = {"integral": ref.integral * ratio, "uncertainty": ref.integral * ratio * sigma_rel,
          "times_h": (t,), "values": (value,), "flag_tokens": ("single_time_point:ratio",),
          "warnings": [f"single time point at {t:g} h: ratio method (Hebert et al. 2024), reference curve × {ratio:.4g}"],
          "params": {**ref.params, "method": "ratio"}, "candidates": {}}
    if ref.is_exponential:
        c, r = ref.exponential_terms()
        kw["_terms"] = (tuple((c * ratio).tolist()), tuple(r.tolist()))
    else:
        kw["knot_values"] = tuple(float(x) * ratio for x in ref.knot_values)
    return dataclasses.replace(ref, **kw)


def single_time_point_dose(cyc, v, y: np.ndarray, y_units: str, options, nuclide, fits: dict) -> dict:
    """Integral (and, for the ratio method, dose) of a one-scan cycle of VOI ``v``.

    ``y``: the (partial-volume corrected) value at the scan, MBq or Gy/h. Returns a dict with
    ``fit`` (a :class:`kinetics.TimeActivityFit`), ``dose_Gy`` (ratio method: the scaled dose;
    else None: dose from ``fit.integral``), ``relative_uncertainty`` (total, value and T_eff),
    ``t_eff_relative_uncertainty`` (T_eff part), ``row`` (the STP columns), ``flags``, ``warnings``.
    """
    t = float(cyc.hours[0])
    value = float(y[0])
    where = f"{v.name} cycle {cyc.cycle}"
    method = getattr(options, "stp_method", "auto")
    window = tuple(getattr(options, "hanscheid_window_h", HANSCHEID_WINDOW_H))
    value_rel = float(options.value_uncertainty) if np.isscalar(options.value_uncertainty) else 0.05
    ref_cycle, ref = _reference_cycle(fits, v.name, cyc.cycle)
    flags, warnings = [], []
    if method in ("auto", "ratio") and ref is not None:
        a_ref = float(ref.evaluate(t))
        if a_ref > 0:
            ratio = value / a_ref
            t_eff = float(ref.effective_half_life_h)
            ref_rel = ref.relative_uncertainty
            sigma_rel = math.hypot(ref_rel, value_rel)
            fit = _scaled_fit(ref, ratio, t, value, sigma_rel)
            dose = None
            if y_units != "Gy/h":
                ref_dose = float(led_dose_Gy(ref.integral, v.mass_for(ref_cycle), nuclide))
                dose = kinetics.later_cycle_dose_scaling(ref_dose, a_ref, value, v.mass_for(ref_cycle),
                                                         v.mass_for(cyc.cycle))
            warnings.append(f"{where}: one time point at {t:g} h, ratio method (Hebert et al. 2024) with the fully "
                            f"imaged cycle {ref_cycle} (same kinetics assumed, T_eff {t_eff:.1f} h)")
            return {"fit": fit, "dose_Gy": dose, "relative_uncertainty": sigma_rel,
                    "t_eff_relative_uncertainty": ref_rel, "flags": flags, "warnings": warnings,
                    "row": {"single_time_point_method": "ratio", "t_eff_h": t_eff,
                            "t_eff_uncertainty_h": t_eff * ref_rel}}
        warnings.append(f"{where}: reference cycle {ref_cycle} curve is 0 at {t:g} h: ratio method impossible")
    if method == "ratio":
        flags.append("stp:ratio_unavailable")
        warnings.append(f"{where}: ratio method requested but no fully imaged cycle of this VOI: Madsen used")
    if method == "hanscheid":
        t_eff_h = None
        _, s_pop, _ = population_t_eff(v)
        t_eff_assumed, s_t = t, s_pop
        if not window[0] <= t <= window[1]:
            flags.append("stp:hanscheid_outside_window")
            warnings.append(f"{where}: Hänscheid single-time-point method at {t:g} h, outside its validity window "
                            f"{window[0]:g}–{window[1]:g} h (Hänscheid et al. 2018: one scan after ~4 d); "
                            f"the integral may be biased by tens of per cent")
        source = "Hänscheid et al., J Nucl Med 2018, T_eff = scan time"
    else:
        if ref is not None:
            t_eff_h = float(ref.effective_half_life_h)
            s_t = t_eff_h * ref.relative_uncertainty
            source = f"T_eff {t_eff_h:.1f} h from cycle {ref_cycle}"
        else:
            t_eff_h, s_t, key = population_t_eff(v)
            flags.append("stp:population_t_eff")
            source = f"population T_eff {t_eff_h:g} ± {s_t:.1f} h ({key}; {POPULATION_T_EFF_SOURCE[key]})"
        t_eff_assumed = t_eff_h
    fit = kinetics.fit_single_time_point(t, value, physical_half_life_h=nuclide.half_life_h,
                                         effective_half_life_h=t_eff_h, value_uncertainty=options.value_uncertainty)
    t_used = float(fit.effective_half_life_h)
    k = _LN2 / t_used
    teff_rel = abs(1.0 - k * t) * s_t / t_eff_assumed
    total_rel = math.hypot(fit.relative_uncertainty, teff_rel)
    fit = dataclasses.replace(fit, uncertainty=fit.integral * total_rel)
    warnings.append(f"{where}: one time point at {t:g} h, {fit.params['method']} method ({source})")
    return {"fit": fit, "dose_Gy": None, "relative_uncertainty": total_rel, "t_eff_relative_uncertainty": teff_rel,
            "flags": flags, "warnings": warnings,
            "row": {"single_time_point_method": fit.params["method"], "t_eff_h": t_used, "t_eff_uncertainty_h": s_t}}

