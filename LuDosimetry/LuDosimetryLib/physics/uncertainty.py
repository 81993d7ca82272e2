"""Uncertainty budget of the absorbed doses, after Gear et al., EJNMMI 2018 (45:2456), the EANM
guidance on uncertainty analysis for MRT dosimetry.

Per VOI-cycle (1σ, Gy), each component a relative standard uncertainty of the dose times the dose:

* ``u_calibration_Gy``: camera calibration factor (activity ∝ calibration; dose ∝ activity).
  Default :data:`DEFAULTS` ``calibration_rel`` = 3 % (order of the calibration-factor uncertainty of
  Gear et al. 2018's worked example; a site states its own in the manifest's ``uncertainty``).
* ``u_rc_Gy``: recovery coefficient, only for VOIs whose activity was partial-volume corrected.
  Default ``rc_rel`` = 5 %.
* ``u_volume_Gy``: VOI volume from the segmentation. Gear et al. model it by the uncertainty of the
  VOI boundary; here the boundary of a sphere of the VOI volume is uncertain by σ_r = voxel size / √12
  (the boundary anywhere within one voxel, uniform), hence σ_V / V = 3 σ_r / r (``volume_rel`` in
  the manifest replaces this by a fixed value). Dose = activity in the VOI / mass: a boundary moved
  outwards adds mass *and* the counts of the added shell, which cancel where the counts fill the VOI
  (RC = 1); to first order the dose moves by (1 − RC) × σ_V / V (RC of the row, 1 without PVC). This
  sensitivity is this module's model, not a value taken from Gear et al.
* ``u_registration_Gy``: residual misregistration d (mm) of the VOI from the registration check
  (:class:`imaging.study_registration.StudyRegistration` ``checks``; RMS over the cycle's scans,
  after refinement), else ``registration_mm`` (default 2 mm, the check threshold). The activity lost
  from a sphere of radius r shifted by d is the non-overlapping fraction 3d/(4r) − d³/(16r³)
  (upper bound: spill-in from the surroundings is ignored).
* ``u_fit_Gy``: the time-activity fit (covariance of the fitted parameters; as before this issue).
* ``u_teff_Gy``: single-time-point cycles: the assumed effective half-life, the row's
  ``stp_t_eff_dose_uncertainty_Gy`` (the dose's own sensitivity to T_eff at the scan time,
  :mod:`stp_cycle`), else σ_T/T from ``t_eff_uncertainty_h`` / ``t_eff_h``; 0 when absent. In the
  Monte Carlo it is one factor per VOI (the same reference fit or population value for every cycle).

``absorbed_dose_uncertainty_Gy`` = quadrature sum of the components (they are independent within
one VOI-cycle). Summary metrics (cAD, ΔAD/AA, kidney cumulative dose, BED) by a seeded Monte Carlo
(:func:`summary_uncertainty`) with the correlations that matter in the sum over cycles: the
calibration is one factor for the whole patient (it cancels in ΔAD/AA), RC and volume one factor
per VOI for all cycles (contour copied), T_eff one factor per VOI, registration and fit independent
per VOI-cycle.
Each component's σ is the Monte Carlo with that component alone; ``total`` has all together.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .radiobiology import KIDNEY_ALPHA_BETA_GY

DEFAULTS = {
    "calibration_rel": 0.03,  # camera calibration factor, relative 1σ
    "rc_rel": 0.05,  # recovery coefficient, relative 1σ (partial-volume corrected VOIs)
    "volume_rel": None,  # None: boundary model (voxel / √12 on a sphere of the VOI volume)
    "registration_mm": 2.0,  # residual misregistration when the check gives none (the check threshold)
    "teff_rel": 0.0,  # single time point: relative 1σ of T_eff when the row does not carry it
}
COMPONENTS = ("calibration", "rc", "volume", "registration", "fit", "teff")
SAMPLES = 4000
SEED = 20180  # fixed: the same input gives the same reported uncertainty


def budget_inputs(given: dict | None) -> dict:
    """The manifest's ``uncertainty`` object over :data:`DEFAULTS`."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in (given or {}).items() if k in DEFAULTS and v is not None})
    return out


