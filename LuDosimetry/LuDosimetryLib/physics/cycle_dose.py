"""Absorbed dose of each VOI in each cycle, and the voxel-wise dose maps.

``voi_cycle_dose``: partial-volume correction, time-activity fit and integration, dose by local
deposition (or the integral of dose-rate input) and the Lea-Catcheside factor, for one VOI-cycle.
``voxel_dose_maps``: voxel-wise integration and dose maps per cycle with DVH statistics per VOI.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import LuDosimetryError
from ..imaging import recovery_model
from ..io import images as image_io
from ..io.study import Study
from . import dose as dose_mod
from . import kinetics, plausibility, radiobiology, stp_cycle


def voi_cycle_dose(study: Study, cyc, v, y: np.ndarray, y_units: str, rc_curve, options,
                   nuclide, fits: dict) -> dict:
    """Dose of one VOI in one cycle from its measured values ``y`` (MBq, or Gy/h) per time point.

    Steps: partial-volume correction (:meth:`pvc.RecoveryCurve.correct`) for the kinds in
    ``options.apply_pvc_to`` (:func:`recovery_model.pvc_applies`); time integration (:func:`kinetics.fit_time_activity`; a requested
    model that fails falls back to ``"auto"`` with a warning; a single time point:
    :func:`stp_cycle.single_time_point_dose`, the ratio method of Hebert et al. 2024 with the VOI's
    nearest fully imaged cycle, else Madsen with a stated T_eff); dose by local deposition with the VOI mass
    (:func:`dose.led_dose_Gy`) or, for dose rates, the integral itself; the Lea-Catcheside factor
    of kidney curves (:func:`radiobiology.g_factor_from_fit`). Returns row, fit, values,
    time_activity rows and warnings.
    """
    hours = np.array(cyc.hours)
    flags, warnings = list(v.flags), []
    raw = y.copy()
    rc = 1.0
    where = f"{v.name} cycle {cyc.cycle}"
    if rc_curve is not None and recovery_model.pvc_applies(v, options):
        corrected, rc, pvc_flags = rc_curve.correct(y, v.volume_for(cyc.cycle))
        y = np.asarray(corrected, dtype=float)
        flags += list(pvc_flags)
        if recovery_model.FLAG_EXTRAPOLATED in pvc_flags and hasattr(rc_curve, "form"):
            warnings.append(recovery_model.extrapolation_warning(where, v.volume_for(cyc.cycle), rc_curve, rc))
    stp = None
    if len(hours) == 1:
        stp = stp_cycle.single_time_point_dose(cyc, v, y, y_units, options, nuclide, fits)
        fit = stp["fit"]
        flags += stp["flags"]
        warnings.extend(stp["warnings"])
    else:
        model = options.fit_model_per_voi.get(v.name, options.fit_model)
        try:
            fit = kinetics.fit_time_activity(hours, y, model=model, physical_half_life_h=nuclide.half_life_h,
                                             value_uncertainty=options.value_uncertainty)
        except LuDosimetryError as exc:
            if model == "auto":
                raise
            warnings.append(f"{where}: requested model {model!r} failed ({exc}); automatic model selection used")
            flags.append(f"fallback:auto_after_{model}")
            fit = kinetics.fit_time_activity(hours, y, model="auto", physical_half_life_h=nuclide.half_life_h,
                                             value_uncertainty=options.value_uncertainty)
        if model != "auto" and fit.model != "auto":
            note = plausibility.compare_fit_with_auto(fit, hours, y, nuclide, options.value_uncertainty, where)
            if note:
                warnings.append(note)
                flags.append("fit_model:differs_from_auto")
        if fit.flags:  # a fallback, a rising curve or a bound: say what was done and why
            warnings.extend(f"{where}: {w}" for w in fit.warnings if not w.startswith("model "))
    flags += list(fit.flags)
    if y_units == "Gy/h":
        dose_Gy, dose_sd, tia = fit.integral, fit.uncertainty, None
    else:
        tia = fit.integral
        dose_Gy = dose_mod.led_dose_Gy(tia, v.mass_for(cyc.cycle), nuclide)
        if stp is not None and stp["dose_Gy"] is not None:
            dose_Gy = stp["dose_Gy"]  # ratio method (Hebert et al. 2024), same value as the scaled curve
        dose_sd = dose_Gy * fit.relative_uncertainty
    stp_row = (stp["row"] if stp is not None else
               {"single_time_point_method": "", "t_eff_h": fit.effective_half_life_h, "t_eff_uncertainty_h": 0.0})
    stp_row["stp_t_eff_dose_uncertainty_Gy"] = dose_Gy * stp["t_eff_relative_uncertainty"] if stp else 0.0
    g = None
    if v.kind == "kidney":
        if fit.integral > 0:
            g = radiobiology.g_factor_from_fit(fit)
        else:
            warnings.append(f"{where}: zero integral, no Lea-Catcheside factor (kidney BED not defined)")
    aa = cyc.administered_activity_MBq
    row = {
        "patient_id": study.patient_id, "cycle": cyc.cycle, "voi": v.name, "kind": v.kind,
        "volume_ml": round(v.volume_for(cyc.cycle), 3), "administered_activity_MBq": aa,
        "absorbed_dose_Gy": dose_Gy, "ad_per_aa_Gy_per_GBq": dose_Gy / (aa / 1000.0),
        "fit_model": fit.model, "effective_half_life_h": fit.effective_half_life_h,
        "recovery_coefficient": rc, "flags": ";".join(dict.fromkeys(flags)),
        "absorbed_dose_uncertainty_Gy": dose_sd, "time_integrated_activity_MBq_h": tia,
        "mass_g": v.mass_for(cyc.cycle), "included": v.included, "excluded": not v.included,
        "lea_catcheside_g": g, **stp_row,
    }
    fitted = fit.evaluate(hours)
    ta = [{"patient_id": study.patient_id, "cycle": cyc.cycle, "voi": v.name, "kind": v.kind,
           "hours_post_injection": float(h), "value": float(m), "value_pv_corrected": float(c),
           "recovery_coefficient": rc, "units": y_units, "fitted_value": float(f)}
          for h, m, c, f in zip(hours, raw, y, fitted)]
    return {"row": row, "fit": fit, "values": y, "time_activity": ta, "warnings": warnings}


def _voxel_s_value_dose_rates(study: Study, registered: dict, reference: sitk.Image, nuclide,
                              density=None) -> dict:
    """Dose-rate map (Gy/h) per registered scan by voxel S-value convolution, scaled by
    ρ_tissue/ρ_voxel with the CT ``density`` map (g/mL, reference grid; None: soft tissue, 1.04)."""
    kernel = dose_mod.voxel_s_value_kernel(nuclide.name, reference.GetSpacing())
    voxel_ml = image_io.voxel_volume_ml(reference)
    out = {}
    for key, img in registered.items():
        activity_MBq = sitk.GetArrayFromImage(img).astype(np.float64) * voxel_ml * 1e-6
        rate = dose_mod.vsv_dose_rate_Gy_per_h(activity_MBq, kernel, density)
        r = sitk.GetImageFromArray(rate.astype(np.float32))
        r.CopyInformation(reference)
        out[key] = r
    return out


def voxel_dose_maps(study: Study, registered: dict, reference: sitk.Image, density, vois: list, nuclide,
                    units: str, dose_rate_maps: dict | None, whole_image: bool = False) -> dict:
    """Voxel-wise time-integrated activity and absorbed dose per cycle, and VOI dose statistics.

    Time integration: :func:`kinetics.fit_time_activity_voxelwise` on the registered scans of
    each cycle (inside the VOIs, or the whole image when ``whole_image``). Dose: local energy
    deposition with the CT density per voxel (:func:`dose.led_dose_Gy`), or the integral of the
    voxel S-value / input dose-rate maps. Statistics (mean, D90/D50/D10, DVH, EUD) per VOI per
    cycle by :func:`dose.voi_dose_statistics`. These voxel doses are not partial-volume
    corrected (the VOI doses of the results table are).

    Returns {"tia_MBq_h": {cycle: image}, "dose_Gy": {cycle: image}, "dose_statistics":
    {(voi, cycle): DoseStatistics}, "warnings": [...]}.
    """
    voxel_ml = image_io.voxel_volume_ml(reference)
    mask = None
    if not whole_image:
        mask = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=bool)
        for v in vois:
            mask |= v.mask
            for m, _, _ in v.per_cycle.values():
                mask |= m
    out = {"tia_MBq_h": {}, "dose_Gy": {}, "dose_statistics": {}, "warnings": []}
    for cyc in study.cycles:
        if len(cyc.timepoints) < 2:
            out["warnings"].append(f"cycle {cyc.cycle}: one time point, no voxel-wise maps or DVH for this cycle")
            continue
        keys = [(cyc.cycle, i) for i in range(len(cyc.timepoints))]
        if dose_rate_maps is not None or units == "Gy/h":
            source = dose_rate_maps if dose_rate_maps is not None else registered
            stack = np.stack([sitk.GetArrayViewFromImage(source[k]) for k in keys]).astype(np.float64)
        else:  # Bq/mL -> MBq per voxel
            stack = np.stack([sitk.GetArrayViewFromImage(registered[k]) for k in keys]).astype(np.float64)
            stack *= voxel_ml * 1e-6
        vfit = kinetics.fit_time_activity_voxelwise(cyc.hours, stack, nuclide.half_life_h, mask=mask)
        out["warnings"].extend(f"voxel-wise fit cycle {cyc.cycle}: {w}" for w in vfit.warnings
                               if "used a fallback" not in w)  # fallbacks: per VOI below, not per map
        codes = np.asarray(vfit.model)
        for v in vois:
            in_voi = codes[v.mask_for(cyc.cycle)]
            n_fb = int(np.count_nonzero(in_voi >= 2))
            if n_fb:
                out["warnings"].append(
                    f"{v.name} cycle {cyc.cycle}: voxel-wise fit fallback in {n_fb} of {in_voi.size} VOI voxels "
                    f"(mono_last2 {int(np.count_nonzero(in_voi == 2))}, trapezoid {int(np.count_nonzero(in_voi == 3))})")
        if dose_rate_maps is not None or units == "Gy/h":
            dose_Gy, tia = vfit.integral, None
        else:
            tia = vfit.integral
            dose_Gy = dose_mod.led_dose_Gy(tia, nuclide=nuclide, voxel_volume_ml=voxel_ml,
                                           density_g_per_ml=(density if density is not None
                                                             else dose_mod.SOFT_TISSUE_DENSITY_G_PER_ML))
        for name, arr in (("tia_MBq_h", tia), ("dose_Gy", dose_Gy)):
            if arr is not None:
                img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
                img.CopyInformation(reference)
                out[name][cyc.cycle] = img
        masses = density * voxel_ml if density is not None else dose_mod.SOFT_TISSUE_DENSITY_G_PER_ML * voxel_ml
        for v in vois:
            out["dose_statistics"][(v.name, cyc.cycle)] = dose_mod.voi_dose_statistics(dose_Gy, v.mask_for(cyc.cycle),
                                                                                       masses)
    return out


def _add_dose_statistics(rows: list, stats: dict) -> None:
    for r in rows:
        st = stats.get((r["voi"], r["cycle"]))
        if st is not None:
            r.update({"voxel_mean_dose_Gy": st.mean_Gy, "D90_Gy": st.d90_Gy, "D50_Gy": st.d50_Gy,
                      "D10_Gy": st.d10_Gy, "EUD_Gy": st.eud_Gy})
