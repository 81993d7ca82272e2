"""VOI masks on the reference grid: one boolean mask per VOI, from per-VOI masks or a labelmap.

A labelmap holds one label per voxel, so VOIs that overlap (a tumour inside a liver or kidney
segment) cannot all be in it: the one written last wins and the other loses voxels. Slicer
segmentations allow overlaps, so the Slicer module hands one mask per VOI to the pipeline
(``StudyImages.masks``); a manifest gives a labelmap (``StudyImages.labelmap``). Either way the
pipeline measures each VOI on its own mask, and a VOI that loses voxels on the way is an error,
not a silent skip.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import SimpleITK as sitk

from ..errors import InputDataError
from ..io import images as image_io


def check_voi_names(names) -> None:
    """Raise InputDataError if a VOI name is empty or used twice (results are keyed by name)."""
    names = [str(n) for n in names]
    empty = [i + 1 for i, n in enumerate(names) if not n.strip()]
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1 and n.strip())
    problems = []
    if empty:
        problems.append("VOI(s) number " + ", ".join(map(str, empty)) + " have no name")
    if duplicates:
        problems.append("VOI name(s) used more than once: " + ", ".join(repr(n) for n in duplicates)
                        + " (rename or remove the duplicates; results are reported per VOI name)")
    if problems:
        raise InputDataError("segmentation: " + "; ".join(problems))


def _mask_on_reference(name: str, mask, reference: sitk.Image, warnings: list) -> np.ndarray:
    """Boolean [z, y, x] mask of one VOI on the reference grid; resampled (nearest) if it is an image
    on another grid. Raises InputDataError if it is empty or loses all its voxels."""
    shape = tuple(reversed(reference.GetSize()))
    if isinstance(mask, sitk.Image):
        had_voxels = bool(sitk.GetArrayViewFromImage(mask).any())
        if image_io.geometry_differences(mask, reference):
            warnings.append(f"{name}: mask geometry differs from the reference SPECT: resampled with nearest neighbour")
            mask = image_io.resample_labelmap(mask, reference)
        array = sitk.GetArrayFromImage(mask) != 0
        if had_voxels and not array.any():
            raise InputDataError(f"segmentation {name}: the VOI lost all its voxels when resampled onto the "
                                 "reference SPECT grid (too small for the SPECT voxels)")
    else:
        array = np.asarray(mask) != 0
        if array.shape != shape:
            raise InputDataError(f"segmentation {name}: mask shape {array.shape} is not the reference grid {shape} "
                                 "([z, y, x])")
    if not array.any():
        raise InputDataError(f"segmentation {name}: the VOI is empty (no voxel on the reference SPECT grid)")
    return array


def _geometry_text(labelmap: sitk.Image, reference: sitk.Image) -> str:
    """Why a label can vanish on resampling: the two images' placement in patient space."""
    def box(img):
        return (f"origin {tuple(round(v, 1) for v in img.GetOrigin())} mm, size {img.GetSize()}, spacing "
                f"{tuple(round(v, 2) for v in img.GetSpacing())} mm")
    return (f" — the two images hardly overlap in patient space (labelmap {box(labelmap)}; reference {box(reference)});"
            " check the geometry (DICOM ImagePositionPatient / ImageOrientationPatient, NIfTI qform/sform) of both")


def check_label_values(lab: np.ndarray, vois, source: str, warnings: list) -> None:
    """Refuse non-integer label values (a float labelmap with 10.4 is not label 10); warn, by
    number, about labels present in the image but not defined in the manifest (ignored)."""
    values, counts = np.unique(lab, return_counts=True)
    if np.issubdtype(values.dtype, np.floating):
        bad = values[~np.isfinite(values) | (values != np.round(values))]
        if bad.size:
            raise InputDataError(f"segmentation {source}: label values must be whole numbers; found "
                                 + ", ".join(f"{v:g}" for v in bad[:5]) + (" ..." if bad.size > 5 else "")
                                 + " — save the labelmap with an integer pixel type")
    defined = {d.label for d in vois}
    extra = [(int(v), int(c)) for v, c in zip(values, counts) if v != 0 and int(v) not in defined]
    if extra:
        warnings.append(f"segmentation {source}: label(s) "
                        + ", ".join(f"{v} ({c} voxels)" for v, c in extra[:10]) + (" ..." if len(extra) > 10 else "")
                        + " present in the image but not defined in the manifest's segmentation.labels: ignored")


