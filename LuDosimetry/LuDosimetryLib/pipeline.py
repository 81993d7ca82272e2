"""End-to-end dosimetry of one patient (study manifest in, contract-2 results out).

The runner reads like the data flow of ARCHITECTURE.md; each step is one function:

    load_study_images          images of every cycle x time point (+ labelmap)
    register_scans             every scan to the cycle-1 reference scan (24 h by default)
    define_vois                VOIs on the reference: as drawn, or adaptive threshold in a rough ROI;
                               minimum-volume rule on the cycle-1 reference (seed 000)
    measure_voi_activity       activity (MBq) or dose rate (Gy/h) per VOI per time point
    correct_partial_volume     recovery coefficient for the VOI volume
    fit_and_integrate          time-activity fit (seed 000 Eq. 1 with fallbacks) and integral
    absorbed_dose              local energy deposition (VOI mass from CT) or voxel S-values
    cross-cycle metrics        AD/AA, cumulative AD, delta AD/AA, kidney dose and BED, next AA

``run_study`` works on in-memory SimpleITK images (what the Slicer module hands over);
``run_manifest`` loads a manifest from disk, runs and writes the results.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .results import cycle_metrics
from .physics import dose as dose_mod
from .io import images as image_io
from .physics import kinetics
from .imaging import pvc
from .physics import radiobiology
from .imaging import registration
from .imaging import segmentation
from .imaging import tracking
from . import __version__
from .errors import InputDataError, LuDosimetryError
from .physics.radionuclides import get_nuclide
from .io.study import VOI_KINDS, Study, VoiDefinition, load_study

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]

CSV_COLUMNS = ["patient_id", "cycle", "voi", "kind", "volume_ml", "administered_activity_MBq", "absorbed_dose_Gy",
               "ad_per_aa_Gy_per_GBq", "fit_model", "effective_half_life_h", "recovery_coefficient", "flags",
               "absorbed_dose_uncertainty_Gy", "time_integrated_activity_MBq_h", "mass_g", "included", "excluded",
               "lea_catcheside_g",
               "voxel_mean_dose_Gy", "D90_Gy", "D50_Gy", "D10_Gy", "EUD_Gy"]

RESULT_FILE_PATTERNS = ("voi_cycle_doses.csv", "voi_time_activity.csv", "summary.json", "report.html",
                        "tia_MBq_h_cycle*.nrrd", "dose_Gy_cycle*.nrrd")
TIME_ACTIVITY_COLUMNS = ["patient_id", "cycle", "voi", "kind", "hours_post_injection", "value", "value_pv_corrected",
                         "recovery_coefficient", "units", "fitted_value"]


REGISTRATION_METHODS = ("auto", "translation", "rigid_ct", "local", "none")
DOSE_METHODS = ("local_deposition", "voxel_s_value")
FIT_MODELS = ("auto", "biexp", "mono", "triexp", "trapezoid", "mono_last2")


class Cancelled(LuDosimetryError):
    """The user cancelled the run (progress dialog); nothing was written."""


@dataclass
class PipelineOptions:
    """Choices of the per-patient run.

    registration: "auto" (rigid CT-to-CT when CT exists, else SPECT translation; falls back),
        "translation" (seed 000), "rigid_ct", "local", or "none".
    dose_method: "local_deposition" (VOI mean, mass from CT) or "voxel_s_value" (voxel-wise
        fit, FFT convolution). Dose-rate input (spect_units "Gy/h") is integrated directly.
    fit_model: "auto" or a model name of :func:`kinetics.fit_time_activity`;
        ``fit_model_per_voi`` overrides it for named VOIs.
    min_tumor_volume_ml: tumours smaller than this on the cycle-1 reference scan are excluded.
    reference_hours: the reference time point (closest scan to this many hours p.i.).
    resegment_each_cycle: contour adaptive-threshold tumours again, inside the same ROI, on each
        cycle's registered reference scan (volume and mass per cycle); otherwise the cycle-1
        contour is copied to every scan (seed 000).
    apply_pvc_to: VOI kinds corrected with recovery coefficients (seed 000: tumours and kidneys).
    planned_cycles: cycles in the course (4 in seed 000), for the suggested next-cycle activity.
    Invalid values raise InputDataError at construction, before any image is read.
    """

    registration: str = "auto"
    dose_method: str = "local_deposition"
    fit_model: str = "auto"
    min_tumor_volume_ml: float = 10.0
    save_maps: bool = False
    reference_hours: float = 24.0
    apply_pvc_to: tuple = ("tumor", "kidney")
    value_uncertainty: float = 0.05
    fit_model_per_voi: dict = field(default_factory=dict)  # VOI name -> model, overrides fit_model
    local_box_margin_mm: float = 30.0  # "local" registration: box = tumour extent + this margin per side
    resegment_each_cycle: bool = False  # adaptive-threshold tumours contoured again on each cycle's reference
    planned_cycles: int = 4  # length of the treatment course, for the next-cycle activity

    def __post_init__(self):
        problems = []
        if self.registration not in REGISTRATION_METHODS:
            problems.append(f"registration must be one of {REGISTRATION_METHODS}, got {self.registration!r}")
        if self.dose_method not in DOSE_METHODS:
            problems.append(f"dose_method must be one of {DOSE_METHODS}, got {self.dose_method!r}")
        for name, model in [("fit_model", self.fit_model)] + [(f"fit_model_per_voi[{k!r}]", m)
                                                             for k, m in self.fit_model_per_voi.items()]:
            if model not in FIT_MODELS:
                problems.append(f"{name} must be one of {FIT_MODELS}, got {model!r}")
        bad_kinds = [k for k in self.apply_pvc_to if k not in VOI_KINDS]
        if bad_kinds:
            problems.append(f"apply_pvc_to: unknown VOI kind(s) {bad_kinds}; kinds are {VOI_KINDS}")
        if not self.min_tumor_volume_ml >= 0:
            problems.append(f"min_tumor_volume_ml must be >= 0 mL, got {self.min_tumor_volume_ml!r}")
        if not self.reference_hours > 0:
            problems.append(f"reference_hours must be > 0 h, got {self.reference_hours!r}")
        if not (isinstance(self.planned_cycles, int) and self.planned_cycles >= 1):
            problems.append(f"planned_cycles must be an integer >= 1, got {self.planned_cycles!r}")
        if problems:
            raise InputDataError("PipelineOptions: " + "; ".join(problems))

    def as_dict(self) -> dict:
        """The options as recorded in summary.json."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class StudyImages:
    """Images of a study: ``spect[(cycle, i)]`` and ``ct[(cycle, i)]`` (i = time-point index,
    CT may be None) as SimpleITK images in Bq/mL (or Gy/h), and the labelmap."""

    spect: dict
    ct: dict
    labelmap: sitk.Image


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