def sphere_radius_mm(volume_ml: float) -> float:
    return (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def displaced_fraction(shift_mm: float, volume_ml: float) -> float:
    """Fraction of a sphere of ``volume_ml`` outside itself after a shift of ``shift_mm``
    (1 − overlap of two equal spheres: 3d/(4r) − d³/(16r³), 1 beyond d = 2r)."""
    if not volume_ml > 0 or not shift_mm > 0:
        return 0.0
    r = sphere_radius_mm(volume_ml)
    if shift_mm >= 2 * r:
        return 1.0
    x = shift_mm / r
    return 0.75 * x - x ** 3 / 16.0


def boundary_volume_rel(volume_ml: float, voxel_mm: float) -> float:
    """σ_V / V for a sphere of ``volume_ml`` whose boundary is uncertain by voxel/√12."""
    if not volume_ml > 0:
        return 0.0
    return min(1.0, 3.0 * (voxel_mm / math.sqrt(12.0)) / sphere_radius_mm(volume_ml))


def registration_residual_mm(reg_qc, voi: str, cycle: int, default_mm: float) -> float:
    """RMS over the cycle's checked scans of the VOI's residual shift after refinement (mm);
    ``default_mm`` when no scan of the cycle was checked for this VOI."""
    found = []
    for key, chk in (getattr(reg_qc, "checks", None) or {}).items():
        if key[0] == cycle and voi in chk.vois:
            d = chk.vois[voi].residual_after_mm
            if d is not None and math.isfinite(d):
                found.append(float(d))
    if not found:
        return float(default_mm)
    return float(np.sqrt(np.mean(np.square(found))))


def relative_components(row: dict, inputs: dict, voxel_mm: float, residual_mm: float) -> dict:
    """Relative 1σ of the dose of one row per component (see the module docstring)."""
    dose = float(row["absorbed_dose_Gy"] or 0.0)
    volume = float(row.get("volume_ml") or 0.0)
    fit_sd = row.get("u_fit_Gy", row.get("absorbed_dose_uncertainty_Gy"))
    activity = row.get("time_integrated_activity_MBq_h") is not None  # local deposition of an activity
    rc = row.get("recovery_coefficient")
    teff, teff_sd = row.get("t_eff_h"), row.get("t_eff_uncertainty_h")
    stp_teff_Gy = _as_float(row.get("stp_t_eff_dose_uncertainty_Gy"))
    if stp_teff_Gy > 0 and dose > 0:  # the dose's own sensitivity to T_eff (stp_cycle), not σ_T/T
        teff_rel = stp_teff_Gy / dose
    elif teff and teff_sd is not None and teff > 0:
        teff_rel = float(teff_sd) / float(teff)
    else:
        teff_rel = float(inputs["teff_rel"]) if row.get("fit_model") == "single_time_point" else 0.0
    vol_rel = inputs["volume_rel"] if inputs["volume_rel"] is not None else boundary_volume_rel(volume, voxel_mm)
    return {
        "calibration": float(inputs["calibration_rel"]),
        "rc": float(inputs["rc_rel"]) if rc is not None and float(rc) != 1.0 else 0.0,
        "volume": float(vol_rel) * (1.0 - min(1.0, float(rc if rc is not None else 1.0))) if activity else 0.0,
        "registration": displaced_fraction(residual_mm, volume),
        "fit": _fit_only_rel(fit_sd, None if "u_fit_Gy" in row else row.get("stp_t_eff_dose_uncertainty_Gy"), dose),
        "teff": teff_rel,
    }


def _as_float(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def _fit_only_rel(fit_sd, stp_teff_sd, dose: float) -> float:
    """Relative 1σ of the fit alone: a single-time-point row's uncertainty already contains the T_eff
    part (``stp_t_eff_dose_uncertainty_Gy``, :mod:`stp_cycle`), removed here so that it is counted once
    (as ``u_teff_Gy``)."""
    if fit_sd is None or dose <= 0 or not math.isfinite(float(fit_sd)):
        return 0.0
    total = float(fit_sd) / dose
    teff = float(stp_teff_sd) / dose if stp_teff_sd else 0.0
    return math.sqrt(max(total * total - teff * teff, 0.0))


def add_row_uncertainties(rows: list, inputs: dict, voxel_mm: float, reg_qc=None) -> None:
    """Write ``u_<component>_Gy`` per row and make ``absorbed_dose_uncertainty_Gy`` their
    quadrature sum; the relative components go to ``_u_rel`` (used by :func:`summary_uncertainty`)."""
    for r in rows:
        residual = registration_residual_mm(reg_qc, r["voi"], r["cycle"], inputs["registration_mm"])
        rel = relative_components(r, inputs, voxel_mm, residual)
        dose = float(r["absorbed_dose_Gy"] or 0.0)
        for k, v in rel.items():
            r[f"u_{k}_Gy"] = dose * v
        r["registration_residual_mm"] = residual
        r["absorbed_dose_uncertainty_Gy"] = dose * math.sqrt(sum(v * v for v in rel.values()))
        r["_u_rel"] = rel


def _metrics(D: np.ndarray, rows: list, structure: dict, ab: float) -> dict:
    """cAD, ΔAD/AA, kidney cumulative dose and BED for sampled doses ``D`` (samples × rows)."""
    out = {}
    tumours = structure["tumours"]
    if tumours:
        cum = [D[:, idx].sum(axis=1) for idx in tumours.values()]
        out["cumulative_tumor_dose_Gy"] = np.mean(cum, axis=0)
    if structure["paired"]:
        first, last = structure["paired"]
        m1 = np.mean([D[:, i] / (rows[i]["administered_activity_MBq"] / 1000.0) for i in first], axis=0)
        mL = np.mean([D[:, i] / (rows[i]["administered_activity_MBq"] / 1000.0) for i in last], axis=0)
        out["delta_ad_per_aa_percent"] = 100.0 * (mL / m1 - 1.0)
    kidneys = structure["kidneys"]
    if kidneys:
        out["kidney_cumulative_dose_Gy"] = np.mean([D[:, idx].sum(axis=1) for idx in kidneys.values()], axis=0)
        if all(rows[i].get("lea_catcheside_g") is not None for idx in kidneys.values() for i in idx):
            beds = [sum(D[:, i] + rows[i]["lea_catcheside_g"] * D[:, i] ** 2 / ab for i in idx)
                    for idx in kidneys.values()]
            out["kidney_bed_Gy"] = np.mean(beds, axis=0)
    return out


def _structure(rows: list) -> dict:
    tumours, kidneys = {}, {}
    for i, r in enumerate(rows):
        if r["kind"] == "tumor" and not r.get("excluded"):
            tumours.setdefault(r["voi"], []).append(i)
        elif r["kind"] == "kidney":
            kidneys.setdefault(r["voi"], []).append(i)
    cycles = sorted({r["cycle"] for r in rows})
    paired = None
    if tumours and 1 in cycles and cycles[-1] != 1:
        last = cycles[-1]
        by = {(rows[i]["voi"], rows[i]["cycle"]): i for idx in tumours.values() for i in idx}
        names = [v for v in tumours if (v, 1) in by and (v, last) in by]
        if names:
            paired = ([by[(v, 1)] for v in names], [by[(v, last)] for v in names])
    return {"tumours": tumours, "kidneys": kidneys, "paired": paired}


def sample_doses(rows: list, components, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sampled doses (n × rows): each row's dose × Π (1 + ε) over ``components``, with ε normal of
    the row's relative σ; calibration shared by all rows, RC and volume shared by a VOI's rows."""
    D0 = np.array([float(r["absorbed_dose_Gy"] or 0.0) for r in rows])
    factor = np.ones((n, len(rows)))
    vois = sorted({r["voi"] for r in rows})
    for comp in components:
        rel = np.array([r["_u_rel"][comp] for r in rows])
        if comp == "calibration":
            z = np.repeat(rng.standard_normal((n, 1)), len(rows), axis=1)
        elif comp in ("rc", "volume", "teff"):  # teff: one reference fit or population value per VOI
            zv = rng.standard_normal((n, len(vois)))
            z = zv[:, [vois.index(r["voi"]) for r in rows]]
        else:
            z = rng.standard_normal((n, len(rows)))
        factor *= 1.0 + rel * z
    return D0 * factor


def summary_uncertainty(rows: list, inputs: dict, n: int = SAMPLES, seed: int = SEED,
                        alpha_beta_Gy: float = KIDNEY_ALPHA_BETA_GY) -> dict:
    """summary.json ``uncertainty``: 1σ of cAD (Gy), ΔAD/AA (percentage points), kidney cumulative
    dose (Gy) and kidney BED (Gy), total and per component, by a seeded Monte Carlo of ``n``
    samples over rows carrying ``_u_rel`` (:func:`add_row_uncertainties`)."""
    t0 = time.perf_counter()
    structure = _structure(rows)
    metrics: dict = {}
    for label, comps in [("total", COMPONENTS)] + [(c, (c,)) for c in COMPONENTS]:
        rng = np.random.default_rng(seed)
        sampled = _metrics(sample_doses(rows, comps, n, rng), rows, structure, alpha_beta_Gy)
        for name, values in sampled.items():
            sd = float(np.std(values[np.isfinite(values)], ddof=1))
            block = metrics.setdefault(name, {"sigma": None, "components": {}})
            if label == "total":
                block["sigma"] = sd
            else:
                block["components"][label] = sd
    return {
        "method": "Gear et al., EJNMMI 2018 (45:2456): per VOI-cycle components combined in quadrature; summary "
                  f"metrics by a seeded Monte Carlo ({n} samples) with the calibration shared by all VOIs and cycles, "
                  "recovery coefficient, volume and single-time-point T_eff shared by a VOI's cycles, registration "
                  "and fit independent",
        "inputs": {k: v for k, v in inputs.items()},
        "units": {"cumulative_tumor_dose_Gy": "Gy", "delta_ad_per_aa_percent": "percentage points",
                  "kidney_cumulative_dose_Gy": "Gy", "kidney_bed_Gy": "Gy"},
        "metrics": metrics,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def apply_budget(rows: list, summary: dict, given: dict | None, voxel_mm: float, reg_qc=None) -> None:
    """Rows get their components and total; ``summary["uncertainty"]`` the summary-metric budget."""
    inputs = budget_inputs(given)
    add_row_uncertainties(rows, inputs, voxel_mm, reg_qc)
    summary["uncertainty"] = summary_uncertainty(rows, inputs)
    summary["uncertainty"]["input_sources"] = {
        k: ("manifest 'uncertainty'" if (given or {}).get(k) is not None else "default (physics.uncertainty.DEFAULTS)")
        for k in DEFAULTS}
    summary["uncertainty"]["volume_model"] = (
        "volume_rel from the manifest" if inputs["volume_rel"] is not None else
        f"boundary of a sphere of the VOI volume uncertain by voxel/sqrt(12) = {voxel_mm / math.sqrt(12):.2f} mm; "
        "dose sensitivity (1 - RC)")
    summary["uncertainty"]["registration_model"] = (
        "residual shift per VOI from the registration check (RMS over the cycle's scans), else "
        f"{inputs['registration_mm']:g} mm; activity error = displaced fraction of a sphere of the VOI volume")
    for r in rows:
        r.pop("_u_rel", None)


def value_with_sigma(summary: dict, key: str, digits: int = 2) -> str | None:
    """``"12.3 ± 1.4"`` for a summary metric with its total 1σ from ``summary["uncertainty"]``
    (the value alone without a budget; None without a value)."""
    value = summary.get(key)
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    block = ((summary.get("uncertainty") or {}).get("metrics") or {}).get(key) or {}
    sd = block.get("sigma")
    return f"{value:.{digits}f}" + (f" ± {sd:.{digits}f}" if isinstance(sd, float) and math.isfinite(sd) else "")
