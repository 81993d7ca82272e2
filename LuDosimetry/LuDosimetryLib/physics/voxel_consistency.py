"""Voxel dose statistics consistent with the VOI dose, and the cumulative DVH over all cycles.

The voxel-wise dose maps (:func:`cycle_dose.voxel_dose_maps`) are not partial-volume corrected,
and their time integration is voxel by voxel; the VOI dose of the results table is corrected. To
keep DVH, D90/D50/D10 and EUD in the same row consistent with that dose, the voxel dose inside
each VOI is **scaled so that its (mass-weighted) mean equals the VOI's absorbed dose** of that
cycle (``absorbed_dose_Gy``, PVC-corrected where PVC applies); the statistics are then computed
from the scaled map. The mean before scaling is kept as ``voxel_mean_dose_uncorrected_Gy``
(CSV only, not in the summary) and the factor as ``voxel_dose_scale_factor``.

For a partial-volume corrected VOI with a known PSF (``psf_sigma_mm``: the σ of the Gaussian-sphere
recovery model fitted to the calibration table, :mod:`imaging.recovery_model`), the voxel dose
is first divided by the voxel-wise recovery of the VOI itself, w = G_σ * 1_VOI (the fraction of
a uniform VOI's content a voxel keeps after blurring; floored at :data:`MIN_VOXEL_RECOVERY`),
which undoes the edge fall-off of spill-out: a uniform sphere in a cold background becomes
uniform again. Without a PSF only the scaling is applied (the edge fall-off of the blurred map
stays in D90 and the DVH).

Cumulative DVH (:func:`cumulative_dvh`): per VOI, the sum over cycles of the scaled dose maps on
the reference grid (registered scans), inside the VOI's reference contour; cycles without a
map (single time point) are added by scaling the sum so that its mean equals the sum of the
VOI doses of all cycles (stated in the result's ``note``). Written as ``dvh_cumulative.csv``.
"""

from __future__ import annotations

import csv

import numpy as np
import SimpleITK as sitk

from . import dose as dose_mod

__all__ = [
    "DVH_COLUMNS",
    "DVH_CUMULATIVE_FILE",
    "MIN_VOXEL_RECOVERY",
    "add_consistent_statistics",
    "cumulative_dvh",
    "cumulative_summary",
    "voxel_recovery",
    "write_cumulative_dvh",
]

DVH_CUMULATIVE_FILE = "dvh_cumulative.csv"
DVH_COLUMNS = ["patient_id", "voi", "kind", "dose_Gy", "fraction_of_voi"]
#: Floor of the voxel-wise recovery w (edge voxels keep at least a 1/0.3 ≈ 3.3× boost at most).
MIN_VOXEL_RECOVERY = 0.3