@dataclass
class PipelineResult:
    """Everything a run produced (in memory)."""

    study: Study
    rows: list
    summary: dict
    fits: dict  # (voi name, cycle) -> kinetics.TimeActivityFit
    samples: dict  # (voi name, cycle) -> (hours, values, units)
    time_activity: list  # rows of voi_time_activity.csv
    vois: list
    registrations: dict  # (cycle, i) -> registration.RegistrationResult
    reference_key: tuple
    reference_spect: sitk.Image
    registered_spect: dict
    maps: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)  # stage name -> wall-clock seconds
    out_dir: Path | None = None
    files: list = field(default_factory=list)


def _report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    log.debug("%s", message)
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def _check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("run cancelled by the user; no results were written")


def reference_index(hours: list[float], reference_hours: float) -> int:
    """Index of the time point closest to ``reference_hours``."""
    return int(np.argmin([abs(h - reference_hours) for h in hours]))


def load_study_images(study: Study) -> StudyImages:
    """Read every SPECT/CT and the labelmap of ``study``; counts are converted to Bq/mL."""
    spect, ct = {}, {}
    for cyc in study.cycles:
        for i, tp in enumerate(cyc.timepoints):
            img = image_io.read_image(tp.spect, series_uid=tp.spect_series_uid)
            if tp.spect_units == "counts":
                img = image_io.counts_to_bq_per_ml(img, tp.calibration_cps_per_MBq, tp.acquisition_duration_s)
            spect[(cyc.cycle, i)] = img
            ct[(cyc.cycle, i)] = (image_io.read_image(tp.ct, series_uid=tp.ct_series_uid)
                                  if tp.ct is not None else None)
    labelmap = image_io.read_image(study.segmentation_file)
    return StudyImages(spect=spect, ct=ct, labelmap=labelmap)


def _units(study: Study) -> str:
    units = {tp.spect_units for c in study.cycles for tp in c.timepoints}
    if "Gy/h" in units and len(units) > 1:
        raise InputDataError("spect_units: dose-rate maps (Gy/h) and activity images cannot be mixed in one study")
    return "Gy/h" if "Gy/h" in units else "Bq/mL"


