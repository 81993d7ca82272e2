"""Lesion tracking across cycles and lesion-level response categories (Santoro-Fernandes et al. 2025).

Santoro-Fernandes et al. (J Nucl Med 2025;66:565) matched lesion ROIs between scans
and categorised each track as *disappearing*, *decreasing* (ΔSUVtotal < −30 %), *stable*
(−30 % ≤ Δ ≤ +30 %), *increasing* (Δ > +30 %) or *new*; a patient has **response
heterogeneity** if, after therapy, there are both new-or-increasing and
decreasing-or-disappearing lesions. Here the per-lesion value is the total uptake in the
lesion (Σ concentration × voxel volume, e.g. MBq for Bq/mL images, the analogue of SUVtotal),
or any value the caller supplies (e.g. absorbed dose per administered activity).

Matching: all masks must be on one grid (e.g. every cycle registered to the cycle-1
reference). Cycle by cycle, each lesion is matched to an existing track (its last observed
mask, so a lesion may disappear and come back) by maximum overlap and centroid distance with a
one-to-one assignment (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``). A pair
is allowed if the masks overlap or their centroids are within ``max_distance_mm``; cost =
(1 − IoU) + distance / max_distance_mm. Unmatched lesions start new tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from ..errors import InputDataError

CATEGORIES = ("disappearing", "decreasing", "stable", "increasing", "new")


@dataclass
class LesionObservation:
    """One lesion in one cycle: mask [z, y, x], volume (mL), centroid (x, y, z mm), value."""

    cycle_index: int
    index: int
    mask: np.ndarray
    volume_ml: float
    centroid_mm: tuple
    value: float | None = None
    bbox: tuple = ()  # (lo, hi) voxel index [z, y, x], inclusive: pairs are compared inside bounding boxes
    voxels: int = 0


@dataclass
class LesionTrack:
    """A lesion followed over cycles: ``members[c]`` is the lesion index in cycle c (None if
    absent); ``values[c]`` its value (None if absent); category between baseline and follow-up."""

    track_id: int
    members: list
    values: list
    category: str | None = None
    change_percent: float | None = None

    def present(self, c: int) -> bool:
        return self.members[c] is not None


@dataclass
class TrackingResult:
    """Tracks, per-category counts and the patient-level heterogeneity flag."""

    tracks: list[LesionTrack]
    observations: list[list[LesionObservation]]
    baseline: int
    followup: int
    counts: dict = field(default_factory=dict)
    heterogeneous: bool = False

    def to_rows(self) -> list[dict]:
        """One row per track: id, category, change (%), then value and presence per cycle."""
        rows = []
        for t in self.tracks:
            row = {"track": t.track_id, "category": t.category, "change_percent": t.change_percent}
            for c, (m, v) in enumerate(zip(t.members, t.values)):
                row[f"cycle{c + 1}_lesion"] = m
                row[f"cycle{c + 1}_value"] = v
            rows.append(row)
        return rows


def _reference_grid(reference) -> sitk.Image:
    """The common grid as an image (a 1-voxel stand-in when only the spacing is given)."""
    if isinstance(reference, sitk.Image):
        return reference
    sp = tuple(float(s) for s in reference)
    if len(sp) != 3:
        raise InputDataError(f"reference: give a SimpleITK image or (x, y, z) spacing in mm, got {reference!r}")
    img = sitk.Image(1, 1, 1, sitk.sitkUInt8)
    img.SetSpacing(sp)
    return img


def _split(entry, c: int) -> list[np.ndarray]:
    """A cycle's lesions: list of bool masks, or a labelmap (each label a lesion), or one bool
    mask (each 26-connected component a lesion)."""
    if isinstance(entry, sitk.Image):
        entry = sitk.GetArrayFromImage(entry)
    if isinstance(entry, (list, tuple)):
        return [np.asarray(m, dtype=bool) for m in entry]
    a = np.asarray(entry)
    if a.ndim != 3:
        raise InputDataError(f"masks_by_cycle[{c}]: expected a 3-D mask/labelmap or a list of masks, got shape {a.shape}")
    if a.dtype == bool:
        lab, n = ndimage.label(a, structure=ndimage.generate_binary_structure(3, 3))
        return [lab == k for k in range(1, n + 1)]
    return [a == v for v in np.unique(a) if v != 0]


def total_uptake(image: sitk.Image, mask: np.ndarray, per: float = 1e6) -> float:
    """Σ value × voxel volume (mL) over the mask, divided by ``per`` (MBq for Bq/mL with 1e6)."""
    arr = sitk.GetArrayViewFromImage(image)
    m = np.asarray(mask, dtype=bool)
    if m.shape != arr.shape:
        raise InputDataError(f"mask shape {m.shape} differs from the image {arr.shape}")
    return float(arr[m].sum()) * float(np.prod(image.GetSpacing())) / 1000.0 / per


def _overlap_voxels(a: LesionObservation, b: LesionObservation) -> int:
    """Voxels in both masks, counted only inside the intersection of their bounding boxes
    (0 without touching the masks when the boxes are disjoint): the cost no longer grows with
    the image size for every pair of lesions."""
    lo = np.maximum(a.bbox[0], b.bbox[0])
    hi = np.minimum(a.bbox[1], b.bbox[1])
    if np.any(hi < lo):
        return 0
    box = tuple(slice(int(x), int(y) + 1) for x, y in zip(lo, hi))
    return int(np.count_nonzero(a.mask[box] & b.mask[box]))


def match_lesions(masks_by_cycle, reference, images_by_cycle=None, values_by_cycle=None,
                  max_distance_mm: float = 20.0, baseline: int = 0, followup: int = -1,
                  threshold_percent: float = 30.0) -> TrackingResult:
    """Match lesions across cycles, give each track its per-cycle values and Santoro-Fernandes et al. 2025 category.

    Parameters
    ----------
    masks_by_cycle : per cycle, the lesions on one common grid: a list of bool masks, a labelmap
        (label k = lesion) or one bool mask (components = lesions); numpy [z, y, x] or SimpleITK.
    reference : the common grid (SimpleITK image) or its (x, y, z) spacing in mm.
    images_by_cycle : per cycle an activity image on that grid: value = total uptake (MBq for Bq/mL).
    values_by_cycle : per cycle a list of values aligned with that cycle's lesions (overrides images).
    max_distance_mm : largest centroid distance for a match when masks do not overlap.
    baseline, followup : cycle indices compared for the categories (default first and last).
    threshold_percent : the ±30 % limits of Santoro-Fernandes et al. 2025.
    """
    if not isinstance(masks_by_cycle, (list, tuple)) or len(masks_by_cycle) < 1:
        raise InputDataError("masks_by_cycle: expected a list with one entry per cycle")
    ref = _reference_grid(reference)
    n_cycles = len(masks_by_cycle)
    b = baseline % n_cycles
    f = followup % n_cycles
    obs: list[list[LesionObservation]] = []
    shape = None
    for c, entry in enumerate(masks_by_cycle):
        masks = [m for m in _split(entry, c) if m.any()]
        if values_by_cycle is not None:
            vals = list(values_by_cycle[c])
            if len(vals) != len(masks):
                raise InputDataError(f"values_by_cycle[{c}]: {len(vals)} values for {len(masks)} lesions")
        elif images_by_cycle is not None:
            vals = [total_uptake(images_by_cycle[c], m) for m in masks]
        else:
            vals = [None] * len(masks)
        cyc = []
        for i, (m, v) in enumerate(zip(masks, vals)):
            if shape is None:
                shape = m.shape
            elif m.shape != shape:
                raise InputDataError(f"masks_by_cycle[{c}]: lesion {i} has shape {m.shape}, expected {shape} "
                                     "(all cycles must be on one grid: register them first)")
            where = np.argwhere(m)
            idx = where.mean(axis=0)
            cen = ref.TransformContinuousIndexToPhysicalPoint([float(x) for x in idx[::-1]])
            cyc.append(LesionObservation(cycle_index=c, index=i, mask=m, bbox=(where.min(axis=0), where.max(axis=0)),
                                         voxels=len(where),
                                         volume_ml=float(m.sum()) * float(np.prod(ref.GetSpacing())) / 1000.0,
                                         centroid_mm=tuple(float(x) for x in cen),
                                         value=None if v is None else float(v)))
        obs.append(cyc)

    tracks: list[LesionTrack] = []
    last_seen: list[LesionObservation] = []
    for c, cyc in enumerate(obs):
        assigned = {}
        if tracks and cyc:
            big = 1e6
            cost = np.full((len(tracks), len(cyc)), big)
            for ti, prev in enumerate(last_seen):
                for li, o in enumerate(cyc):
                    d = float(np.linalg.norm(np.subtract(prev.centroid_mm, o.centroid_mm)))
                    inter = _overlap_voxels(prev, o)
                    union = prev.voxels + o.voxels - inter
                    iou = inter / union if union else 0.0
                    if inter > 0 or d <= max_distance_mm:
                        cost[ti, li] = (1.0 - iou) + d / max_distance_mm
            rows, cols = linear_sum_assignment(cost)
            for r, k in zip(rows, cols):
                if cost[r, k] < big:
                    assigned[k] = r
        for t in tracks:
            t.members.append(None)
            t.values.append(None)
        for li, o in enumerate(cyc):
            if li in assigned:
                t = tracks[assigned[li]]
                last_seen[assigned[li]] = o
            else:
                t = LesionTrack(track_id=len(tracks) + 1, members=[None] * (c + 1), values=[None] * (c + 1))
                tracks.append(t)
                last_seen.append(o)
            t.members[c] = o.index
            t.values[c] = o.value
    counts = {k: 0 for k in CATEGORIES}
    for t in tracks:
        t.category, t.change_percent = categorize(t.values[b] if t.present(b) else None,
                                                  t.values[f] if t.present(f) else None,
                                                  t.present(b), t.present(f), threshold_percent)
        if t.category in counts:
            counts[t.category] += 1
    return TrackingResult(tracks=tracks, observations=obs, baseline=b, followup=f, counts=counts,
                          heterogeneous=response_heterogeneity([t.category for t in tracks]))


def categorize(value_baseline, value_followup, present_baseline: bool = True, present_followup: bool = True,
               threshold_percent: float = 30.0) -> tuple[str | None, float | None]:
    """Santoro-Fernandes et al. 2025 category of one lesion track: (category, change in %).

    disappearing (present, then absent), new (absent, then present), decreasing (Δ < −30 %),
    stable (−30 % ≤ Δ ≤ +30 %), increasing (Δ > +30 %). Absent at both → (None, None)."""
    if present_baseline and not present_followup:
        return "disappearing", -100.0
    if present_followup and not present_baseline:
        return "new", None
    if not present_baseline and not present_followup:
        return None, None
    if value_baseline is None or value_followup is None:
        raise InputDataError("lesion values are needed to categorise tracks: give images_by_cycle or values_by_cycle")
    if value_baseline <= 0:
        return ("new" if value_followup > 0 else None), None
    change = 100.0 * (float(value_followup) - float(value_baseline)) / float(value_baseline)
    if change < -threshold_percent:
        return "decreasing", change
    if change > threshold_percent:
        return "increasing", change
    return "stable", change


def response_heterogeneity(categories) -> bool:
    """Santoro-Fernandes et al. 2025: both (new or increasing) and (decreasing or disappearing) lesions are present."""
    cats = set(c for c in categories if c)
    return bool(cats & {"new", "increasing"}) and bool(cats & {"decreasing", "disappearing"})
