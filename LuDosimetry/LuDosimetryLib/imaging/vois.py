"""VOIs on the reference grid and the values measured in them.

``define_vois`` turns the manifest's labels into masks (adaptive-threshold tumours contoured inside
their drawn ROI), with volume and mass (CT density) and the minimum-volume rule; ``resegment_cycles``
contours tumours again per cycle; ``measure_voi_values`` gives activity (MBq) or mean dose rate (Gy/h)
per VOI and scan; ``track_lesions`` matches lesions across cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..io import images as image_io
from ..io.study import Study, VoiDefinition
from ..io.study_images import StudyImages
from ..physics import dose as dose_mod
from . import pvc, segmentation, tracking
from .voi_masks import voi_rois


@dataclass
class Voi:
    """A VOI on the reference grid: mask [z, y, x], volume, mass and whether it is analysed."""

    definition: VoiDefinition
    mask: np.ndarray
    volume_ml: float
    mass_g: float
    included: bool = True
    flags: list = field(default_factory=list)
    roi: np.ndarray | None = None  # the drawn label (the rough ROI of an adaptive-threshold tumour)
    per_cycle: dict = field(default_factory=dict)  # cycle -> (mask, volume_ml, mass_g) when re-segmented

    def mask_for(self, cycle: int) -> np.ndarray:
        return self.per_cycle[cycle][0] if cycle in self.per_cycle else self.mask

    def volume_for(self, cycle: int) -> float:
        return self.per_cycle[cycle][1] if cycle in self.per_cycle else self.volume_ml

    def mass_for(self, cycle: int) -> float:
        return self.per_cycle[cycle][2] if cycle in self.per_cycle else self.mass_g

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def kind(self) -> str:
        return self.definition.kind


def _ct_on_grid(ct: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """CT (HU) on the SPECT grid: a finer CT is first smoothed to the SPECT voxel size (Gaussian of
    FWHM sqrt(s_spect^2 - s_ct^2) per axis) so each SPECT voxel gets the mean HU of its volume
    rather than one point sample, then resampled linearly."""
    s_ct, s_ref = np.array(ct.GetSpacing()), np.array(reference.GetSpacing())
    fwhm = np.sqrt(np.clip(s_ref ** 2 - s_ct ** 2, 0.0, None))
    if np.any(fwhm > 0):
        sigma = tuple(float(f / (2.0 * np.sqrt(2.0 * np.log(2.0)))) for f in fwhm)
        ct = sitk.SmoothingRecursiveGaussian(sitk.Cast(ct, sitk.sitkFloat32), sigma)
    return image_io.resample_to_reference(ct, reference, None, preserve_total=False).image


def define_vois(study: Study, images: StudyImages, reference: sitk.Image, reference_ct: sitk.Image | None,
                options) -> tuple[list, list, np.ndarray | None]:
    """VOIs on the reference grid; adaptive-threshold tumours are contoured inside their ROI.

    The minimum-volume rule (``options.min_tumor_volume_ml``) is applied to tumours on the
    cycle-1 reference scan (Macsuka et al. 2026); excluded tumours stay listed with their volume.
    Returns (vois, warnings, density map g/mL on the reference grid or None without CT).
    """
    rois, warnings = voi_rois(study.vois, reference, labelmap=images.labelmap, masks=images.masks,
                              source=str(study.segmentation_file or "segmentation"))
    voxel_ml = image_io.voxel_volume_ml(reference)
    density = None
    if reference_ct is not None:
        ct = reference_ct
        if image_io.geometry_differences(ct, reference):
            ct = _ct_on_grid(ct, reference)
        density = dose_mod.hu_to_density_g_per_ml(sitk.GetArrayFromImage(ct))
    else:
        warnings.append(f"no CT for the reference scan: VOI mass from the soft-tissue density "
                        f"({dose_mod.SOFT_TISSUE_DENSITY_G_PER_ML:g} g/mL)")
    vois = []
    for d in study.vois:
        if d.name not in rois:
            continue  # label absent from the labelmap (voi_rois warned)
        roi = mask = rois[d.name]
        flags = []
        if d.mode == "adaptive_threshold":
            seg = segmentation.adaptive_threshold_segment(reference, roi)
            mask = seg.mask
            flags.append("segmentation:adaptive_threshold")
            warnings.extend(f"{d.name}: {w}" for w in seg.warnings)
            if not mask.any():
                warnings.append(f"{d.name}: adaptive threshold found no voxels inside the ROI: ROI used as drawn")
                mask, flags = roi, flags + ["segmentation:roi_fallback"]
        volume = float(mask.sum()) * voxel_ml
        mass = float(density[mask].sum()) * voxel_ml if density is not None else volume * dose_mod.SOFT_TISSUE_DENSITY_G_PER_ML
        vois.append(Voi(definition=d, mask=mask, volume_ml=volume, mass_g=mass, flags=flags, roi=roi))
    tumours = {v.name: v.volume_ml for v in vois if v.kind == "tumor"}
    if tumours:
        rule = pvc.apply_minimum_volume_rule(tumours, min_volume_ml=options.min_tumor_volume_ml)
        for v in vois:
            if v.kind == "tumor" and v.name in rule.excluded:
                v.included = False
                v.flags.append(f"excluded:volume<{options.min_tumor_volume_ml:g}mL")
                warnings.append(f"{v.name} excluded: {v.volume_ml:.1f} mL on the cycle-1 reference scan is below "
                                f"the minimum volume of {options.min_tumor_volume_ml:g} mL")
    return vois, warnings, density


def resegment_cycles(vois: list, registered: dict, cycle_refs: dict, density, voxel_ml: float) -> list:
    """Contour each adaptive-threshold tumour again on every cycle's registered reference scan,
    inside its ROI (:func:`segmentation.adaptive_threshold_segment`); sets ``Voi.per_cycle``.
    A cycle where nothing is found keeps the cycle-1 contour and says so. Returns warnings."""
    warnings = []
    for v in vois:
        if v.definition.mode != "adaptive_threshold" or v.roi is None:
            continue
        for c, key in cycle_refs.items():
            seg = segmentation.adaptive_threshold_segment(registered[key], v.roi)
            if not seg.mask.any():
                warnings.append(f"{v.name} cycle {c}: re-segmentation found no lesion in the ROI; cycle-1 contour used")
                continue
            vol = float(seg.mask.sum()) * voxel_ml
            mass = (float(density[seg.mask].sum()) * voxel_ml if density is not None
                    else vol * dose_mod.SOFT_TISSUE_DENSITY_G_PER_ML)
            v.per_cycle[c] = (seg.mask, vol, mass)
    return warnings


def track_lesions(vois: list, rows: list, cycle_refs: dict, reference: sitk.Image) -> dict:
    """Lesions matched across cycles with Santoro-Fernandes et al. 2025 categories (:func:`tracking.match_lesions`).

    Lesions: the included tumours' contours per cycle (re-segmented ones when available). Value:
    the lesion's absorbed dose per administered activity (Gy/GBq) in each cycle, so that
    different activities and scan times do not masquerade as a change in uptake (Santoro-Fernandes et al. 2025 used
    SUVtotal, also normalised to the injected activity). Returns a JSON-ready dict (tracks with
    names, per-cycle volume and value, category; counts; the patient-level heterogeneity flag)."""
    tumours = [v for v in vois if v.kind == "tumor" and v.included]
    cycles = sorted(cycle_refs)
    if not tumours or len(cycles) < 2:
        return {"tracks": [], "counts": {}, "heterogeneous": False,
                "note": "lesion tracking needs at least one included tumour and two cycles"}
    ad_per_aa = {(r["voi"], r["cycle"]): r["ad_per_aa_Gy_per_GBq"] for r in rows}
    masks = [[v.mask_for(c) for v in tumours] for c in cycles]
    values = [[ad_per_aa[(v.name, c)] for v in tumours] for c in cycles]
    res = tracking.match_lesions(masks, reference, values_by_cycle=values)
    tracks = []
    for t in res.tracks:
        first = next(i for i, m in enumerate(t.members) if m is not None)
        name = tumours[t.members[first]].name
        tracks.append({"lesion": name, "category": t.category, "change_percent": t.change_percent,
                       "ad_per_aa_Gy_per_GBq_by_cycle": dict(zip(cycles, t.values)),
                       "volume_ml_by_cycle": {c: (res.observations[i][m].volume_ml if m is not None else None)
                                              for i, (c, m) in enumerate(zip(cycles, t.members))}})
    return {"value": "lesion AD/AA (Gy/GBq), first vs last cycle (Santoro-Fernandes et al. 2025 categories: -30 % / +30 %)",
            "tracks": tracks, "counts": dict(res.counts), "heterogeneous": bool(res.heterogeneous)}


def measure_voi_values(registered: dict, vois: list, units: str, local: dict | None = None) -> dict:
    """Per (voi name, cycle, i): the VOI total activity (MBq) for Bq/mL images, or the VOI mean
    dose rate (Gy/h) for dose-rate maps. A tumour with its own local registration
    (``local[(name, key)]``) is measured on that image."""
    out = {}
    local = local or {}
    for key, img in registered.items():
        arr = sitk.GetArrayViewFromImage(img)
        voxel_ml = image_io.voxel_volume_ml(img)
        for v in vois:
            own = local.get((v.name, key))
            vals = (sitk.GetArrayViewFromImage(own) if own is not None else arr)[v.mask_for(key[0])]
            if units == "Gy/h":
                out[(v.name, key[0], key[1])] = float(vals.mean())
            else:
                out[(v.name, key[0], key[1])] = float(vals.sum()) * voxel_ml * 1e-6  # Bq/mL * mL -> MBq
    return out
