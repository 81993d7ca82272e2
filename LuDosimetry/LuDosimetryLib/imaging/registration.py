"""Registration of SPECT/CT time points (and cycles) to a reference scan, with SimpleITK.

Transform convention (the one ``sitk.Resample`` uses): every transform returned here maps a
physical point of the **fixed** (reference) image to the corresponding physical point of the
**moving** image. ``images.resample_to_reference(moving, fixed, result.transform)`` therefore
puts the moving image on the fixed grid.

Methods
-------
``"translation"``  Macsuka et al. 2026: translation only, mean-squares metric, gradient descent (the
    regular-step variant, which halves the step when the direction reverses: with an estimated
    fixed learning rate plain gradient descent either stopped 2-3 mm short or diverged on noisy
    SPECT), on the SPECT images (multi-resolution 4-2-1 with Gaussian smoothing). Mean squares
    compares intensities, so the moving SPECT is first scaled to the fixed SPECT's total counts
    (the total changes between time points by decay and clearance). It cannot follow
    rotations: 1-3° leave 3-9 mm at tumours 10-15 cm from the centre (use a CT, or "local").
``"rigid_ct"``     Euler 3-D (rotation + translation), Mattes mutual information, regular-step
    gradient descent, multi-resolution, on the CT images (resampled to a ≥ 3 mm working grid,
    half-voxel smoothing at full resolution); the transform is applied to the SPECT (same frame
    of reference within a hybrid SPECT/CT acquisition).
``"local"``        rigid (Euler 3-D) in a box around each tumour (:func:`register_local`),
    correlation metric on SPECT, started from the global result.
``"auto"``         rigid_ct if both CTs are given, else translation.
``"none"``         identity.

Start of the optimiser
----------------------
By default (``initialization="search"``) every registration starts from a coarse global search
(:mod:`registration_search`: centres of mass, SPECT hot spots, CT body outline and an exhaustive
FFT cross-correlation translation search within ``search_mm`` per axis); the starts are ranked by
the SPECT correlation they reach, the optimiser (without its coarsest level, which the search
replaces) runs from the best, and from the next ones only if its result is rejected.
``RegistrationResult.start`` names the start that won, ``starts`` the score of each.

Quality check and fallback
--------------------------
After each method the result is checked (:func:`_quality`): the translation magnitude must be
below ``max_translation_mm`` and the rotation below ``max_rotation_deg``, the optimiser must
have produced a finite metric, and the Pearson correlation of fixed vs resampled moving SPECT
(inside the fixed image's body region) must not be worse than without registration (by more
than 0.01). A failed check falls back to the next method in the chain rigid_ct → translation
→ none; each fallback is recorded in ``RegistrationResult.warnings``. If every method fails the
identity is returned with ``quality = "failed"``.

Determinism: the metric is evaluated on a random sample of voxels drawn with a fixed seed
(``SetMetricSamplingPercentage(p, seed)``); results can still differ in the last digits with
the number of threads.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..errors import InputDataError
from . import registration_search as search

log = logging.getLogger(__name__)

METHODS = ("auto", "translation", "rigid_ct", "local", "none")
DEFAULT_SEED = 20250106
# metric samples per level after the coarse search (sized to the image: at most this many voxels;
# 20k give the same pose error against the phantom truth as 50k at 60 % of the CPU, issue 17)
NEAR_SAMPLES = 20_000


@dataclass
class RegistrationResult:
    """Outcome of one registration.

    transform : maps fixed physical points (mm) to moving physical points (sitk.Resample convention).
    method : the method whose transform is returned ("translation", "rigid_ct", "local", "none").
    requested_method : what was asked for ("auto", ...).
    metric_value : final metric value of that method (mean squares of normalised SPECT, or negative
        Mattes MI / correlation; lower is better); NaN for "none".
    translation_mm : displacement T(c) − c (x, y, z, mm) of the fixed image centre c.
    rotation_deg : rotation angles about x, y, z (deg) for rigid transforms, zeros otherwise.
    correlation_before / correlation_after : Pearson correlation of fixed vs moving SPECT in the
        fixed body region, without and with the transform.
    quality : "ok" or "failed".
    warnings : fallbacks and quality-check messages.
    local : per-box results of method "local" (name → RegistrationResult).
    """

    transform: sitk.Transform
    method: str
    requested_method: str
    metric_value: float = float("nan")
    translation_mm: tuple = (0.0, 0.0, 0.0)
    rotation_deg: tuple = (0.0, 0.0, 0.0)
    correlation_before: float = float("nan")
    correlation_after: float = float("nan")
    quality: str = "ok"
    start: str = ""  # the starting pose that won (:mod:`registration_search`), e.g. "spect_cross_correlation"
    metric_name: str = ""  # what ``metric_value`` is, e.g. "Mattes mutual information (CT), negative"
    starts: dict = field(default_factory=dict)  # start name -> SPECT correlation reached from it (the selection score)
    iterations: int = 0
    stop_condition: str = ""
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    local: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.quality == "ok"

    def map_point(self, point_mm) -> tuple:
        """Position in the moving image (mm) of a fixed-image point (mm)."""
        return tuple(self.transform.TransformPoint(tuple(float(v) for v in point_mm)))

    def summary(self) -> str:
        t = ", ".join(f"{v:+.1f}" for v in self.translation_mm)
        r = ", ".join(f"{v:+.1f}" for v in self.rotation_deg)
        return (f"{self.method} ({self.quality}): translation ({t}) mm, rotation ({r})°, "
                f"correlation {self.correlation_before:.3f} → {self.correlation_after:.3f}")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _check_image(img, name: str) -> sitk.Image:
    if not isinstance(img, sitk.Image):
        raise InputDataError(f"{name}: expected a SimpleITK image, got {type(img).__name__}")
    if img.GetDimension() != 3:
        raise InputDataError(f"{name}: a 3-D image is required, got {img.GetDimension()}-D")
    return sitk.Cast(img, sitk.sitkFloat32)


def image_center_mm(img: sitk.Image) -> tuple:
    """Physical centre (mm) of the image grid."""
    return img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in img.GetSize()])


def _euler_angles_deg(tx: sitk.Transform) -> tuple:
    """Rotation angles (deg) of the linear part, as Euler 3-D (ZXY order, ITK's default)."""
    try:
        at = _matrix_of(tx)
    except Exception:  # noqa: BLE001
        return (0.0, 0.0, 0.0)
    if at is None:
        return (0.0, 0.0, 0.0)
    e = sitk.Euler3DTransform()
    try:
        e.SetMatrix(tuple(at[0].ravel()), 1e-4)
    except RuntimeError:
        return (float("nan"),) * 3
    return tuple(math.degrees(a) for a in (e.GetAngleX(), e.GetAngleY(), e.GetAngleZ()))


def _matrix_of(tx: sitk.Transform):
    o = np.zeros(3)
    t0 = np.asarray(tx.TransformPoint(tuple(o)))
    A = np.column_stack([np.asarray(tx.TransformPoint(tuple(e))) - t0 for e in np.eye(3) * 100.0]) / 100.0
    return A, t0


def rotation_angle_deg(tx: sitk.Transform) -> float:
    """Total rotation angle (deg) of an affine transform's linear part (0 for translations)."""
    A, _ = _matrix_of(tx)
    c = (np.trace(A) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def _body_mask(spect: sitk.Image, fraction: float = 0.05) -> np.ndarray:
    a = sitk.GetArrayViewFromImage(spect)
    hi = float(np.percentile(a, 99.9))
    return a > fraction * hi if hi > 0 else np.ones(a.shape, bool)


def _correlation(fixed: sitk.Image, moving: sitk.Image, tx: sitk.Transform, mask: np.ndarray) -> float:
    res = sitk.Resample(moving, fixed, tx, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    a = sitk.GetArrayViewFromImage(fixed)[mask].astype(np.float64)
    b = sitk.GetArrayViewFromImage(res)[mask].astype(np.float64)
    if a.size < 10 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _normalise_to(fixed: sitk.Image, moving: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """Fixed scaled to mean 1 and moving scaled to the same total as fixed, so that mean squares
    compares the spatial distributions, not the total counts (which change with decay and
    clearance between time points)."""
    f = float(sitk.GetArrayViewFromImage(fixed).sum())
    m = float(sitk.GetArrayViewFromImage(moving).sum())
    if f <= 0 or m <= 0:
        raise InputDataError("SPECT image has no positive counts: cannot register")
    scale_f = fixed.GetNumberOfPixels() / f
    return fixed * scale_f, moving * (f / m * scale_f)


def _sampling_fraction(img: sitk.Image, requested: float, max_samples: int = 100_000) -> float:
    """Metric sampling fraction: ``requested`` but at most ``max_samples`` voxels (speed)."""
    return float(min(requested, max(0.01, max_samples / img.GetNumberOfPixels())))


def _working_grid(img: sitk.Image, min_spacing_mm: float) -> sitk.Image:
    """Smooth and resample ``img`` to isotropic voxels of at least ``min_spacing_mm`` (speed;
    CTs of 512×512×N are registered on a ~3 mm grid, enough for sub-voxel SPECT accuracy)."""
    sp = np.asarray(img.GetSpacing(), float)
    target = max(min_spacing_mm, float(sp.max()))
    if np.all(sp >= target - 1e-6):
        return img
    sigma = [max(0.0, (target ** 2 - s ** 2)) ** 0.5 / 2.355 for s in sp]
    sm = sitk.SmoothingRecursiveGaussian(img, sigma) if max(sigma) > 0 else img
    size = [max(2, int(round(n * s / target))) for n, s in zip(img.GetSize(), sp)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing((target,) * 3)
    ref.SetDirection(img.GetDirection())
    # keep the physical extent: first voxel centre moved by half the spacing change
    origin_idx = [(target / s - 1.0) / 2.0 for s in sp]
    ref.SetOrigin(img.TransformContinuousIndexToPhysicalPoint(origin_idx))
    return sitk.Resample(sm, ref, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkLinear, float(np.min(
        sitk.GetArrayViewFromImage(img))), sitk.sitkFloat32)


def _moments_translation(fixed: sitk.Image, moving: sitk.Image, offset: float = 0.0) -> np.ndarray:
    """Centre-of-mass difference (moving − fixed, mm) of (image + offset) clipped at 0."""
    def com(img):
        a = np.clip(sitk.GetArrayViewFromImage(img).astype(np.float64) + offset, 0, None)
        idx = np.indices(a.shape).reshape(3, -1)
        w = a.ravel()
        if w.sum() <= 0:
            return np.asarray(image_center_mm(img))
        c = (idx * w).sum(axis=1) / w.sum()
        return np.asarray(img.TransformContinuousIndexToPhysicalPoint([float(v) for v in c[::-1]]))
    return com(moving) - com(fixed)


def _smoothing_levels(img: sitk.Image, levels: int, final_sigma_voxels: float = 0.0):
    """Shrink factors (…, 4, 2, 1) and Gaussian sigmas (mm): half the shrink factor in voxels,
    and ``final_sigma_voxels`` at full resolution (0.5 for CT/MI: removes the grid-aligned local
    optima that linear interpolation creates in mutual information, ~1 mm errors otherwise)."""
    spacing = max(img.GetSpacing())
    shrink = [2 ** k for k in range(levels - 1, -1, -1)] if isinstance(levels, int) else list(levels)
    sigmas_mm = [spacing * s / 2.0 if s > 1 else spacing * final_sigma_voxels for s in shrink]
    return shrink, sigmas_mm


def _run(R: sitk.ImageRegistrationMethod, fixed, moving):
    R.SetInterpolator(sitk.sitkLinear)
    tx = R.Execute(fixed, moving)
    return tx, R.GetMetricValue(), R.GetOptimizerIteration(), R.GetOptimizerStopConditionDescription()


def _composite_to_single(tx: sitk.Transform) -> sitk.Transform:
    """Flatten a composite of affine transforms to one AffineTransform (or keep a translation)."""
    if isinstance(tx, sitk.CompositeTransform) and tx.GetNumberOfTransforms() == 1:
        inner = tx.GetNthTransform(0)
        return inner.Downcast() if hasattr(inner, "Downcast") else inner
    return tx


# --------------------------------------------------------------------------------------------
# single methods
# --------------------------------------------------------------------------------------------

def _translation(fixed_spect, moving_spect, initial: sitk.Transform | None, sampling: float, seed: int,
                 levels: int, iterations: int):
    f, m = _normalise_to(fixed_spect, moving_spect)
    R = sitk.ImageRegistrationMethod()
    R.SetMetricAsMeanSquares()
    R.SetMetricSamplingStrategy(R.RANDOM)
    R.SetMetricSamplingPercentage(_sampling_fraction(f, sampling), seed)
    # regular-step gradient descent: plain gradient descent with an estimated learning rate either
    # stops early (re-estimated each iteration) or can diverge (estimated once) on noisy SPECT;
    # halving the step on each change of direction is the robust variant of the same method
    R.SetOptimizerAsRegularStepGradientDescent(learningRate=0.5 * max(fixed_spect.GetSpacing()), minStep=0.01,
                                               numberOfIterations=iterations, relaxationFactor=0.6,
                                               gradientMagnitudeTolerance=1e-8)
    R.SetOptimizerScalesFromPhysicalShift()
    shrink, sig = _smoothing_levels(fixed_spect, levels)
    R.SetShrinkFactorsPerLevel(shrink)
    R.SetSmoothingSigmasPerLevel(sig)
    R.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    start = sitk.TranslationTransform(3)
    if initial is not None:
        start.SetOffset(tuple(np.asarray(initial.TransformPoint(image_center_mm(fixed_spect)))
                              - np.asarray(image_center_mm(fixed_spect))))
    R.SetInitialTransform(start, inPlace=False)
    tx, metric, it, stop = _run(R, f, m)
    return _composite_to_single(tx), metric, it, stop


def _rigid(fixed, moving, initial: sitk.Transform | None, metric: str, sampling: float, seed: int, levels: int,
           iterations: int, center=None, fixed_mask: sitk.Image | None = None, learning_rate: float = 2.0,
           max_samples: int = 100_000):
    R = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        R.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    elif metric == "correlation":
        R.SetMetricAsCorrelation()
    else:
        R.SetMetricAsMeanSquares()
    R.SetMetricSamplingStrategy(R.RANDOM)
    R.SetMetricSamplingPercentage(_sampling_fraction(fixed, sampling, max_samples), seed)
    if fixed_mask is not None:
        R.SetMetricFixedMask(fixed_mask)
    # gradients at the sampled points only, not a smoothed whole-image gradient per level (the metric
    # samples ~20k voxels; measured on the demo patient: 25 % less CPU, VOI pose errors <= 0.3 mm)
    R.MetricUseMovingImageGradientFilterOff()
    R.MetricUseFixedImageGradientFilterOff()
    R.SetOptimizerAsRegularStepGradientDescent(learningRate=learning_rate, minStep=1e-3, numberOfIterations=iterations,
                                               relaxationFactor=0.6, gradientMagnitudeTolerance=1e-8)
    R.SetOptimizerScalesFromPhysicalShift()
    shrink, sig = _smoothing_levels(fixed, levels, 0.5 if metric == "mattes" else 0.0)
    R.SetShrinkFactorsPerLevel(shrink)
    R.SetSmoothingSigmasPerLevel(sig)
    R.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    e = sitk.Euler3DTransform()
    e.SetCenter(tuple(center) if center is not None else image_center_mm(fixed))
    if initial is not None:
        A, t0 = _matrix_of(initial)
        c = np.asarray(e.GetCenter())
        try:
            e.SetMatrix(tuple(A.ravel()), 1e-3)
        except RuntimeError:
            pass
        # T(x) = A (x - c) + c + t  must equal initial(x) = A x + t0 at x = c
        e.SetTranslation(tuple(A @ c + t0 - c))
    R.SetInitialTransform(e, inPlace=False)
    tx, metric_value, it, stop = _run(R, fixed, moving)
    return _composite_to_single(tx), metric_value, it, stop


_METRIC_NAMES = {"translation": "mean squares of the count-normalised SPECTs (lower is better)",
                 "rigid_ct": "Mattes mutual information of the CTs, negative (lower is better)",
                 "local": "correlation of the SPECTs in the box, negative (lower is better)"}


def _result_from(tx, method, requested, metric, it, stop, fixed_spect, moving_spect, mask, corr_before, t0):
    c = np.asarray(image_center_mm(fixed_spect))
    disp = tuple(float(v) for v in np.asarray(tx.TransformPoint(tuple(c))) - c)
    rot = _euler_angles_deg(tx) if method not in ("translation", "none") else (0.0, 0.0, 0.0)
    corr_after = _correlation(fixed_spect, moving_spect, tx, mask)
    return RegistrationResult(transform=tx, method=method, requested_method=requested, metric_value=float(metric),
                              translation_mm=disp, rotation_deg=tuple(float(v) for v in rot),
                              correlation_before=corr_before, correlation_after=corr_after, iterations=int(it),
                              stop_condition=str(stop), elapsed_s=time.perf_counter() - t0,
                              metric_name=_METRIC_NAMES.get(method, "none"))


def _quality(res: RegistrationResult, max_translation_mm: float, max_rotation_deg: float,
             correlation_tolerance: float = 0.01) -> list[str]:
    problems = []
    if not np.isfinite(res.metric_value):
        problems.append("metric value is not finite")
    mag = float(np.linalg.norm(res.translation_mm))
    if not mag <= max_translation_mm:
        problems.append(f"translation {mag:.1f} mm exceeds the bound of {max_translation_mm:g} mm")
    try:
        ang = rotation_angle_deg(res.transform)
    except Exception:  # noqa: BLE001
        ang = float("nan")
    if not ang <= max_rotation_deg:
        problems.append(f"rotation {ang:.1f}° exceeds the bound of {max_rotation_deg:g}°")
    if np.isfinite(res.correlation_before) and not (res.correlation_after >= res.correlation_before - correlation_tolerance):
        problems.append(f"SPECT correlation got worse ({res.correlation_before:.3f} → {res.correlation_after:.3f})")
    return problems


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

def register_time_point(fixed_spect: sitk.Image, moving_spect: sitk.Image, fixed_ct: sitk.Image | None = None,
                        moving_ct: sitk.Image | None = None, method: str = "auto",
                        initial_transform: sitk.Transform | None = None, initialization: str = "search",
                        max_translation_mm: float = 60.0, max_rotation_deg: float = 10.0,
                        local_boxes: list | None = None, sampling_percentage: float = 0.25,
                        seed: int = DEFAULT_SEED, levels: int = 3, iterations: int = 200,
                        ct_working_spacing_mm: float = 3.0, search_mm: float = 40.0,
                        n_starts: int = 3) -> RegistrationResult:
    """Register one SPECT(/CT) time point (moving) to the reference time point (fixed).

    Parameters
    ----------
    fixed_spect, moving_spect : SPECT images (Bq/mL or counts; any voxel grid).
    fixed_ct, moving_ct : CT images of the same acquisitions (HU), for ``"rigid_ct"``.
    method : "auto" (rigid_ct if both CTs, else translation), "translation", "rigid_ct",
        "local" (global auto registration, then one rigid registration per box in
        ``local_boxes``) or "none". See the module docstring for each.
    initial_transform : start from this fixed→moving transform (e.g. a cycle registration).
    initialization : "search" (default: coarse global search, :mod:`registration_search` —
        centres of mass, hot spots and an exhaustive cross-correlation translation search within
        ``search_mm`` per axis, scored by one metric comparable between starts; the optimiser
        (without its coarsest level, which the search replaces) runs from the best start, and from
        the next of the ``n_starts`` best distinct starts only if its result is rejected), "identity" (one run from
        the initial transform) or "moments" (centre of mass of SPECT / body of CT).
    max_translation_mm, max_rotation_deg : quality-check bounds (a larger result is a failure).
    local_boxes : for "local": list of ``(name, center_mm, size_mm)`` (center on the fixed image).
    sampling_percentage, seed : random metric sampling (fixed seed → deterministic).
    levels, iterations : multi-resolution levels (shrink 4-2-1 for 3) and iterations per level.
    ct_working_spacing_mm : CTs are smoothed and resampled to at least this isotropic spacing
        before registration (speed; full-resolution CT adds nothing at SPECT resolution).

    Returns
    -------
    :class:`RegistrationResult` (transform maps fixed → moving points; see module docstring for
    the quality check and fallbacks).
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    fixed_spect = _check_image(fixed_spect, "fixed_spect")
    moving_spect = _check_image(moving_spect, "moving_spect")
    has_ct = fixed_ct is not None and moving_ct is not None
    if has_ct:
        fixed_ct = _check_image(fixed_ct, "fixed_ct")
        moving_ct = _check_image(moving_ct, "moving_ct")
    warnings: list[str] = []
    if method == "rigid_ct" and not has_ct:
        warnings.append("rigid_ct requested but a CT is missing: SPECT translation used")
    if method == "local" and not local_boxes:
        raise ValueError("method 'local' needs local_boxes=[(name, center_mm, size_mm), ...]")

    mask = _body_mask(fixed_spect)
    identity = sitk.Transform(3, sitk.sitkIdentity)
    corr_before = _correlation(fixed_spect, moving_spect, initial_transform or identity, mask)

    if method == "none":
        res = _result_from(identity, "none", method, float("nan"), 0, "not registered", fixed_spect, moving_spect,
                           mask, corr_before, t0)
        return res

    init = initial_transform
    starts = [search.Start("initial" if init is not None else "identity", (0.0, 0.0, 0.0))]
    if initialization == "search":
        starts = search.distinct(search.candidate_starts(fixed_spect, moving_spect, fixed_ct if has_ct else None,
                                                         moving_ct if has_ct else None, init, search_mm),
                                 max(1, n_starts))
    elif init is None and initialization == "moments":
        if has_ct:
            d = _moments_translation(fixed_ct, moving_ct, offset=1000.0)
        else:
            d = _moments_translation(fixed_spect, moving_spect)
        starts = [search.Start("centre_of_mass", tuple(float(v) for v in d))]
    elif initialization not in ("identity", "moments"):
        raise ValueError(f"initialization must be 'search', 'identity' or 'moments', got {initialization!r}")

    chain = ["rigid_ct", "translation"] if (method in ("auto", "rigid_ct", "local") and has_ct) else ["translation"]
    result = None
    if chain[0] == "rigid_ct":
        work_fixed_ct = _working_grid(fixed_ct, ct_working_spacing_mm)
        work_moving_ct = _working_grid(moving_ct, ct_working_spacing_mm)
    for m in chain:
        rejected = []
        # the starts best first by a metric comparable between them (registration_search); the
        # optimiser runs from the best one, and from the next ones only if its result is rejected
        for st in starts:
            start_tx = init if (st.name == "initial" and init is not None) else (
                None if st.name == "identity" else st.transform())
            near = initialization == "search" and levels > 2  # the search already did the coarse work
            lev = tuple(2 ** k for k in range(levels - 2, -1, -1)) if near else levels
            try:
                if m == "rigid_ct":
                    tx, metric, it, stop = _rigid(work_fixed_ct, work_moving_ct, start_tx, "mattes", sampling_percentage,
                                                  seed, lev, iterations, center=image_center_mm(fixed_spect),
                                                  learning_rate=1.0 if near else 2.0,
                                                  max_samples=NEAR_SAMPLES if near else 100_000)
                else:
                    tx, metric, it, stop = _translation(fixed_spect, moving_spect, start_tx, sampling_percentage, seed,
                                                        lev, iterations)
            except RuntimeError as exc:
                rejected.append(f"{m} registration from start {st.name} failed "
                                f"({str(exc).strip().splitlines()[-1][:200]})")
                continue
            res = _result_from(tx, m, method, metric, it, stop, fixed_spect, moving_spect, mask, corr_before, t0)
            res.start, res.starts = st.name, {s_.name: s_.score for s_ in starts}
            problems = _quality(res, max_translation_mm, max_rotation_deg)
            if problems:
                rejected.append(f"{m} registration rejected (start {st.name}): " + "; ".join(problems))
                continue
            result = res
            break
        if result is not None:
            if rejected:
                result.warnings.extend(w + "; next start used" for w in rejected)
            break
        warnings.extend(w + "; falling back" for w in rejected)
    if result is None:
        result = _result_from(init or identity, "none", method, float("nan"), 0, "all methods failed", fixed_spect,
                              moving_spect, mask, corr_before, t0)
        result.quality = "failed"
        warnings.append("registration failed with every method: images used "
                        + ("with the initial transform" if init is not None else "unregistered"))
    elif result.method != chain[0] or (method == "rigid_ct" and result.method != "rigid_ct"):
        warnings.append(f"fell back to {result.method}")
    result.requested_method = method
    result.warnings = warnings + result.warnings

    if method == "local":
        for name, center, size in local_boxes:
            lr = register_local(fixed_spect, moving_spect, center, size, initial_transform=result.transform,
                                sampling_percentage=sampling_percentage, seed=seed)
            result.local[name] = lr
            result.warnings.extend(f"local box {name}: {w}" for w in lr.warnings)
    result.elapsed_s = time.perf_counter() - t0
    for w in result.warnings:
        log.info("registration: %s", w)
    return result


def _box_region(img: sitk.Image, center_mm, size_mm) -> sitk.Image:
    if np.isscalar(size_mm):
        size_mm = (float(size_mm),) * 3
    half = np.asarray(size_mm, float) / 2.0
    c = np.asarray(center_mm, float)
    corners = [c + half * np.array(s) for s in np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3)]
    idx = np.array([img.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in corners])
    lo = np.clip(np.floor(idx.min(axis=0)).astype(int), 0, None)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int), np.asarray(img.GetSize()) - 1)
    if np.any(hi - lo < 3):
        raise InputDataError(f"local registration box at {tuple(np.round(c, 1))} mm, size {tuple(size_mm)} mm lies "
                             "(almost) outside the fixed image")
    return sitk.RegionOfInterest(img, [int(v) for v in hi - lo + 1], [int(v) for v in lo])


def register_local(fixed: sitk.Image, moving: sitk.Image, box_center_mm, box_size_mm=80.0,
                   initial_transform: sitk.Transform | None = None, max_deviation_mm: float = 15.0,
                   max_rotation_deg: float = 10.0, sampling_percentage: float = 0.5,
                   seed: int = DEFAULT_SEED, fixed_mask: sitk.Image | None = None) -> RegistrationResult:
    """Rigid (Euler 3-D) registration restricted to a box around a tumour.

    ``box_center_mm`` (x, y, z) on the fixed image, ``box_size_mm`` edge length(s) in mm. The
    metric (correlation, insensitive to the uptake change between time points) is evaluated on
    the fixed image's voxels inside the box (and inside ``fixed_mask``, a uint8 image on the fixed
    grid, if given); rotation is about the box centre. Starts from
    ``initial_transform`` (typically the global registration). Quality check: deviation from the
    initial transform at the box centre ≤ ``max_deviation_mm``, rotation ≤ ``max_rotation_deg``
    and correlation in the box not worse; else the initial transform is kept (``quality`` =
    "failed", with a warning).
    """
    t0 = time.perf_counter()
    fixed = _check_image(fixed, "fixed")
    moving = _check_image(moving, "moving")
    box = _box_region(fixed, box_center_mm, box_size_mm)
    init = initial_transform if initial_transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    box_mask = None
    if fixed_mask is not None:  # metric only near the VOI (neighbours with other kinetics do not pull)
        box_mask = sitk.Resample(fixed_mask, box, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkNearestNeighbor, 0,
                                 sitk.sitkUInt8)
    mask = (sitk.GetArrayViewFromImage(box_mask) > 0 if box_mask is not None
            else np.ones(sitk.GetArrayViewFromImage(box).shape, bool))
    corr_before = _correlation(box, moving, init, mask)
    warnings = []
    try:
        tx, metric, it, stop = _rigid(box, moving, init, "correlation", sampling_percentage, seed, 2, 200,
                                      center=box_center_mm, fixed_mask=box_mask)
        res = _result_from(tx, "local", "local", metric, it, stop, box, moving, mask, corr_before, t0)
        c = np.asarray(box_center_mm, float)
        dev = float(np.linalg.norm(np.asarray(tx.TransformPoint(tuple(c))) - np.asarray(init.TransformPoint(tuple(c)))))
        problems = _quality(res, float("inf"), max_rotation_deg)
        if dev > max_deviation_mm:
            problems.append(f"moves the box centre {dev:.1f} mm away from the initial transform "
                            f"(bound {max_deviation_mm:g} mm)")
    except RuntimeError as exc:
        problems = [f"optimiser error ({str(exc).strip().splitlines()[-1][:200]})"]
        res = None
    if problems:
        warnings.append("local registration rejected: " + "; ".join(problems) + "; global transform kept")
        res = _result_from(init, "none", "local", float("nan"), 0, "rejected", box, moving, mask, corr_before, t0)
        res.quality = "failed"
    c = np.asarray(box_center_mm, float)
    res.translation_mm = tuple(float(v) for v in np.asarray(res.transform.TransformPoint(tuple(c))) - c)
    res.warnings = warnings
    res.elapsed_s = time.perf_counter() - t0
    return res


def register_cycles(reference_cycle1: sitk.Image, reference_other: sitk.Image, ct_cycle1: sitk.Image | None = None,
                    ct_other: sitk.Image | None = None, method: str = "auto", max_translation_mm: float = 150.0,
                    max_rotation_deg: float = 20.0, **kwargs) -> RegistrationResult:
    """Register the reference scan of a later cycle (moving) to the cycle-1 reference (fixed).

    The patient is repositioned between cycles, so shifts are larger: the coarse search of the
    start covers ±60 mm per axis and the quality bounds are wider. The transform maps cycle-1 points to later-cycle points, so VOIs drawn on
    cycle 1 stay on the cycle-1 grid and later-cycle images are resampled onto it with
    ``chain_transforms(cycle_result.transform, time_point_result.transform)`` (the time-point
    registration being within the later cycle, fixed = its reference scan).
    """
    kwargs.setdefault("search_mm", 60.0)
    return register_time_point(reference_cycle1, reference_other, fixed_ct=ct_cycle1, moving_ct=ct_other,
                               method=method, initialization=kwargs.pop("initialization", "search"),
                               max_translation_mm=max_translation_mm, max_rotation_deg=max_rotation_deg, **kwargs)


def chain_transforms(first: sitk.Transform, then: sitk.Transform) -> sitk.Transform:
    """Transform x ↦ then(first(x)) (``first`` applied first). E.g. cycle-1 reference → cycle-c
    reference (``first``) followed by cycle-c reference → cycle-c time point (``then``)."""
    return sitk.CompositeTransform([then, first])


def transform_to_dict(tx: sitk.Transform) -> dict:
    """JSON-friendly description of an affine transform: 4×4 matrix (fixed → moving, mm)."""
    A, t = _matrix_of(tx)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = A, t
    return {"matrix_fixed_to_moving_mm": m.round(6).tolist(), "convention": "LPS mm, fixed point -> moving point"}