def _centre_displacement_mm(transform: sitk.Transform, fixed: sitk.Image) -> tuple:
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in fixed.GetSize()])
    return tuple(float(v) for v in np.asarray(transform.TransformPoint(centre)) - np.asarray(centre))


def _given_registration(transform: sitk.Transform, fixed: sitk.Image) -> registration.RegistrationResult:
    return registration.RegistrationResult(transform=transform, method="given", requested_method="given",
                                           translation_mm=_centre_displacement_mm(transform, fixed),
                                           warnings=["transform supplied by the caller (e.g. accepted in Slicer)"])


def local_boxes(vois: list, reference: sitk.Image, margin_mm: float) -> list:
    """(name, centre_mm, size_mm) boxes around each included tumour for "local" registration."""
    boxes = []
    spacing = np.array(reference.GetSpacing())
    for v in vois:
        if v.kind != "tumor" or not v.included:
            continue
        idx = np.argwhere(v.mask)  # [z, y, x]
        lo, hi = idx.min(axis=0)[::-1], idx.max(axis=0)[::-1]  # x, y, z
        centre = reference.TransformContinuousIndexToPhysicalPoint(tuple(float(c) for c in (lo + hi) / 2.0))
        size = (hi - lo + 1) * spacing + 2.0 * margin_mm
        boxes.append((v.name, tuple(centre), tuple(float(x) for x in size)))
    return boxes


def _chained(cycle_res, tp_res, fixed: sitk.Image) -> registration.RegistrationResult:
    """One result for cycle-1 reference -> cycle-c reference -> cycle-c time point."""
    tx = registration.chain_transforms(cycle_res.transform, tp_res.transform)
    ok = cycle_res.ok and tp_res.ok
    return registration.RegistrationResult(
        transform=tx, method=f"{tp_res.method} + cycle {cycle_res.method}", requested_method=tp_res.requested_method,
        metric_value=tp_res.metric_value, translation_mm=_centre_displacement_mm(tx, fixed),
        quality="ok" if ok else "failed",
        warnings=[f"cycle registration: {w}" for w in cycle_res.warnings] + list(tp_res.warnings))


