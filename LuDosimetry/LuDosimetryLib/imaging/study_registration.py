"""Registration of a whole study onto the cycle-1 reference scan.

Within the reference cycle each scan is registered to the reference scan; a later cycle is
registered in two stages (its own reference scan to the cycle-1 reference, then its other scans
to its reference) and the transforms are chained. Optional per-tumour "local" refinement in a box
around each tumour. Every scan is then resampled onto the reference grid (activity kept).
This is the one study-level entry point that the pipeline and the Slicer Register step call.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..io import images as image_io
from ..io.study import Study
from ..io.study_images import StudyImages
from ..progress import check_cancel as _check_cancel
from ..progress import report_progress as _report
from . import registration


def reference_index(hours: list[float], reference_hours: float) -> int:
    """Index of the time point closest to ``reference_hours``."""
    return int(np.argmin([abs(h - reference_hours) for h in hours]))


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
                   progress=None, cancel=None, transforms: dict | None = None,
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


def cycle_reference_keys(study: Study, reference_hours: float) -> dict:
    """{cycle: (cycle, i)} of each cycle's reference scan (closest to ``reference_hours``)."""
    return {c.cycle: (c.cycle, reference_index(c.hours, reference_hours)) for c in study.cycles}
