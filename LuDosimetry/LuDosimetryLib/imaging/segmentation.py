"""Tumour segmentation on SPECT: iterative adaptive threshold, fixed threshold, components.

Macsuka et al. 2026 segmented each tumour on the 24 h SPECT "by first enclosing it in a rough oversized
volume that was later used as the starting point for contouring via a semiautomatic adaptive
thresholding method" (Grimes et al., Nucl Med Commun 2012;33:1254). This module implements
that idea:

1. inside the rough ROI take the peak value ``max`` (mean of the hottest ``peak_volume_ml``,
   default 0.5 mL: a single-voxel maximum is biased up by noise) and an initial segment at
   45 % of (max − bg₀) above bg₀, bg₀ being the background just outside the oversized ROI;
2. background ``bg``: median of the voxels in a shell around the current segment, from
   ``background_gap_mm`` to ``background_gap_mm + background_thickness_mm`` outside it (not
   restricted to the ROI; voxels of other hot objects above the current threshold are left
   out), i.e. beyond most of the spill-out of a 12 mm FWHM system;
3. source-to-background ratio ``SBR = mean(segment) / bg`` and segment volume ``V`` (mL);
4. threshold fraction ``f = calibration.fraction(SBR, V)`` and threshold
   ``T = bg + f · (max − bg)``; new segment = ROI voxels ≥ T (all connected components, or
   only the one holding the peak with ``keep="peak_component"``);
5. repeat 2–4 until T changes by less than ``tolerance`` × (max − bg) and the segment no
   longer changes, or ``max_iterations``.

The calibration curve f(SBR, V) is a :class:`ThresholdCalibration`: a model linear in its
coefficients, ``f = a + b / SBR + c / V^(1/3)`` (V in mL), clipped to [f_min, f_max]. It
depends on the camera, reconstruction and voxel size and should be derived for each system
with :func:`calibrate_adaptive_threshold` from phantom spheres of known volume. The default
(:data:`DEFAULT_CALIBRATION`) was derived that way from simulated spheres (12–128 mL, SBR
3–20, Gaussian FWHM 12 mm, 4.8 mm voxels, Poisson noise; see its ``source``); on such spheres
it is nearly flat (f ≈ 0.38–0.40), the peak being the mean of the hottest 0.5 mL.

Masks are numpy bool arrays in the image's ``[z, y, x]`` order. Inputs are never modified.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputDataError
from .pvc import apply_minimum_volume_rule  # noqa: F401  (re-exported: one implementation, in pvc)

_STRUCT = ndimage.generate_binary_structure(3, 1)  # 6-connectivity for the ROI / shell
_COMPONENTS = ndimage.generate_binary_structure(3, 3)  # 26-connectivity for lesion components


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ThresholdCalibration:
    """Threshold fraction model ``f(SBR, V) = a + b / SBR + c / V^(1/3)`` (V in mL), clipped.

    f is the fraction of (max − background) above background at which a tumour is cut:
    ``T = bg + f · (max − bg)``. ``source`` says where the coefficients come from;
    ``rms_volume_error_percent`` is the fit's RMS volume error on its calibration spheres;
    ``volume_range_ml`` / ``sbr_range`` the range of the calibration spheres (segments outside
    it get a warning: the curve is extrapolated there).
    """

    a: float
    b: float
    c: float
    f_min: float = 0.15
    f_max: float = 0.85
    source: str = ""
    rms_volume_error_percent: float | None = None
    volume_range_ml: tuple = (0.0, float("inf"))
    sbr_range: tuple = (0.0, float("inf"))

    def fraction(self, sbr: float, volume_ml: float) -> float:
        """Threshold fraction (0–1) for a source-to-background ratio and a volume (mL)."""
        inv_sbr = 0.0 if not np.isfinite(sbr) or sbr <= 0 else 1.0 / max(float(sbr), 1.0)
        v = max(float(volume_ml), 1e-3)
        f = self.a + self.b * inv_sbr + self.c / v ** (1.0 / 3.0)
        return float(np.clip(f, self.f_min, self.f_max))

    def as_dict(self) -> dict:
        return asdict(self)


#: Default calibration (see module docstring); re-derive for your camera with
#: :func:`calibrate_adaptive_threshold`.
DEFAULT_CALIBRATION = ThresholdCalibration(
    a=0.3791, b=-0.0198, c=0.0448, f_min=0.15, f_max=0.85,
    source=("calibrate_adaptive_threshold on simulated spheres (sphere_phantom.make_sphere_phantom): 48 spheres "
            "12-128 mL, sphere-to-background 3-20, Gaussian FWHM 12 mm, 4.8 mm voxels, Poisson noise at two count "
            "levels (1e5 Bq/mL at 10 cps/MBq and 1e6 Bq/mL at 100 cps/MBq, 1800 s); spheres < 8 mL not used"),
    rms_volume_error_percent=5.0, volume_range_ml=(12.1, 127.5), sbr_range=(2.2, 15.0),
)


def calibration_from_json(path) -> ThresholdCalibration:
    """Read a threshold calibration saved as JSON: the fields of :class:`ThresholdCalibration`
    (``a``, ``b``, ``c`` required; ``f_min``, ``f_max``, ``source``, ... optional), at the top level
    or under a ``"calibration"`` key (as written with the calibration results). Unknown keys are
    ignored. Raises InputDataError naming the file and the field."""
    import json
    from dataclasses import fields
    from pathlib import Path

    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"calibration file {path}: cannot be read as JSON ({exc})") from exc
    if isinstance(values, dict) and isinstance(values.get("calibration"), dict):
        values = values["calibration"]
    if not isinstance(values, dict) or not {"a", "b", "c"} <= set(values):
        raise InputDataError(f"calibration file {path}: needs the numbers a, b and c (f = a + b/SBR + c/V^(1/3))")
    names = {f.name for f in fields(ThresholdCalibration)}
    kept = {k: v for k, v in values.items() if k in names}
    for key in ("a", "b", "c", "f_min", "f_max"):
        if key in kept and (isinstance(kept[key], bool) or not isinstance(kept[key], (int, float))
                            or not math.isfinite(kept[key])):
            raise InputDataError(f"calibration file {path}: field {key} must be a finite number, got {kept[key]!r}")
    for key in ("volume_range_ml", "sbr_range"):
        if key in kept:
            kept[key] = tuple(float("inf") if v is None else float(v) for v in kept[key])
    calibration = ThresholdCalibration(**kept)
    if not 0.0 <= calibration.f_min < calibration.f_max <= 1.0:
        raise InputDataError(f"calibration file {path}: need 0 <= f_min < f_max <= 1, got f_min = "
                             f"{calibration.f_min:g}, f_max = {calibration.f_max:g}")
    return calibration


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

@dataclass
class AdaptiveThresholdResult:
    """Outcome of :func:`adaptive_threshold_segment`.

    mask : bool array [z, y, x] on the image grid.
    threshold_fraction : final f; threshold_value : final T (image units, e.g. Bq/mL).
    peak_value / background : max in the ROI and background median (image units).
    source_to_background : mean(segment) / background (inf for zero background).
    volume_ml : segment volume; n_components : connected components in it.
    iterations, converged : iteration count and whether the stopping rule was met.
    history : per iteration (threshold_fraction, threshold_value, background, sbr, volume_ml).
    """

    mask: np.ndarray
    threshold_fraction: float
    threshold_value: float
    peak_value: float
    background: float
    source_to_background: float
    volume_ml: float
    n_components: int
    iterations: int
    converged: bool
    warnings: list[str] = field(default_factory=list)
    history: list[tuple] = field(default_factory=list)


@dataclass
class Component:
    """One connected component (lesion) of a mask: its own mask, volume (mL), voxel count and
    centroid (index z, y, x)."""

    label: int
    mask: np.ndarray
    volume_ml: float
    n_voxels: int
    centroid_zyx: tuple


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _as_array_and_spacing(image) -> tuple[np.ndarray, tuple]:
    if isinstance(image, sitk.Image):
        if image.GetDimension() != 3:
            raise InputDataError(f"image: a 3-D image is required, got {image.GetDimension()}-D")
        return sitk.GetArrayViewFromImage(image), tuple(float(s) for s in image.GetSpacing())
    raise InputDataError(f"image: expected a SimpleITK image, got {type(image).__name__}")


def _check_mask(mask, shape, name="roi_mask") -> np.ndarray:
    if isinstance(mask, sitk.Image):
        mask = sitk.GetArrayViewFromImage(mask)
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise InputDataError(f"{name}: shape {m.shape} (z, y, x) differs from the image {tuple(shape)}")
    m = m.astype(bool)
    if not m.any():
        raise InputDataError(f"{name}: the ROI is empty")
    return m


def _ball(radius_mm: float, spacing_xyz) -> np.ndarray:
    r = [max(0, int(math.floor(radius_mm / s + 1e-6))) for s in spacing_xyz[::-1]]
    zz, yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    sz, sy, sx = spacing_xyz[::-1]
    return (zz * sz) ** 2 + (yy * sy) ** 2 + (xx * sx) ** 2 <= radius_mm ** 2 + 1e-6


def _dilate(mask: np.ndarray, radius_mm: float, spacing_xyz) -> np.ndarray:
    if radius_mm <= 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=_ball(radius_mm, spacing_xyz))


def _crop_box(roi: np.ndarray, margin_vox) -> tuple:
    idx = np.argwhere(roi)
    lo = np.maximum(idx.min(axis=0) - margin_vox, 0)
    hi = np.minimum(idx.max(axis=0) + margin_vox + 1, roi.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _keep(seg: np.ndarray, arr: np.ndarray, keep: str, min_voxels: int) -> np.ndarray:
    if not seg.any():
        return seg
    lab, n = ndimage.label(seg, structure=_COMPONENTS)
    if n <= 1 and min_voxels <= 1:
        return seg
    if keep == "peak_component":
        peak_idx = np.unravel_index(int(np.argmax(np.where(seg, arr, -np.inf))), seg.shape)
        return lab == lab[peak_idx]
    sizes = np.bincount(lab.ravel())
    ok = np.flatnonzero(sizes >= min_voxels)
    ok = ok[ok > 0]
    if ok.size == 0:  # keep the largest rather than nothing
        ok = np.array([int(np.argmax(sizes[1:])) + 1])
    return np.isin(lab, ok)


def _shell(seg: np.ndarray, gap_mm: float, thickness_mm: float, spacing_xyz) -> np.ndarray:
    """Voxels whose distance (mm, voxel centres) to the segment is in (gap, gap + thickness]."""
    d = ndimage.distance_transform_edt(~seg, sampling=tuple(float(s) for s in spacing_xyz[::-1]))
    return (d > gap_mm) & (d <= gap_mm + thickness_mm)


def _background(arr, seg, gap_mm, thickness_mm, spacing, threshold, statistic):
    shell = _shell(seg, gap_mm, thickness_mm, spacing)
    vals = arr[shell]
    if vals.size == 0:
        return None
    cool = vals[vals < threshold] if np.isfinite(threshold) else vals  # other hot objects left out
    vals = cool if cool.size >= max(10, vals.size // 4) else vals
    return float(np.median(vals) if statistic == "median" else np.mean(vals))


def _prepare(arr: np.ndarray, spacing_xyz, smoothing_fwhm_mm: float) -> np.ndarray:
    """Float64 copy of the cropped image, Gaussian-smoothed with ``smoothing_fwhm_mm`` (0 = none)."""
    a = np.asarray(arr, dtype=np.float64)
    if smoothing_fwhm_mm and smoothing_fwhm_mm > 0:
        sigma = [smoothing_fwhm_mm / 2.3548 / s for s in spacing_xyz[::-1]]
        a = ndimage.gaussian_filter(a, sigma, mode="nearest")
    return a


def _peak(arr: np.ndarray, roi: np.ndarray, voxel_ml: float, peak_volume_ml: float) -> float:
    """Peak value in the ROI: the maximum (``peak_volume_ml`` = 0) or the mean of the hottest
    voxels making up ``peak_volume_ml`` (less biased by noise than a single-voxel maximum)."""
    vals = arr[roi]
    n = int(round(peak_volume_ml / voxel_ml)) if peak_volume_ml > 0 else 1
    if n <= 1:
        return float(vals.max())
    n = min(n, vals.size)
    return float(np.partition(vals, vals.size - n)[vals.size - n:].mean())


def _threshold_segment(arr, roi, peak, f, bg, keep, min_voxels):
    t = bg + f * (peak - bg)
    return _keep(roi & (arr >= t), arr, keep, min_voxels), t


# --------------------------------------------------------------------------------------------
# segmentation
# --------------------------------------------------------------------------------------------

def adaptive_threshold_segment(image: sitk.Image, roi_mask, calibration: ThresholdCalibration | None = None,
                               max_iterations: int = 20, tolerance: float = 0.002, initial_fraction: float = 0.45,
                               background_gap_mm: float = 10.0, background_thickness_mm: float = 10.0,
                               background_statistic: str = "median", keep: str = "all",
                               min_component_volume_ml: float = 0.5, peak_volume_ml: float = 0.5,
                               smoothing_fwhm_mm: float = 0.0) -> AdaptiveThresholdResult:
    """Iterative adaptive-threshold segmentation of the hot object(s) inside a rough ROI.

    Parameters
    ----------
    image : SPECT (Bq/mL, counts or Gy/h: any unit proportional to activity).
    roi_mask : bool array [z, y, x] (or a SimpleITK mask on the same grid): rough, oversized ROI.
    calibration : threshold-fraction curve f(SBR, V); default :data:`DEFAULT_CALIBRATION`.
    max_iterations, tolerance : stop when the threshold moves by less than ``tolerance`` ×
        (max − bg) and the segment is unchanged.
    initial_fraction : fraction of max of the first segment (background 0 at start).
    background_gap_mm, background_thickness_mm : background shell geometry (see module doc).
    background_statistic : "median" (default, robust to nearby hot organs) or "mean".
    keep : "all" components above threshold in the ROI (diffuse disease is one deposit, Macsuka et al. 2026)
        or "peak_component" (only the component holding the peak).
    min_component_volume_ml : with keep="all", components smaller than this (noise specks) are
        dropped (the largest is always kept).

    Returns
    -------
    :class:`AdaptiveThresholdResult`; ``warnings`` tell when it did not converge, when the
    segment touches the ROI border (ROI too tight) or when the SBR is low (< 2).
    """
    arr_full, spacing = _as_array_and_spacing(image)
    roi_full = _check_mask(roi_mask, arr_full.shape)
    if keep not in ("all", "peak_component"):
        raise ValueError(f"keep must be 'all' or 'peak_component', got {keep!r}")
    if background_statistic not in ("median", "mean"):
        raise ValueError(f"background_statistic must be 'median' or 'mean', got {background_statistic!r}")
    cal = calibration or DEFAULT_CALIBRATION
    voxel_ml = float(np.prod(spacing)) / 1000.0
    margin = [int(math.ceil((background_gap_mm + background_thickness_mm) / s)) + 2 for s in spacing[::-1]]
    box = _crop_box(roi_full, margin)
    arr = _prepare(arr_full[box], spacing, smoothing_fwhm_mm)
    roi = roi_full[box]
    min_voxels = max(1, int(round(min_component_volume_ml / voxel_ml))) if keep == "all" else 1
    warnings: list[str] = []
    if not np.all(np.isfinite(arr[roi])):
        raise InputDataError("image: NaN or infinite voxels inside the ROI")
    peak = _peak(arr, roi, voxel_ml, peak_volume_ml)
    if peak <= 0:
        raise InputDataError("image: no positive value inside the ROI (nothing to segment)")

    # initial background: the rough ROI is oversized, so a shell just outside it is background
    b0 = _background(arr, roi, 0.0, background_thickness_mm, spacing, float("inf"), background_statistic)
    bg = min(b0, peak) if b0 is not None else 0.0
    f = float(initial_fraction)
    seg, t = _threshold_segment(arr, roi, peak, f, bg, keep, min_voxels)
    history = []
    converged = False
    it = 0
    sbr = float("inf")
    for it in range(1, max_iterations + 1):
        b = _background(arr, seg, background_gap_mm, background_thickness_mm, spacing, t, background_statistic)
        if b is None:
            warnings.append("no background voxels around the segment: background taken as 0")
            b = 0.0
        bg = min(b, peak)
        mean_in = float(arr[seg].mean())
        sbr = mean_in / bg if bg > 0 else float("inf")
        vol = float(seg.sum()) * voxel_ml
        f = cal.fraction(sbr, vol)
        new_seg, new_t = _threshold_segment(arr, roi, peak, f, bg, keep, min_voxels)
        history.append((f, new_t, bg, sbr, float(new_seg.sum()) * voxel_ml))
        moved = abs(new_t - t) / max(peak - bg, 1e-12)
        same = np.array_equal(new_seg, seg)
        seg, t = new_seg, new_t
        if moved < tolerance and same:
            converged = True
            break
        if not seg.any():
            break
    if not converged:
        warnings.append(f"adaptive threshold did not converge in {max_iterations} iterations "
                        f"(last threshold fraction {f:.3f}); result of the last iteration used")
    if seg.any() and (seg & ~ndimage.binary_erosion(roi, structure=_STRUCT)).any():
        warnings.append("segment touches the ROI border: the ROI may be too tight (draw it larger than the tumour)")
    vol_final = float(seg.sum()) * voxel_ml
    if seg.any() and not (0.5 * cal.volume_range_ml[0] <= vol_final <= 2.0 * cal.volume_range_ml[1]):
        warnings.append(f"segment volume {vol_final:.1f} mL is outside the calibrated range "
                        f"{cal.volume_range_ml[0]:.1f}-{cal.volume_range_ml[1]:.1f} mL: threshold extrapolated")
    if np.isfinite(sbr) and sbr < 2.0:
        warnings.append(f"low source-to-background ratio ({sbr:.2f}): the threshold is unreliable")
    mask = np.zeros(arr_full.shape, bool)
    mask[box] = seg
    n_comp = int(ndimage.label(seg, structure=_COMPONENTS)[1]) if seg.any() else 0
    return AdaptiveThresholdResult(mask=mask, threshold_fraction=float(f), threshold_value=float(t),
                                   peak_value=peak, background=float(bg), source_to_background=float(sbr),
                                   volume_ml=float(seg.sum()) * voxel_ml, n_components=n_comp, iterations=it,
                                   converged=converged, warnings=warnings, history=history)


def fixed_threshold_segment(image: sitk.Image, roi_mask, fraction_of_max: float = 0.42,
                            keep: str = "all") -> np.ndarray:
    """ROI voxels ≥ ``fraction_of_max`` × max(ROI) (no background subtraction); bool [z, y, x]."""
    arr, _ = _as_array_and_spacing(image)
    roi = _check_mask(roi_mask, arr.shape)
    if not 0.0 < float(fraction_of_max) < 1.0:
        raise InputDataError(f"fraction_of_max must be between 0 and 1, got {fraction_of_max!r}")
    peak = float(np.max(arr[roi]))
    seg = roi & (np.asarray(arr) >= fraction_of_max * peak)
    return _keep(seg, np.asarray(arr), keep, 1) if keep == "peak_component" else seg


def split_components(mask, image_or_spacing, min_volume_ml: float = 0.0) -> list[Component]:
    """Connected components (26-connectivity) of a mask, largest first.

    ``image_or_spacing`` gives the voxel size (a SimpleITK image or (x, y, z) spacing in mm).
    Components below ``min_volume_ml`` are left out (use :func:`apply_minimum_volume_rule` to
    list excluded lesions with their volumes instead)."""
    spacing = image_or_spacing.GetSpacing() if isinstance(image_or_spacing, sitk.Image) else image_or_spacing
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    m = np.asarray(mask, dtype=bool)
    lab, n = ndimage.label(m, structure=_COMPONENTS)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    centroids = ndimage.center_of_mass(m, lab, range(1, n + 1))
    comps = [Component(label=i + 1, mask=lab == i + 1, volume_ml=float(sizes[i]) * voxel_ml, n_voxels=int(sizes[i]),
                       centroid_zyx=tuple(float(c) for c in centroids[i]))
             for i in range(n) if sizes[i] * voxel_ml >= min_volume_ml]
    comps.sort(key=lambda c: -c.n_voxels)
    return comps


def component_volume_rule(components: list[Component], min_volume_ml: float = 10.0, prefix: str = "lesion"):
    """Macsuka et al. 2026 rule on connected components: ``pvc.apply_minimum_volume_rule`` on
    ``{f"{prefix}_{k}": volume_ml}`` (k = 1 for the largest). Returns its VolumeRuleResult."""
    return apply_minimum_volume_rule({f"{prefix}_{k}": c.volume_ml for k, c in enumerate(components, start=1)},
                                     min_volume_ml=min_volume_ml)


# --------------------------------------------------------------------------------------------
# calibration from phantom spheres
# --------------------------------------------------------------------------------------------

def _volume_for_fraction(arr, roi, peak, f, gap_mm, thick_mm, spacing, statistic, keep, min_voxels, voxel_ml,
                         n_bg_iter=4):
    """Segment at a fixed fraction f with a self-consistent background; (volume, sbr, seg)."""
    b0 = _background(arr, roi, 0.0, thick_mm, spacing, float("inf"), statistic)
    bg = min(b0, peak) if b0 is not None else 0.0
    seg, t = _threshold_segment(arr, roi, peak, f, bg, keep, min_voxels)
    for _ in range(n_bg_iter):
        if not seg.any():
            break
        b = _background(arr, seg, gap_mm, thick_mm, spacing, t, statistic)
        bg = min(b if b is not None else 0.0, peak)
        new_seg, t = _threshold_segment(arr, roi, peak, f, bg, keep, min_voxels)
        if np.array_equal(new_seg, seg):
            break
        seg = new_seg
    sbr = float(arr[seg].mean()) / bg if seg.any() and bg > 0 else float("inf")
    return float(seg.sum()) * voxel_ml, sbr, seg


def optimal_fraction(image: sitk.Image, truth_mask, roi_mask=None, roi_margin_mm: float = 15.0,
                     background_gap_mm: float = 10.0, background_thickness_mm: float = 10.0,
                     background_statistic: str = "median", keep: str = "peak_component",
                     peak_volume_ml: float = 0.5, smoothing_fwhm_mm: float = 0.0) -> dict:
    """For one phantom sphere: the threshold fraction whose segment has the true volume.

    Returns ``{"fraction", "sbr", "volume_ml"}`` (volume of the truth mask). The ROI defaults to
    the truth mask dilated by ``roi_margin_mm``. Background and SBR are measured as
    :func:`adaptive_threshold_segment` measures them."""
    arr_full, spacing = _as_array_and_spacing(image)
    truth = _check_mask(truth_mask, arr_full.shape, "truth mask")
    roi_full = _check_mask(roi_mask, arr_full.shape) if roi_mask is not None else _dilate(truth, roi_margin_mm, spacing)
    margin = [int(math.ceil((background_gap_mm + background_thickness_mm) / s)) + 2 for s in spacing[::-1]]
    box = _crop_box(roi_full, margin)
    arr = _prepare(arr_full[box], spacing, smoothing_fwhm_mm)
    roi = roi_full[box]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    v_true = float(truth.sum()) * voxel_ml
    peak = _peak(arr, roi, voxel_ml, peak_volume_ml)
    fs = np.arange(0.16, 0.801, 0.02)
    vols, sbrs = [], []
    for f in fs:
        v, s, _ = _volume_for_fraction(arr, roi, peak, f, background_gap_mm, background_thickness_mm, spacing,
                                       background_statistic, keep, 1, voxel_ml)
        vols.append(v)
        sbrs.append(s)
    vols = np.asarray(vols)
    # volume decreases with f: find the crossing of the true volume
    above = np.flatnonzero(vols >= v_true)
    if above.size == 0:
        k = 0
        f_opt = fs[0]
    elif above[-1] == len(fs) - 1:
        k = len(fs) - 1
        f_opt = fs[-1]
    else:
        k = above[-1]
        v0, v1 = vols[k], vols[k + 1]
        w = (v0 - v_true) / (v0 - v1) if v0 != v1 else 0.0
        f_opt = fs[k] + w * (fs[k + 1] - fs[k])
    return {"fraction": float(f_opt), "sbr": float(sbrs[k]), "volume_ml": v_true}


def fit_threshold_calibration(points: list[dict], f_min: float = 0.15, f_max: float = 0.85,
                              source: str = "") -> ThresholdCalibration:
    """Least-squares fit of ``f = a + b/SBR + c/V^(1/3)`` to ``[{"fraction", "sbr", "volume_ml"}, ...]``."""
    if len(points) < 3:
        raise InputDataError(f"calibration needs at least 3 spheres, got {len(points)}")
    X = np.array([[1.0, 0.0 if not np.isfinite(p["sbr"]) else 1.0 / max(p["sbr"], 1.0),
                   1.0 / p["volume_ml"] ** (1.0 / 3.0)] for p in points])
    y = np.array([p["fraction"] for p in points])
    if np.linalg.matrix_rank(X) < 3:
        # one SBR only (or one volume only): fit without that term
        cols = [0, 2] if np.ptp(X[:, 1]) < 1e-9 else [0, 1]
        coef_sub, *_ = np.linalg.lstsq(X[:, cols], y, rcond=None)
        coef = np.zeros(3)
        coef[cols] = coef_sub
    else:
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return ThresholdCalibration(a=float(coef[0]), b=float(coef[1]), c=float(coef[2]), f_min=f_min, f_max=f_max,
                                source=source)


def calibrate_adaptive_threshold(phantom_images, truth_masks, roi_masks=None, roi_margin_mm: float = 15.0,
                                 min_volume_ml: float = 8.0, source: str = "", **segment_kwargs) -> ThresholdCalibration:
    """Derive a :class:`ThresholdCalibration` from phantom spheres of known volume.

    Parameters
    ----------
    phantom_images : a SimpleITK image or a list of them (e.g. the same spheres at several SBRs).
    truth_masks : per image, a list of bool masks [z, y, x] (one per sphere, true extent).
    roi_masks : optional ROIs per sphere (default: truth dilated by ``roi_margin_mm``).
    min_volume_ml : spheres smaller than this are not used. Default 8 mL: the curve is meant for
        tumours of ≥ 10 mL (Macsuka et al. 2026's rule); at 4.8 mm voxels the optimal fraction of smaller
        spheres (< 80 voxels) is dominated by voxelisation and, fitted together, tilts the curve
        and costs accuracy at 10-20 mL. Lower it (with spheres of those sizes) for small lesions.
    **segment_kwargs : options of :func:`adaptive_threshold_segment` used for the calibration and
        to be used with the result (background shell, statistic, peak volume, smoothing).

    For every sphere the optimal fraction (segment volume = true volume) is found with the same
    background/SBR measurement as the segmentation, then ``f = a + b/SBR + c/V^(1/3)`` is fitted.
    The RMS volume error of :func:`adaptive_threshold_segment` with the fitted curve on the
    calibration spheres is stored in ``rms_volume_error_percent``.
    """
    if isinstance(phantom_images, sitk.Image):
        phantom_images, truth_masks = [phantom_images], [truth_masks]
        roi_masks = [roi_masks] if roi_masks is not None else None
    if len(phantom_images) != len(truth_masks):
        raise InputDataError(f"{len(phantom_images)} phantom images but {len(truth_masks)} lists of truth masks")
    gap = segment_kwargs.get("background_gap_mm", 10.0)
    thick = segment_kwargs.get("background_thickness_mm", 10.0)
    stat = segment_kwargs.get("background_statistic", "median")
    smooth = segment_kwargs.get("smoothing_fwhm_mm", 0.0)
    peak_ml = segment_kwargs.get("peak_volume_ml", 0.5)
    points, cases = [], []
    for i, (img, masks) in enumerate(zip(phantom_images, truth_masks)):
        voxel_ml = float(np.prod(img.GetSpacing())) / 1000.0
        for j, m in enumerate(masks):
            if float(np.asarray(m).sum()) * voxel_ml < min_volume_ml:
                continue
            roi = roi_masks[i][j] if roi_masks is not None else None
            p = optimal_fraction(img, m, roi, roi_margin_mm, gap, thick, stat, peak_volume_ml=peak_ml,
                                 smoothing_fwhm_mm=smooth)
            points.append(p)
            cases.append((img, m, roi))
    if not source:
        source = f"calibrate_adaptive_threshold: {len(points)} spheres, " \
                 f"{min(p['volume_ml'] for p in points):.1f}-{max(p['volume_ml'] for p in points):.1f} mL"
    cal = fit_threshold_calibration(points, source=source)
    errs = []
    for img, m, roi in cases:
        arr, spacing = _as_array_and_spacing(img)
        roi = roi if roi is not None else _dilate(np.asarray(m, bool), roi_margin_mm, spacing)
        res = adaptive_threshold_segment(img, roi, cal, **segment_kwargs)
        v_true = float(np.asarray(m).sum()) * float(np.prod(spacing)) / 1000.0
        errs.append(100.0 * (res.volume_ml - v_true) / v_true)
    rms = float(np.sqrt(np.mean(np.square(errs)))) if errs else None
    sbrs = [p["sbr"] for p in points]
    return ThresholdCalibration(a=cal.a, b=cal.b, c=cal.c, f_min=cal.f_min, f_max=cal.f_max, source=cal.source,
                                rms_volume_error_percent=rms,
                                volume_range_ml=(min(p["volume_ml"] for p in points), max(p["volume_ml"] for p in points)),
                                sbr_range=(min(sbrs), max(sbrs)))