def register_scans(study: Study, images: StudyImages, ref_key: tuple, method: str,
                   progress: ProgressCallback | None = None, cancel=None, transforms: dict | None = None,
                   boxes: list | None = None, reference_hours: float = 24.0) -> tuple[dict, dict, dict]:
    """Register every scan to the reference scan and resample it onto the reference grid.

    Within the reference cycle each scan is registered to the reference scan. A later cycle is
    registered in two stages, as the patient is repositioned between cycles: its own reference
    scan to the cycle-1 reference (:func:`registration.register_cycles`: centre-of-mass start,
    wider bounds), then its other scans to its reference scan; the transforms are chained.
    ``transforms`` (optional): {(cycle, i): sitk.Transform} fixed -> moving, used instead of
    registering (e.g. transforms the user accepted in Slicer). ``boxes``: tumour boxes for
    method "local" (see :func:`local_boxes`), refined per scan after the global registration.

    Returns (registrations, registered_spect, local_spect): per (cycle, i) the registration
    result (None for the reference itself), the SPECT resampled on the reference grid with its
    total activity kept (:func:`images.resample_to_reference`, cubic B-spline), and for method
    "local" the SPECT resampled with each tumour's own transform, {(voi name, (cycle, i)): image}.
    """
    fixed = images.spect[ref_key]
    fixed_ct = images.ct.get(ref_key)
    regs, registered, local = {}, {}, {}
    transforms = transforms or {}
    global_method = "auto" if method == "local" else method
    cycle_refs = cycle_reference_keys(study, reference_hours)
    cycle_regs = {}
    keys = sorted(images.spect)
    for n, key in enumerate(keys):
        _check_cancel(cancel)
        _report(progress, 0.1 + 0.35 * n / len(keys), f"registering cycle {key[0]} time point {key[1] + 1}")
        moving, moving_ct = images.spect[key], images.ct.get(key)
        if key == ref_key:
            regs[key] = None
            registered[key] = fixed
            continue
        if key in transforms:
            res = _given_registration(transforms[key], fixed)
        elif method == "none":
            regs[key] = None
            image_io.check_same_geometry(fixed, moving, "reference SPECT", f"SPECT cycle {key[0]} #{key[1] + 1}")
            registered[key] = moving
            continue
        elif key[0] == ref_key[0]:
            res = registration.register_time_point(fixed, moving, fixed_ct=fixed_ct, moving_ct=moving_ct,
                                                   method=global_method)
        else:
            cref = cycle_refs[key[0]]
            if key[0] not in cycle_regs:
                cycle_regs[key[0]] = (_given_registration(transforms[cref], fixed) if cref in transforms else
                                      registration.register_cycles(fixed, images.spect[cref], ct_cycle1=fixed_ct,
                                                                   ct_other=images.ct.get(cref), method=global_method))
            cyc = cycle_regs[key[0]]
            if key == cref:
                res = cyc
            else:
                tp = registration.register_time_point(images.spect[cref], moving, fixed_ct=images.ct.get(cref),
                                                      moving_ct=moving_ct, method=global_method)
                res = _chained(cyc, tp, fixed)
        if method == "local" and boxes and key not in transforms:
            for name, centre, size in boxes:
                sub = registration.register_local(fixed, moving, centre, size, initial_transform=res.transform)
                res.local[name] = sub
                res.warnings.extend(f"{name}: {w}" for w in sub.warnings)
        regs[key] = res
        # cubic B-spline: linear interpolation smooths small objects (measured: -4 % mean in a 15 mL sphere)
        registered[key] = image_io.resample_to_reference(moving, fixed, res.transform, interpolator="bspline").image
        for name, sub in (res.local or {}).items():
            if sub.ok:
                local[(name, key)] = image_io.resample_to_reference(moving, fixed, sub.transform,
                                                                    interpolator="bspline").image
    return regs, registered, local


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
                options: PipelineOptions) -> tuple[list, list, np.ndarray | None]:
    """VOIs on the reference grid; adaptive-threshold tumours are contoured inside their ROI.

    The minimum-volume rule (``options.min_tumor_volume_ml``) is applied to tumours on the
    cycle-1 reference scan (seed 000); excluded tumours stay listed with their volume.
    Returns (vois, warnings, density map g/mL on the reference grid or None without CT).
    """
    warnings = []
    labels = images.labelmap
    if image_io.geometry_differences(labels, reference):
        warnings.append("segmentation geometry differs from the reference SPECT: resampled with nearest neighbour")
        labels = image_io.resample_labelmap(labels, reference)
    lab = sitk.GetArrayFromImage(labels)
    voxel_ml = image_io.voxel_volume_ml(reference)
    density = None
    if reference_ct is not None:
        ct = reference_ct
        if image_io.geometry_differences(ct, reference):
            ct = _ct_on_grid(ct, reference)
        density = dose_mod.hu_to_density_g_per_ml(sitk.GetArrayFromImage(ct))
    else:
        warnings.append("no CT for the reference scan: VOI mass from unit density (1.0 g/mL)")
    vois = []
    for d in study.vois:
        roi = lab == d.label
        flags = []
        if not roi.any():
            warnings.append(f"segmentation label {d.label} ({d.name}) is empty: VOI skipped")
            continue
        mask = roi
        if d.mode == "adaptive_threshold":
            seg = segmentation.adaptive_threshold_segment(reference, roi)
            mask = seg.mask
            flags.append("segmentation:adaptive_threshold")
            warnings.extend(f"{d.name}: {w}" for w in seg.warnings)
            if not mask.any():
                warnings.append(f"{d.name}: adaptive threshold found no voxels inside the ROI: ROI used as drawn")
                mask, flags = roi, flags + ["segmentation:roi_fallback"]
        volume = float(mask.sum()) * voxel_ml
        mass = float(density[mask].sum()) * voxel_ml if density is not None else volume
        vois.append(Voi(definition=d, mask=mask, volume_ml=volume, mass_g=mass, flags=flags, roi=roi))
    if not vois:
        present = sorted(int(x) for x in np.unique(lab) if x != 0)
        expected = [d.label for d in study.vois]
        raise InputDataError(f"segmentation {study.segmentation_file}: none of the manifest's labels {expected} "
                             f"is present on the reference grid (labels found: {present or 'none'})")
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


def cycle_reference_keys(study: Study, reference_hours: float) -> dict:
    """{cycle: (cycle, i)} of each cycle's reference scan (closest to ``reference_hours``)."""
    return {c.cycle: (c.cycle, reference_index(c.hours, reference_hours)) for c in study.cycles}


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
            mass = float(density[seg.mask].sum()) * voxel_ml if density is not None else vol
            v.per_cycle[c] = (seg.mask, vol, mass)
    return warnings