def voxel_recovery(mask: np.ndarray, psf_sigma_mm: float, spacing_mm) -> np.ndarray:
    """w = Gaussian(σ = ``psf_sigma_mm``) blur of the VOI mask ([z, y, x]; ``spacing_mm`` (x, y, z)),
    computed in the mask's bounding box plus 4σ (scipy.ndimage.gaussian_filter)."""
    from scipy import ndimage

    sig = [float(psf_sigma_mm) / float(sp) for sp in tuple(spacing_mm)[::-1]]
    idx = np.nonzero(mask)
    lo = [max(int(i.min()) - int(np.ceil(4 * s)), 0) for i, s in zip(idx, sig)]
    hi = [min(int(i.max()) + int(np.ceil(4 * s)) + 1, n) for i, s, n in zip(idx, sig, mask.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    w = np.zeros(mask.shape)
    w[box] = ndimage.gaussian_filter(mask[box].astype(np.float64), sig, mode="constant")
    return w


def _masses(density, voxel_ml: float):
    return (density if density is not None else dose_mod.SOFT_TISSUE_DENSITY_G_PER_ML) * voxel_ml


def add_consistent_statistics(rows: list, maps: dict, vois: list, density, voxel_ml: float,
                              psf_sigma_mm: float | None = None) -> dict:
    """Add voxel statistics scaled to each row's ``absorbed_dose_Gy`` (see the module docstring).

    ``maps``: the output of :func:`cycle_dose.voxel_dose_maps` (``dose_Gy``: cycle -> image).
    Sets on each row with a map: ``voxel_mean_dose_Gy`` (= the VOI dose after scaling),
    ``voxel_mean_dose_uncorrected_Gy``, ``voxel_dose_scale_factor``, ``D90_Gy``, ``D50_Gy``,
    ``D10_Gy``, ``EUD_Gy``. Returns {(voi, cycle): scale factor}.
    """
    by_name = {v.name: v for v in vois}
    masses = _masses(density, voxel_ml)
    factors = {}
    for r in rows:
        img = maps.get("dose_Gy", {}).get(r["cycle"])
        v = by_name.get(r["voi"])
        if img is None or v is None:
            continue
        d = sitk.GetArrayViewFromImage(img).astype(np.float64)
        mask = v.mask_for(r["cycle"])
        raw = dose_mod.voi_dose_statistics(d, mask, masses)
        shaped = d
        if psf_sigma_mm and float(r.get("recovery_coefficient") or 1.0) < 1.0:
            w = voxel_recovery(mask, psf_sigma_mm, img.GetSpacing())
            shaped = np.where(mask, d / np.maximum(w, MIN_VOXEL_RECOVERY), d)
        shaped_mean = dose_mod.voi_dose_statistics(shaped, mask, masses).mean_Gy
        f = float(r["absorbed_dose_Gy"]) / shaped_mean if shaped_mean > 0 else 1.0
        shaped = np.where(mask, shaped * f, d)
        st = dose_mod.voi_dose_statistics(shaped, mask, masses)
        factors[(r["voi"], r["cycle"])] = (f, shaped[v.mask])
        r.update({"voxel_mean_dose_Gy": st.mean_Gy, "voxel_mean_dose_uncorrected_Gy": raw.mean_Gy,
                  "voxel_dose_scale_factor": f, "D90_Gy": st.d90_Gy, "D50_Gy": st.d50_Gy, "D10_Gy": st.d10_Gy,
                  "EUD_Gy": st.eud_Gy})
    return factors


def cumulative_dvh(rows: list, vois: list, density, voxel_ml: float, factors: dict) -> dict:
    """Cumulative dose statistics per VOI over all cycles (module docstring).

    Returns {voi name: {"stats": DoseStatistics, "cycles_with_maps": [...], "cycles_without_maps": [...],
    "note": str}} for the VOIs with at least one mapped cycle.
    """
    masses = _masses(density, voxel_ml)
    out = {}
    for v in vois:
        vrows = [r for r in rows if r["voi"] == v.name]
        mapped = [r for r in vrows if (v.name, r["cycle"]) in factors]
        if not mapped:
            continue
        total = None
        for r in mapped:
            d = factors[(v.name, r["cycle"])][1]
            total = d if total is None else total + d
        missing = [r for r in vrows if r not in mapped]
        note = ""
        if missing:
            mapped_sum = sum(float(r["absorbed_dose_Gy"]) for r in mapped)
            all_sum = sum(float(r["absorbed_dose_Gy"]) for r in vrows)
            if mapped_sum > 0:
                total = total * (all_sum / mapped_sum)
            note = (f"cycles {', '.join(str(r['cycle']) for r in missing)} have no voxel map (single time point): "
                    f"added by scaling the summed map to the sum of the VOI doses")
        m = masses[v.mask] if np.ndim(masses) else masses
        out[v.name] = {"stats": dose_mod.voi_dose_statistics(total, np.ones(total.shape, bool), m), "kind": v.kind,
                       "cycles_with_maps": [r["cycle"] for r in mapped],
                       "cycles_without_maps": [r["cycle"] for r in missing], "note": note}
    return out


def cumulative_summary(cum: dict) -> dict:
    """summary.json entry: per VOI the cumulative mean, D90, D50, D10 (Gy) and the cycles used."""
    return {name: {"kind": c["kind"], "mean_Gy": c["stats"].mean_Gy, "D90_Gy": c["stats"].d90_Gy,
                   "D50_Gy": c["stats"].d50_Gy, "D10_Gy": c["stats"].d10_Gy,
                   "cycles_with_maps": c["cycles_with_maps"], "cycles_without_maps": c["cycles_without_maps"],
                   **({"note": c["note"]} if c["note"] else {})}
            for name, c in cum.items()}


def write_cumulative_dvh(path, patient_id: str, cum: dict) -> None:
    """``dvh_cumulative.csv``: per VOI the cumulative DVH (fraction of the VOI, by mass, receiving ≥ dose_Gy)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(DVH_COLUMNS)
        for name, c in cum.items():
            st = c["stats"]
            for dgy, frac in zip(st.dvh_dose_Gy, st.dvh_fraction):
                w.writerow([patient_id, name, c["kind"], f"{float(dgy):.6g}", f"{float(frac):.6g}"])
