"""Coarse global search for the starting pose of a registration (issue 10).

One local descent from one start converges to the nearest optimum; on a study where the patient
was repositioned by 1-3 cm between cycles, or on a CT with little structure along some axis (a
uniform body along z), that optimum can be several millimetres off. Before SimpleITK's
multi-resolution optimiser runs, this module proposes several starting translations
(fixed -> moving offset, mm):

``initial`` / ``identity``   the caller's initial transform, or none.
``spect_centre_of_mass``     centre-of-mass difference of the SPECTs.
``ct_body_centre_of_mass``   centre-of-mass difference of the CT body outlines (HU > -500).
``spect_hot_spots``          centre-of-mass difference of the hottest SPECT voxels (> 30 % of the
                             99.9th percentile): kidneys, spleen and tumours.
``spect_cross_correlation``  the best of an exhaustive search of every translation within
                             ``search_mm`` per axis (FFT cross-correlation of the mean-subtracted
                             SPECTs on a coarse grid, :func:`scipy.signal.correlate`).
``ct_cross_correlation``     the same on the CTs.

Every start is scored with one metric that is comparable between starts (:func:`spect_score`:
Pearson correlation of the fixed SPECT on a 9.6 mm grid with the moving SPECT mapped by the
start, inside the fixed body region; independent of the CT, so a CT that cannot tell two poses
apart does not decide). The optimiser runs from the best start (and from the next distinct ones
only if its result is rejected; :func:`registration.register_time_point`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import signal

COARSE_SPACING_MM = 9.6
SCORE_NAME = "SPECT Pearson correlation in the fixed body region (higher is better)"


@dataclass
class Start:
    """A starting translation (fixed -> moving, mm) and its score (:func:`spect_score`)."""

    name: str
    translation_mm: tuple
    score: float = float("nan")

    def transform(self) -> sitk.Transform:
        return sitk.TranslationTransform(3, tuple(float(v) for v in self.translation_mm))


def _centre(img: sitk.Image) -> np.ndarray:
    return np.asarray(img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in img.GetSize()]))


def _weighted_centre_mm(img: sitk.Image, weights: np.ndarray) -> np.ndarray | None:
    w = np.asarray(weights, np.float64)
    total = w.sum()
    if not total > 0:
        return None
    idx = [float((np.arange(n) * w.sum(axis=tuple(a for a in range(3) if a != ax))).sum() / total)
           for ax, n in enumerate(w.shape)]  # [z, y, x]
    return np.asarray(img.TransformContinuousIndexToPhysicalPoint(idx[::-1]))


def _difference(fixed: sitk.Image, moving: sitk.Image, weight) -> tuple | None:
    a = _weighted_centre_mm(fixed, weight(sitk.GetArrayViewFromImage(fixed)))
    b = _weighted_centre_mm(moving, weight(sitk.GetArrayViewFromImage(moving)))
    return None if a is None or b is None else tuple(float(v) for v in b - a)


def _hot(a: np.ndarray) -> np.ndarray:
    hi = float(np.percentile(a, 99.9))
    return np.where(a > 0.3 * hi, a, 0.0) if hi > 0 else np.zeros(a.shape)


def coarse_image(img: sitk.Image, spacing_mm: float = COARSE_SPACING_MM, default: float = 0.0) -> sitk.Image:
    """``img`` on an axis-aligned grid of ``spacing_mm`` over its extent: first averaged over blocks of
    voxels (:func:`SimpleITK.BinShrink`, fast even for a 512 x 512 CT), then resampled linearly."""
    sp = np.asarray(img.GetSpacing(), float)
    factors = [max(1, int(spacing_mm / s)) for s in sp]
    img = sitk.Cast(img, sitk.sitkFloat32)
    small = sitk.BinShrink(img, factors) if max(factors) > 1 else img
    corners = np.array([img.TransformContinuousIndexToPhysicalPoint([float(c) for c in ijk])
                        for ijk in np.array(np.meshgrid(*[[0, n - 1] for n in img.GetSize()])).T.reshape(-1, 3)])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    size = [max(2, int(np.floor((h - lo_) / spacing_mm)) + 1) for lo_, h in zip(lo, hi)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing((spacing_mm,) * 3)
    ref.SetOrigin(tuple(lo))
    return sitk.Resample(small, ref, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkLinear, default, sitk.sitkFloat32)


def cross_correlation_shift(f_img: sitk.Image, m_img: sitk.Image, search_mm: float) -> tuple | None:
    """Exhaustive translation search on two images of one coarse grid (:func:`coarse_image`): the
    shift d (mm, fixed -> moving, x y z) within ``search_mm`` per axis that maximises the
    cross-correlation of the mean-subtracted images, with a parabolic sub-voxel peak."""
    spacing_mm = f_img.GetSpacing()[0]
    f = sitk.GetArrayFromImage(f_img).astype(np.float64)
    m = sitk.GetArrayFromImage(m_img).astype(np.float64)
    f -= f.mean()
    m -= m.mean()
    if not (f.std() > 0 and m.std() > 0):
        return None
    cc = signal.correlate(m, f, mode="full", method="fft")  # peak at index (N - 1) + shift [z, y, x]
    centre = np.asarray(f.shape) - 1
    r = int(np.ceil(search_mm / spacing_mm))
    lo = np.maximum(centre - r, 0)
    hi = np.minimum(centre + r + 1, cc.shape)
    win = cc[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    peak = np.asarray(np.unravel_index(int(np.argmax(win)), win.shape)) + lo
    sub = []
    for ax in range(3):
        if 0 < peak[ax] < cc.shape[ax] - 1:
            i, k = peak.copy(), peak.copy()
            i[ax] -= 1
            k[ax] += 1
            a, b, c = cc[tuple(i)], cc[tuple(peak)], cc[tuple(k)]
            den = a - 2 * b + c
            sub.append(0.5 * (a - c) / den if den < 0 else 0.0)
        else:
            sub.append(0.0)
    shift_zyx = (peak - centre + np.clip(sub, -0.5, 0.5)) * spacing_mm
    return tuple(float(v) for v in shift_zyx[::-1])


def spect_score(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, mask: np.ndarray) -> float:
    """Pearson correlation of ``fixed`` and ``moving`` resampled by ``transform`` inside ``mask``
    (comparable between candidate transforms of one image pair; NaN if undefined)."""
    res = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    a = sitk.GetArrayViewFromImage(fixed)[mask].astype(np.float64)
    b = sitk.GetArrayViewFromImage(res)[mask].astype(np.float64)
    if a.size < 10 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _on_grid(img: sitk.Image, grid: sitk.Image, default: float) -> sitk.Image:
    return sitk.Resample(coarse_image(img, grid.GetSpacing()[0], default), grid, sitk.Transform(3, sitk.sitkIdentity),
                         sitk.sitkLinear, default, sitk.sitkFloat32)


def candidate_starts(fixed_spect: sitk.Image, moving_spect: sitk.Image, fixed_ct: sitk.Image | None = None,
                     moving_ct: sitk.Image | None = None, initial: sitk.Transform | None = None,
                     search_mm: float = 40.0) -> list:
    """Candidate starting translations (see the module docstring), each scored with
    :func:`spect_score` on the coarse SPECTs inside the fixed body region, best first.
    ``search_mm``: half-width of the exhaustive search per axis."""
    c = _centre(fixed_spect)
    starts = [Start("initial" if initial is not None else "identity",
                    tuple(np.asarray((initial or sitk.Transform(3, sitk.sitkIdentity)).TransformPoint(tuple(c))) - c))]
    f_sp = coarse_image(fixed_spect)
    m_own = coarse_image(moving_spect)
    m_sp = sitk.Resample(m_own, f_sp, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    proposals = [("spect_centre_of_mass", lambda: _difference(f_sp, m_sp, lambda a: np.clip(a, 0, None))),
                 ("spect_hot_spots", lambda: _difference(f_sp, m_sp, _hot)),
                 ("spect_cross_correlation", lambda: cross_correlation_shift(f_sp, m_sp, search_mm))]
    if fixed_ct is not None and moving_ct is not None:
        f_ct = _on_grid(fixed_ct, f_sp, -1000.0)
        m_ct = _on_grid(moving_ct, f_sp, -1000.0)
        proposals += [("ct_body_centre_of_mass", lambda: _difference(f_ct, m_ct, lambda a: a > -500)),
                      ("ct_cross_correlation", lambda: cross_correlation_shift(f_ct, m_ct, search_mm))]
    for name, propose in proposals:
        d = propose()
        if d is not None and np.all(np.isfinite(d)) and np.all(np.abs(np.asarray(d) - starts[0].translation_mm)
                                                               <= 1.5 * search_mm):
            starts.append(Start(name, tuple(float(v) for v in d)))
    a = sitk.GetArrayViewFromImage(f_sp)
    hi = float(np.percentile(a, 99.9))
    mask = a > 0.05 * hi if hi > 0 else np.ones(a.shape, bool)
    for s in starts:
        s.score = spect_score(f_sp, m_own, s.transform(), mask)
    return sorted(starts, key=lambda s: -s.score if np.isfinite(s.score) else np.inf)


def distinct(starts: list, n: int, tolerance_mm: float = 5.0) -> list:
    """The first ``n`` starts that lie more than ``tolerance_mm`` from every start kept before."""
    kept = []
    for s in starts:
        if all(np.linalg.norm(np.subtract(s.translation_mm, k.translation_mm)) > tolerance_mm for k in kept):
            kept.append(s)
        if len(kept) == n:
            break
    return kept