def track_lesions(vois: list, rows: list, cycle_refs: dict, reference: sitk.Image) -> dict:
    """Lesions matched across cycles with seed 003 categories (:func:`tracking.match_lesions`).

    Lesions: the included tumours' contours per cycle (re-segmented ones when available). Value:
    the lesion's absorbed dose per administered activity (Gy/GBq) in each cycle, so that
    different activities and scan times do not masquerade as a change in uptake (seed 003 used
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
    return {"value": "lesion AD/AA (Gy/GBq), first vs last cycle (seed 003 categories: -30 % / +30 %)",
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


def _effective_half_life_from_other_cycles(fits: dict, voi: str, cycle: int) -> tuple[float | None, int | None]:
    """T_eff (h) of the same VOI's fit in the nearest other cycle with several time points."""
    other = sorted(((abs(c - cycle), c, f) for (name, c), f in fits.items()
                    if name == voi and c != cycle and len(f.times_h) > 1), key=lambda x: x[:2])
    if not other:
        return None, None
    return float(other[0][2].effective_half_life_h), other[0][1]


def voi_cycle_dose(study: Study, cyc, v: Voi, y: np.ndarray, y_units: str, rc_curve, options: PipelineOptions,
                   nuclide, fits: dict) -> dict:
    """Dose of one VOI in one cycle from its measured values ``y`` (MBq, or Gy/h) per time point.

    Steps: partial-volume correction (:meth:`pvc.RecoveryCurve.correct`) for the kinds in
    ``options.apply_pvc_to``; time integration (:func:`kinetics.fit_time_activity`; a requested
    model that fails falls back to ``"auto"`` with a warning; a single time point uses
    :func:`kinetics.fit_single_time_point` with the VOI's T_eff from its nearest full cycle,
    Hänscheid without one); dose by local deposition with the VOI mass
    (:func:`dose.led_dose_Gy`) or, for dose rates, the integral itself; the Lea-Catcheside factor
    of kidney curves (:func:`radiobiology.g_factor_from_fit`). Returns row, fit, values,
    time_activity rows and warnings.
    """
    hours = np.array(cyc.hours)
    flags, warnings = list(v.flags), []
    raw = y.copy()
    rc = 1.0
    if rc_curve is not None and v.kind in options.apply_pvc_to:
        corrected, rc, pvc_flags = rc_curve.correct(y, v.volume_for(cyc.cycle))
        y = np.asarray(corrected, dtype=float)
        flags += list(pvc_flags)
    where = f"{v.name} cycle {cyc.cycle}"
    if len(hours) == 1:
        t_eff, source = _effective_half_life_from_other_cycles(fits, v.name, cyc.cycle)
        fit = kinetics.fit_single_time_point(hours[0], y[0], physical_half_life_h=nuclide.half_life_h,
                                             effective_half_life_h=t_eff, value_uncertainty=options.value_uncertainty)
        note = f"T_eff {t_eff:.1f} h from cycle {source}" if t_eff is not None else "no full cycle for T_eff"
        warnings.append(f"{where}: one time point only, {fit.params['method']} method ({note})")
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
        if fit.flags:  # a fallback, a rising curve or a bound: say what was done and why
            warnings.extend(f"{where}: {w}" for w in fit.warnings if not w.startswith("model "))
    flags += list(fit.flags)
    if y_units == "Gy/h":
        dose_Gy, dose_sd, tia = fit.integral, fit.uncertainty, None
    else:
        tia = fit.integral
        dose_Gy = dose_mod.led_dose_Gy(tia, v.mass_for(cyc.cycle), nuclide)
        dose_sd = dose_Gy * fit.relative_uncertainty
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
        "lea_catcheside_g": g,
    }
    fitted = fit.evaluate(hours)
    ta = [{"patient_id": study.patient_id, "cycle": cyc.cycle, "voi": v.name, "kind": v.kind,
           "hours_post_injection": float(h), "value": float(m), "value_pv_corrected": float(c),
           "recovery_coefficient": rc, "units": y_units, "fitted_value": float(f)}
          for h, m, c, f in zip(hours, raw, y, fitted)]
    return {"row": row, "fit": fit, "values": y, "time_activity": ta, "warnings": warnings}