def voi_rois(vois, reference: sitk.Image, labelmap: sitk.Image | None = None, masks: dict | None = None,
             source: str = "segmentation") -> tuple[dict, list[str]]:
    """{VOI name: boolean [z, y, x] mask on the reference grid} and warnings.

    ``masks`` ({VOI name: numpy array on the reference grid or SimpleITK image}) wins over
    ``labelmap``; every VOI of ``vois`` (``VoiDefinition``) must have a non-empty mask, overlaps
    are kept. With a labelmap, VOI ``d`` is ``labelmap == d.label``: a label absent from the file
    is skipped with a warning, a label that is in the file but vanishes on resampling is an
    error. Raises InputDataError when no VOI is left. ``source`` names the segmentation in messages.
    """
    vois = list(vois)
    check_voi_names(v.name for v in vois)
    warnings: list[str] = []
    if masks is not None:
        missing = [v.name for v in vois if v.name not in masks]
        if missing:
            raise InputDataError(f"{source}: no mask for VOI(s) {', '.join(missing)}")
        return {v.name: _mask_on_reference(v.name, masks[v.name], reference, warnings) for v in vois}, warnings
    if labelmap is None:
        raise InputDataError(f"{source}: neither VOI masks nor a labelmap were given")
    original_image = labelmap
    original = sitk.GetArrayViewFromImage(labelmap)
    check_label_values(original, vois, source, warnings)
    in_file = {int(x) for x in np.unique(original)}
    if image_io.geometry_differences(labelmap, reference):
        warnings.append("segmentation geometry differs from the reference SPECT: resampled with nearest neighbour")
        labelmap = image_io.resample_labelmap(labelmap, reference)
    lab = sitk.GetArrayFromImage(labelmap)
    rois = {}
    for d in vois:
        roi = lab == d.label
        if roi.any():
            rois[d.name] = roi
        elif d.label in in_file:
            raise InputDataError(f"{source}: label {d.label} ({d.name}) lost all its voxels when resampled onto "
                                 "the reference SPECT grid" + _geometry_text(original_image, reference))
        else:
            warnings.append(f"segmentation label {d.label} ({d.name}) is empty: VOI skipped")
    if not rois:
        present = sorted(int(x) for x in np.unique(lab) if x != 0)
        raise InputDataError(f"segmentation {source}: none of the manifest's labels {[d.label for d in vois]} "
                             f"is present on the reference grid (labels found: {present or 'none'})")
    return rois, warnings


def labelmap_from_masks(masks: dict) -> tuple[np.ndarray, dict]:
    """One labelmap (uint16, label = position + 1) from {VOI name: boolean array}, for writing a
    contract-1 segmentation file. Raises InputDataError naming the VOIs if two overlap, since a
    labelmap would silently take voxels from one of them. Returns (labels, {label: name})."""
    names = list(masks)
    check_voi_names(names)
    if not names:
        raise InputDataError("segmentation: no VOI")
    arrays = [np.asarray(masks[n]) != 0 for n in names]
    count = np.zeros(arrays[0].shape, dtype=np.uint16)
    for a in arrays:
        if a.shape != count.shape:
            raise InputDataError(f"segmentation: VOI masks have different shapes {a.shape} and {count.shape}")
        count += a
    if (count > 1).any():
        overlaps = sorted({(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))
                           if (arrays[i] & arrays[j]).any()})
        raise InputDataError("segmentation: overlapping VOIs cannot share one labelmap without losing voxels: "
                             + ", ".join(f"{a} / {b}" for a, b in overlaps))
    labels = np.zeros(count.shape, dtype=np.uint16)
    for i, a in enumerate(arrays):
        labels[a] = i + 1
    return labels, {i + 1: n for i, n in enumerate(names)}


def default_kind(name: str) -> str:
    """VOI kind guessed from a segment name: "kidney" (kidney, renal), "tumor" (tumo(u)r, lesion, metasta...),
    else "organ"."""
    low = name.lower()
    if "kidney" in low or "renal" in low:
        return "kidney"
    if "tumo" in low or "lesion" in low or "metasta" in low:
        return "tumor"
    return "organ"


def voi_summary(kind: str, mode: str, n_voxels: int | None, voxel_ml: float | None,
                min_tumor_volume_ml: float) -> dict:
    """Volume (mL) of a drawn VOI and the note a VOI table shows: "empty", or for an as-drawn tumour below
    the minimum volume "below <v> mL: excluded" (the rule applied by the pipeline on the cycle-1 reference)."""
    volume = None if n_voxels is None or voxel_ml is None else float(n_voxels) * float(voxel_ml)
    note = ""
    if volume == 0:
        note = "empty"
    elif kind == "tumor" and mode == "as_drawn" and volume is not None and volume < min_tumor_volume_ml:
        note = f"below {min_tumor_volume_ml:g} mL: excluded"
    return {"volume_ml": volume, "note": note, "below_minimum": note.startswith("below")}
