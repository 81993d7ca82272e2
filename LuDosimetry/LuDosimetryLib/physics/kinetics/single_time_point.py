"""Single-time-point integration: Hänscheid, Madsen (mono-exponential with a known T_eff) and the
later-cycle ratio method."""

from __future__ import annotations

import math

import numpy as np

from ._inputs import _LN2, _nonneg_scalar, _positive_scalar, _sigma
from .voi_fit import TimeActivityFit


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
    """Absorbed dose of a later cycle from one 24-h image (Hebert et al. 2024, Hebert et al.).

    AD_c = AD_ref × (counts_24h,c / counts_24h,ref) × (V_24h,ref / V_24h,c), with the reference
    cycle (cycle 2 in Hebert et al. 2024) dosimetry made from serial imaging. Counts in the VOI on the 24-h
    SPECT (any consistent unit), volumes in mL, doses in Gy. Assumes unchanged kinetics.
    """
    d = _nonneg_scalar(dose_ref_Gy, "dose_ref_Gy", "Gy")
    c_ref = _positive_scalar(counts_24h_ref, "counts_24h_ref")
    c_cyc = _nonneg_scalar(counts_24h_cycle, "counts_24h_cycle")
    v_ref = _positive_scalar(volume_24h_ref_ml, "volume_24h_ref_ml", "mL")
    v_cyc = _positive_scalar(volume_24h_cycle_ml, "volume_24h_cycle_ml", "mL")
    return d * (c_cyc / c_ref) * (v_ref / v_cyc)