def run_study(study: Study, images: StudyImages, options: PipelineOptions | None = None,
              progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
              transforms: dict | None = None) -> PipelineResult:
    """Dosimetry of one patient on in-memory images. Input images are never modified.

    ``transforms``: optional {(cycle, i): sitk.Transform} (fixed reference -> moving scan) used
    instead of registering those scans (e.g. registrations accepted in Slicer).
    """
    options = options or PipelineOptions()
    nuclide = get_nuclide(study.radionuclide)
    units = _units(study)
    warnings = list(study.warnings)
    first = study.cycles[0]
    ref_key = (first.cycle, reference_index(first.hours, options.reference_hours))
    _report(progress, 0.02, f"reference scan: cycle {ref_key[0]} at {first.hours[ref_key[1]]:g} h p.i.")

    timings = {}
    reference = images.spect[ref_key]
    _report(progress, 0.05, "defining VOIs on the reference scan")
    t0 = time.perf_counter()
    vois, voi_warnings, density = define_vois(study, images, reference, images.ct.get(ref_key), options)
    warnings.extend(voi_warnings)
    timings["segmentation"] = time.perf_counter() - t0

    _check_cancel(cancel)
    t0 = time.perf_counter()
    boxes = local_boxes(vois, reference, options.local_box_margin_mm) if options.registration == "local" else None
    regs, registered, local = register_scans(study, images, ref_key, options.registration, progress, cancel,
                                             transforms=transforms, boxes=boxes,
                                             reference_hours=options.reference_hours)
    for key, r in regs.items():
        if r is not None:
            warnings.extend(f"registration cycle {key[0]} #{key[1] + 1}: {w}" for w in r.warnings)
    timings["registration"] = time.perf_counter() - t0
    cycle_refs = cycle_reference_keys(study, options.reference_hours)
    if options.resegment_each_cycle:
        t0 = time.perf_counter()
        warnings.extend(resegment_cycles(vois, registered, cycle_refs, density, image_io.voxel_volume_ml(reference)))
        timings["segmentation"] += time.perf_counter() - t0

    rc_curve = None
    if study.recovery_coefficients:
        rc_curve = pvc.recovery_curve_from_table(study.recovery_coefficients["volume_ml"],
                                                 study.recovery_coefficients["rc"])

    _report(progress, 0.55, "measuring VOI activity at every time point")
    t0 = time.perf_counter()
    values = measure_voi_values(registered, vois, units, local)
    voxel_map = None
    if options.dose_method == "voxel_s_value" and units != "Gy/h":
        _report(progress, 0.6, "voxel S-value dose-rate maps")
        voxel_map = _voxel_s_value_dose_rates(study, registered, reference, nuclide)

    fits, samples, rows, time_activity = {}, {}, [], []
    # cycles with several time points first: a single-time-point cycle borrows the VOI's T_eff from them
    ordered = sorted(study.cycles, key=lambda c: (len(c.timepoints) == 1, c.cycle))
    for v in vois:
        for cyc in ordered:
            _check_cancel(cancel)
            if voxel_map is not None:
                y = np.array([float(sitk.GetArrayViewFromImage(voxel_map[(cyc.cycle, i)])[v.mask_for(cyc.cycle)].mean())
                              for i in range(len(cyc.timepoints))])
                y_units = "Gy/h"
            else:
                y = np.array([values[(v.name, cyc.cycle, i)] for i in range(len(cyc.timepoints))])
                y_units = "Gy/h" if units == "Gy/h" else "MBq"
            try:
                out = voi_cycle_dose(study, cyc, v, y, y_units, rc_curve, options, nuclide, fits)
            except LuDosimetryError as exc:
                raise type(exc)(f"{v.name} cycle {cyc.cycle}: {exc}") from exc
            fits[(v.name, cyc.cycle)] = out["fit"]
            samples[(v.name, cyc.cycle)] = (np.array(cyc.hours), out["values"], y_units)
            rows.append(out["row"])
            time_activity.extend(out["time_activity"])
            warnings.extend(out["warnings"])
    order = {(c.cycle): i for i, c in enumerate(study.cycles)}
    rows.sort(key=lambda r: ([v.name for v in vois].index(r["voi"]), order[r["cycle"]]))

    timings["activity, fit and dose"] = time.perf_counter() - t0
    _check_cancel(cancel)
    _report(progress, 0.8, "voxel-wise time integration and dose maps")
    t0 = time.perf_counter()
    maps = voxel_dose_maps(study, registered, reference, density, vois, nuclide, units, voxel_map,
                           whole_image=options.save_maps)
    _add_dose_statistics(rows, maps["dose_statistics"])
    warnings.extend(maps.pop("warnings"))
    timings["voxel-wise maps and DVH"] = time.perf_counter() - t0
    _report(progress, 0.9, "cross-cycle metrics, kidney BED and next-cycle activity")
    t0 = time.perf_counter()
    summary = _summarise(study, rows, warnings, options.planned_cycles)
    summary["lesion_tracking"] = track_lesions(vois, rows, cycle_refs, reference)
    summary["options"] = options.as_dict()
    summary["software"] = {"name": "lu-dosimetry", "version": __version__}
    timings["cross-cycle metrics"] = time.perf_counter() - t0
    return PipelineResult(study=study, rows=rows, summary=summary, fits=fits, samples=samples,
                          time_activity=time_activity, vois=vois,
                          registrations=regs, reference_key=ref_key, reference_spect=reference,
                          registered_spect=registered, maps=maps, timings_s=timings)


