"""Verification of a registration on the SPECT, VOI by VOI (issue 10).

A CT-to-CT registration can converge several millimetres off and still report an ordinary metric
value; every VOI then reads too little activity. After the registration of a scan, each VOI is
checked on the SPECT itself (per-lesion adjustment of the propagated VOIs, as in Hebert et al.,
J Nucl Med 2024, done here as an automatic check): in a box around the VOI (its extent plus a
margin; the metric only within about one FWHM of the VOI, so that neighbours with other kinetics
do not pull) the registered moving SPECT is registered once more to the reference SPECT by a
translation only (correlation metric, so the uptake change between scans does not matter;
SimpleITK regular-step gradient descent, at most 8000 sampled voxels). The length
of that translation is the VOI's **residual shift** (mm). A residual above the threshold (2 mm by
default, ``PipelineOptions.registration_check_mm``) triggers a local rigid refinement in the same
box (:func:`registration.register_local`, started from the corrected pose); the refined pose is
checked again. When most VOIs of a scan are off the same way (median residual vector above half
the threshold, e.g. a CT with no structure along z), the scan's transform is first corrected as a
whole by that median shift and every VOI checked again. A VOI whose residual cannot be measured or
stays above the threshold fails the check and is reported by name (scan, VOI, mm).

The box SPECT correlation before (images as acquired) and after (with the VOI's final transform)
is recorded per VOI, the body-region correlation per scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..errors import InputDataError
from . import registration
from .registration_search import spect_score

DEFAULT_THRESHOLD_MM = 2.0


@dataclass
class VoiCheck:
    """The SPECT check of one VOI in one scan (mm; correlations are Pearson r in the VOI's box)."""

    voi: str
    residual_mm: float  # residual SPECT shift with the scan's registration
    residual_after_mm: float  # with the VOI's final transform (== residual_mm when not refined)
    correlation_before: float  # box correlation, images as acquired (no registration)
    correlation_after: float  # box correlation with the VOI's final transform
    refined: bool = False
    passed: bool = True
    note: str = ""
    transform: sitk.Transform | None = field(default=None, repr=False)  # refined transform (None: scan's kept)

    def as_dict(self) -> dict:
        return {"residual_mm": _num(self.residual_mm), "residual_after_refinement_mm": _num(self.residual_after_mm),
                "refined": self.refined, "passed": self.passed,
                "spect_correlation_before": _num(self.correlation_before),
                "spect_correlation_after": _num(self.correlation_after), "note": self.note}


@dataclass
class ScanCheck:
    """The SPECT check of one scan: per VOI, and the body-region correlation before/after."""

    threshold_mm: float
    vois: dict = field(default_factory=dict)  # VOI name -> VoiCheck
    correlation_before: float = float("nan")
    correlation_after: float = float("nan")
    correction_mm: tuple | None = None  # scan-level SPECT translation correction (x, y, z mm), if applied
    corrected_transform: sitk.Transform | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        """"check_failed" if a VOI failed, "refined" if a VOI or the whole scan was refined, else "ok"."""
        if any(not v.passed for v in self.vois.values()):
            return "check_failed"
        return "refined" if self.correction_mm is not None or any(v.refined for v in self.vois.values()) else "ok"


def _num(v):
    return round(float(v), 4) if v is not None and np.isfinite(v) else None


def voi_box(mask: np.ndarray, reference: sitk.Image, margin_mm: float) -> tuple:
    """(centre_mm, size_mm) of the box around ``mask`` [z, y, x] on ``reference`` plus ``margin_mm`` per side."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0)[::-1], idx.max(axis=0)[::-1]  # x, y, z
    centre = reference.TransformContinuousIndexToPhysicalPoint(tuple(float(c) for c in (lo + hi) / 2.0))
    size = (hi - lo + 1) * np.asarray(reference.GetSpacing()) + 2.0 * margin_mm
    return tuple(centre), tuple(float(s) for s in size)


def near_mask(mask: np.ndarray, reference: sitk.Image, margin_mm: float) -> sitk.Image:
    """``mask`` dilated by ``margin_mm`` (about one SPECT FWHM: the VOI's blurred edge, where its
    position shows), as a uint8 image on ``reference``'s grid: where the check's metric is evaluated."""
    from scipy import ndimage

    sp = np.asarray(reference.GetSpacing())[::-1]
    r = np.ceil(margin_mm / sp).astype(int)
    zz, yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    ball = (zz * sp[0]) ** 2 + (yy * sp[1]) ** 2 + (xx * sp[2]) ** 2 <= margin_mm ** 2
    img = sitk.GetImageFromArray(ndimage.binary_dilation(mask, structure=ball).astype(np.uint8))
    img.CopyInformation(reference)
    return img


def _crop_mask(mask_img: sitk.Image | None, box: sitk.Image) -> sitk.Image | None:
    if mask_img is None:
        return None
    return sitk.Resample(mask_img, box, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)


def residual_shift_mm(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, centre_mm, size_mm,
                      mask: sitk.Image | None = None, seed: int = registration.DEFAULT_SEED,
                      max_samples: int = 8000) -> np.ndarray:
    """Translation d (mm, x y z) that best aligns ``moving`` mapped by ``transform`` with ``fixed``
    inside the box (and inside ``mask``, see :func:`near_mask`), correlation metric: the SPECT
    pose error of ``transform`` there. Raises InputDataError if the box is outside the image,
    RuntimeError if the optimiser fails."""
    box = registration._box_region(fixed, centre_mm, size_mm)
    box_mask = _crop_mask(mask, box)
    R = sitk.ImageRegistrationMethod()
    R.SetMetricAsCorrelation()
    # gradients at the sampled points only: a gradient image of the whole moving SPECT per call is the slow part
    R.MetricUseMovingImageGradientFilterOff()
    R.MetricUseFixedImageGradientFilterOff()
    n = int(sitk.GetArrayViewFromImage(box_mask).sum()) if box_mask is not None else box.GetNumberOfPixels()
    if box_mask is not None:
        R.SetMetricFixedMask(box_mask)
    R.SetMetricSamplingStrategy(R.RANDOM)
    R.SetMetricSamplingPercentage(min(1.0, max_samples / max(n, 1)), seed)
    spacing = max(box.GetSpacing())
    R.SetOptimizerAsRegularStepGradientDescent(learningRate=spacing, minStep=0.02, numberOfIterations=60,
                                               relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    R.SetOptimizerScalesFromPhysicalShift()
    R.SetInterpolator(sitk.sitkLinear)
    R.SetMovingInitialTransform(transform)
    shift = sitk.TranslationTransform(3)
    R.SetInitialTransform(shift, inPlace=True)
    R.Execute(box, moving)
    return np.asarray(shift.GetOffset(), float)


def _box_correlation(fixed, moving, transform, centre_mm, size_mm, mask: sitk.Image | None = None) -> float:
    box = registration._box_region(fixed, centre_mm, size_mm)
    box_mask = _crop_mask(mask, box)
    m = (sitk.GetArrayViewFromImage(box_mask) > 0 if box_mask is not None
         else np.ones(sitk.GetArrayViewFromImage(box).shape, bool))
    return spect_score(box, moving, transform, m)


def _shifted(transform: sitk.Transform, d) -> sitk.Transform:
    """x -> transform(x + d)."""
    return sitk.CompositeTransform([transform, sitk.TranslationTransform(3, tuple(float(v) for v in d))])


def check_voi(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, name: str, centre_mm, size_mm,
              threshold_mm: float = DEFAULT_THRESHOLD_MM, refine: bool = True,
              mask: sitk.Image | None = None, shift_mm=None) -> VoiCheck:
    """Check (and where needed refine) ``transform`` (fixed -> moving) at one VOI's box (metric
    inside ``mask`` if given, see :func:`near_mask`); see the module docstring. ``shift_mm``: the
    residual shift if already measured for this transform."""
    identity = sitk.Transform(3, sitk.sitkIdentity)
    try:
        before = _box_correlation(fixed, moving, identity, centre_mm, size_mm, mask)
        d = (np.asarray(shift_mm, float) if shift_mm is not None
             else residual_shift_mm(fixed, moving, transform, centre_mm, size_mm, mask))
    except (RuntimeError, InputDataError) as exc:
        msg = str(exc).strip().splitlines()[-1][:200]
        return VoiCheck(name, float("nan"), float("nan"), float("nan"), float("nan"), passed=False,
                        note=f"residual could not be measured ({msg})")
    residual = float(np.linalg.norm(d))
    after = _box_correlation(fixed, moving, transform, centre_mm, size_mm, mask)
    chk = VoiCheck(name, residual, residual, before, after)
    if not np.isfinite(residual) or not np.isfinite(after):
        chk.passed, chk.note = False, "the SPECT in the box has no contrast: residual cannot be measured"
        return chk
    if residual <= threshold_mm:
        return chk
    if not refine:
        chk.passed, chk.note = False, "residual above the threshold; refinement not applied (registration 'none')"
        return chk
    start = _shifted(transform, d)
    local = registration.register_local(fixed, moving, centre_mm, size_mm, initial_transform=start,
                                        max_deviation_mm=10.0, max_rotation_deg=10.0, fixed_mask=mask)
    candidates = ([(local.transform, "local rigid refinement in the VOI box")] if local.ok else []) + \
        [(start, "local translation refinement in the VOI box")]
    for tx, what in candidates:
        try:
            d2 = residual_shift_mm(fixed, moving, tx, centre_mm, size_mm, mask)
        except (RuntimeError, InputDataError):
            continue
        if float(np.linalg.norm(d2)) <= threshold_mm:
            chk.refined, chk.transform = True, tx
            chk.residual_after_mm = float(np.linalg.norm(d2))
            chk.correlation_after = _box_correlation(fixed, moving, tx, centre_mm, size_mm, mask)
            chk.note = what + ("" if local.ok else f" (rigid rejected: {'; '.join(local.warnings)})")
            return chk
    chk.passed = False
    chk.note = "local refinement did not bring the residual below the threshold" + (
        "" if local.ok else f" ({'; '.join(local.warnings)})")
    return chk


def check_scan(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, boxes: list,
               threshold_mm: float = DEFAULT_THRESHOLD_MM, refine: bool = True,
               body_mask: np.ndarray | None = None) -> ScanCheck:
    """:func:`check_voi` for every ``(name, centre_mm, size_mm[, mask[, transform]])`` in ``boxes``
    (``mask``: :func:`near_mask`; a fifth element replaces ``transform`` for that VOI, e.g. its
    "local" registration)."""
    out = ScanCheck(threshold_mm=threshold_mm)
    if body_mask is None:
        a = sitk.GetArrayViewFromImage(fixed)
        hi = float(np.percentile(a, 99.9))
        body_mask = a > 0.05 * hi if hi > 0 else np.ones(a.shape, bool)
    out.correlation_before = spect_score(fixed, moving, sitk.Transform(3, sitk.sitkIdentity), body_mask)
    shifts = {}  # first pass: the residual shift of every VOI under the scan's transform
    for box in boxes:
        name, centre, size = box[:3]
        mask = box[3] if len(box) > 3 else None
        tx = box[4] if len(box) > 4 and box[4] is not None else transform
        try:
            shifts[name] = residual_shift_mm(fixed, moving, tx, centre, size, mask)
        except (RuntimeError, InputDataError):
            shifts[name] = None
    common = [d for b, d in zip(boxes, shifts.values()) if d is not None and not (len(b) > 4 and b[4] is not None)]
    first = {}
    if refine and len(common) >= 3:
        m = np.median(np.asarray(common), axis=0)
        # most VOIs off the same way: the scan's registration is off (e.g. a CT without structure along z);
        # correct it as a whole before any VOI is refined on its own
        if np.linalg.norm(m) > threshold_mm / 2.0 and sum(np.linalg.norm(d - m) < np.linalg.norm(m)
                                                          for d in common) > len(common) / 2:
            out.correction_mm = tuple(float(v) for v in m)
            out.corrected_transform = _shifted(transform, m)
            transform = out.corrected_transform
            first = {n: (float(np.linalg.norm(d)) if d is not None else float("nan")) for n, d in shifts.items()}
            shifts = {}
    out.correlation_after = spect_score(fixed, moving, transform, body_mask)
    for box in boxes:
        name, centre, size = box[:3]
        mask = box[3] if len(box) > 3 else None
        tx = box[4] if len(box) > 4 and box[4] is not None else transform
        out.vois[name] = check_voi(fixed, moving, tx, name, centre, size, threshold_mm, refine, mask,
                                   shift_mm=shifts.get(name))
        if name in first:  # residual under the scan's own registration, before the scan-level correction
            out.vois[name].residual_mm = first[name]
            out.vois[name].note = (out.vois[name].note + "; " if out.vois[name].note else "") + \
                "scan-level SPECT correction applied"
    return out