def _voxel_s_value_dose_rates(study: Study, registered: dict, reference: sitk.Image, nuclide) -> dict:
    """Dose-rate map (Gy/h) per registered scan by voxel S-value convolution."""
    kernel = dose_mod.voxel_s_value_kernel(nuclide.name, reference.GetSpacing())
    voxel_ml = image_io.voxel_volume_ml(reference)
    out = {}
    for key, img in registered.items():
        activity_MBq = sitk.GetArrayFromImage(img).astype(np.float64) * voxel_ml * 1e-6
        rate = dose_mod.vsv_dose_rate_Gy_per_h(activity_MBq, kernel)
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
        out["warnings"].extend(f"voxel-wise fit cycle {cyc.cycle}: {w}" for w in vfit.warnings)
        if dose_rate_maps is not None or units == "Gy/h":
            dose_Gy, tia = vfit.integral, None
        else:
            tia = vfit.integral
            dose_Gy = dose_mod.led_dose_Gy(tia, nuclide=nuclide, voxel_volume_ml=voxel_ml,
                                           density_g_per_ml=density if density is not None else 1.0)
        for name, arr in (("tia_MBq_h", tia), ("dose_Gy", dose_Gy)):
            if arr is not None:
                img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
                img.CopyInformation(reference)
                out[name][cyc.cycle] = img
        masses = density * voxel_ml if density is not None else None
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


def _summarise(study: Study, rows: list, warnings: list, n_planned_cycles: int) -> dict:
    """summary.json (contract 2): cross-cycle metrics (:func:`cycles.cross_cycle_metrics`),
    kidney BED from the per-row Lea-Catcheside factors, and the next-cycle activity by the
    seed 000 rule (:func:`radiobiology.plan_next_activity_seed000`) and by the seed 002
    renal-BED rule (:func:`radiobiology.plan_seed002`)."""
    metrics = cycle_metrics.cross_cycle_metrics(rows)
    patient = metrics.patients[study.patient_id]
    summary = patient.summary_fields()
    summary["warnings"] = list(dict.fromkeys(warnings + summary["warnings"]))
    summary.update({
        "radionuclide": study.radionuclide,
        "administered_activity_MBq": [c.administered_activity_MBq for c in study.cycles],
        "tumor_cumulative_dose_Gy": patient.tumor_cumulative_dose_Gy,
        "lesion_dose_Gy": {"min": patient.lesion_total_dose_min_Gy, "mean": patient.lesion_total_dose_mean_Gy,
                           "max": patient.lesion_total_dose_max_Gy},
        "tumor_mean_ad_per_aa_Gy_per_GBq_by_cycle": patient.tumor_mean_ad_per_aa_by_cycle,
        "tumors_included": list(patient.tumors),
        "tumors_excluded": list(patient.excluded_tumors),
        "next_cycle_activity": _next_cycle_plan(rows, n_planned_cycles),
        "next_cycle_activity_seed002": _next_cycle_plan_seed002(rows),
    })
    return summary


def _kidney_rows_by_cycle(rows: list) -> dict:
    kidney = {}
    for r in rows:
        if r["kind"] == "kidney":
            kidney.setdefault(r["cycle"], []).append(r)
    return kidney


def _next_cycle_plan_seed002(rows: list) -> dict | None:
    """Seed 002 rule (:func:`radiobiology.plan_seed002`): 7.4 GBq cycles until the renal BED
    reaches 27 +/- 2 Gy; kidney dose, G and AD/AA per cycle are the means over the kidney VOIs."""
    kidney = _kidney_rows_by_cycle(rows)
    if not kidney:
        return None
    given = sorted(kidney)
    doses = [float(np.mean([r["absorbed_dose_Gy"] for r in kidney[c]])) for c in given]
    gs = [float(np.mean([np.nan if r["lea_catcheside_g"] is None else r["lea_catcheside_g"] for r in kidney[c]]))
          for c in given]
    if not np.all(np.isfinite(gs)):
        return {"rule": "seed002", "activity_MBq": None, "continue_treatment": None,
                "explanation": "kidney Lea-Catcheside factor not defined for every cycle: renal BED unknown"}
    ad_per_aa = [float(np.mean([r["ad_per_aa_Gy_per_GBq"] for r in kidney[c]])) for c in given]
    plan = radiobiology.plan_seed002(doses, gs, ad_per_aa)
    return {"rule": plan.rule, "activity_MBq": plan.next_activity_GBq * 1000.0 if plan.continue_treatment else None,
            "continue_treatment": plan.continue_treatment, "explanation": plan.reasoning,
            "warnings": list(plan.warnings)}


def _next_cycle_plan(rows: list, n_planned_cycles: int) -> dict | None:
    """Seed 000 trial rule for the cycle after the last one given (cycle numbers, not counts)."""
    kidney = _kidney_rows_by_cycle(rows)
    if not kidney:
        return None
    given = sorted(kidney)
    last = given[-1]
    note = []
    if given != list(range(1, last + 1)):
        missing = sorted(set(range(1, last + 1)) - set(given))
        note.append(f"cycle(s) {missing} have no kidney dose: the delivered kidney dose is underestimated")
    remaining = n_planned_cycles - last
    if remaining < 1:
        return {"rule": "seed000", "activity_MBq": None, "warnings": note,
                "explanation": f"cycle {last} of {n_planned_cycles} planned given: no further cycle planned"}
    delivered = [float(np.mean([r["absorbed_dose_Gy"] for r in kidney[c]])) for c in given]
    ad_per_aa = [float(np.mean([r["ad_per_aa_Gy_per_GBq"] for r in kidney[c]])) for c in given]
    plan = radiobiology.plan_next_activity_seed000(delivered, ad_per_aa, cycles_remaining=remaining)
    return {"rule": plan.rule, "activity_MBq": plan.next_activity_GBq * 1000.0, "explanation": plan.reasoning,
            "warnings": note + list(plan.warnings)}


def write_results(result: PipelineResult, out_dir, report: bool = True, save_maps: bool = False) -> PipelineResult:
    """Write ``voi_cycle_doses.csv``, ``summary.json`` and ``report.html`` (contract 2), and
    ``voi_time_activity.csv`` (measured and partial-volume-corrected VOI activity, MBq, or dose
    rate, Gy/h, per time point, with the fitted curve's value).

    Files are first written to a temporary folder and moved into ``out_dir`` only when all
    of them are complete, so a failure leaves no partial results. ``save_maps`` adds the
    voxel-wise TIA (MBq·h per voxel) and dose (Gy) maps per cycle as NRRD.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".results-", dir=out))
    try:
        with open(tmp / "voi_cycle_doses.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in result.rows:
                w.writerow({k: _fmt(r.get(k)) for k in CSV_COLUMNS})
        with open(tmp / "voi_time_activity.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=TIME_ACTIVITY_COLUMNS)
            w.writeheader()
            for r in result.time_activity:
                w.writerow({k: _fmt(r.get(k)) for k in TIME_ACTIVITY_COLUMNS})
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2, default=_json_default))
        if report:
            from .results.report import write_report

            write_report(result, tmp / "report.html")
        if save_maps:
            for name in ("tia_MBq_h", "dose_Gy"):
                for c, img in result.maps.get(name, {}).items():
                    sitk.WriteImage(img, str(tmp / f"{name}_cycle{c}.nrrd"), True)
        # results of an earlier run in this folder would mix with these ones: remove them first
        for old in out.iterdir():
            if old.is_file() and any(old.match(pattern) for pattern in RESULT_FILE_PATTERNS):
                old.unlink()
        files = []
        for p in sorted(tmp.iterdir()):
            target = out / p.name
            os.replace(p, target)
            files.append(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.out_dir = out
    result.files = files
    return result


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    if v is None:
        return ""
    return v


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def run_manifest(manifest_path, out_dir, options: PipelineOptions | None = None,
                 progress: ProgressCallback | None = None, cancel=None) -> PipelineResult:
    """Load a study manifest, run the dosimetry and write the contract-2 results to ``out_dir``."""
    _report(progress, 0.0, f"loading study {manifest_path}")
    t0 = time.perf_counter()
    study = load_study(manifest_path)
    images = load_study_images(study)
    t_load = time.perf_counter() - t0
    result_options = options or PipelineOptions()
    result = run_study(study, images, result_options, progress, cancel)
    result.timings_s = {"loading images": t_load, **result.timings_s}
    _report(progress, 0.95, f"writing results to {out_dir}")
    t0 = time.perf_counter()
    write_results(result, out_dir, save_maps=result_options.save_maps)
    result.timings_s["writing results and report"] = time.perf_counter() - t0
    _report(progress, 1.0, "done")
    return result
