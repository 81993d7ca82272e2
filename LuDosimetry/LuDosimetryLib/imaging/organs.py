"""Organ (kidney) masks: from user labels, from TotalSegmentator when installed, or from SPECT.

Macsuka et al. 2026 segmented kidneys "automatically using TotalSegmentator and corrected manually, if
needed". TotalSegmentator (PyTorch + model weights, ~GB) is never required here:

* :func:`organ_masks_from_labelmap` — masks from a user labelmap (drawn in Slicer, or
  TotalSegmentator output made elsewhere), resampled with nearest neighbour when needed;
* :func:`segment_organs_totalsegmentator` — runs TotalSegmentator on the CT only if the
  ``totalsegmentator`` package **and** its weights are installed; otherwise raises
  :class:`InputDataError` with a hint (nothing is downloaded unless ``allow_download=True``);
* :func:`spect_threshold_organ` — fallback without CT labels: threshold of the SPECT inside a
  rough user ROI around the organ (largest component, holes filled).

Masks are numpy bool arrays in ``[z, y, x]`` order on the reference image's grid.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputDataError
from ..io.images import geometry_differences, resample_labelmap

log = logging.getLogger(__name__)

TOTALSEGMENTATOR_HINT = (
    "TotalSegmentator is optional. Install it with `pip install TotalSegmentator` (in Slicer: the "
    "TotalSegmentator extension, or slicer.util.pip_install('TotalSegmentator')) and let it download its "
    "weights once (allow_download=True or run `TotalSegmentator -i ct.nii.gz -o out` once), or draw the "
    "kidneys and give them as labels in the segmentation file, or use spect_threshold_organ inside a rough ROI.")

#: TotalSegmentator ("total" task) names of the organs this extension uses most.
DEFAULT_ORGANS = ("kidney_left", "kidney_right", "liver", "spleen")


def organ_masks_from_labelmap(labelmap: sitk.Image, labels: dict, reference: sitk.Image | None = None,
                              source: str = "segmentation") -> tuple[dict, list[str]]:
    """Bool masks per organ from a labelmap.

    ``labels``: ``{label value: name}`` (or ``{label: {"name": ...}}`` as in the manifest).
    ``reference``: resample the labelmap onto this grid (nearest neighbour) if it differs.
    Returns ``(masks_by_name, warnings)``; an empty label gives a warning, not an error.
    """
    if not isinstance(labelmap, sitk.Image):
        raise InputDataError(f"{source}: expected a SimpleITK labelmap, got {type(labelmap).__name__}")
    warnings = []
    lab = labelmap
    if reference is not None and geometry_differences(labelmap, reference):
        lab = resample_labelmap(labelmap, reference)
        warnings.append(f"{source}: labelmap geometry differs from the reference image; resampled (nearest neighbour)")
    arr = sitk.GetArrayViewFromImage(lab)
    masks = {}
    for key, spec in labels.items():
        try:
            value = int(key)
        except (TypeError, ValueError):
            raise InputDataError(f"{source}.labels: label {key!r} is not an integer") from None
        name = spec.get("name") if isinstance(spec, dict) else str(spec)
        m = arr == value
        if not m.any():
            warnings.append(f"{source}: label {value} ({name}) is empty")
        masks[name] = np.array(m, dtype=bool)
    return masks, warnings


def totalsegmentator_available() -> tuple[bool, str]:
    """(True, "") if the ``totalsegmentator`` package and its weights folder are present, else
    (False, reason). Never imports torch or downloads anything."""
    if importlib.util.find_spec("totalsegmentator") is None:
        return False, "the 'totalsegmentator' Python package is not installed"
    home = os.environ.get("TOTALSEG_HOME_DIR")
    weights = (Path(home) if home else Path.home() / ".totalsegmentator") / "nnunet" / "results"
    if not weights.is_dir() or not any(weights.iterdir()):
        return False, f"TotalSegmentator weights not found in {weights}"
    return True, ""


def segment_organs_totalsegmentator(ct, organs=DEFAULT_ORGANS, reference: sitk.Image | None = None,
                                    fast: bool = True, device: str = "cpu", allow_download: bool = False,
                                    work_dir: str | os.PathLike | None = None) -> dict:
    """Organ masks from a CT with TotalSegmentator (task "total"), only if it is installed.

    Parameters
    ----------
    ct : CT as a SimpleITK image (HU) or a path (NIfTI/NRRD/DICOM folder, read with images.read_image).
    organs : TotalSegmentator class names (e.g. "kidney_left", "kidney_right").
    reference : grid of the returned masks (e.g. the reference SPECT); default the CT grid.
    fast : TotalSegmentator's 3 mm model (enough at SPECT resolution, much faster).
    device : "cpu" or "gpu".
    allow_download : let TotalSegmentator download its weights if they are missing.

    Returns ``{organ: bool mask [z, y, x]}``. Raises :class:`InputDataError` with a hint when
    TotalSegmentator or its weights are missing, or if it fails.
    """
    ok, reason = totalsegmentator_available()
    if not ok and not (allow_download and importlib.util.find_spec("totalsegmentator") is not None):
        raise InputDataError(f"automatic organ segmentation not available: {reason}. {TOTALSEGMENTATOR_HINT}")
    from ..io.images import read_image

    ct_img = ct if isinstance(ct, sitk.Image) else read_image(ct)
    from totalsegmentator.map_to_binary import class_map  # type: ignore[import-not-found]
    from totalsegmentator.python_api import totalsegmentator  # type: ignore[import-not-found]

    names = class_map["total"]
    unknown = [o for o in organs if o not in names.values()]
    if unknown:
        raise InputDataError(f"organs: {unknown} are not TotalSegmentator 'total' classes")
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        inp = Path(tmp) / "ct.nii.gz"
        out = Path(tmp) / "seg.nii.gz"
        sitk.WriteImage(sitk.Cast(ct_img, sitk.sitkInt16), str(inp))
        kwargs = dict(ml=True, fast=fast, roi_subset=list(organs), device=device)
        try:
            try:
                totalsegmentator(str(inp), str(out), **kwargs)
            except TypeError:  # older versions: no device argument
                kwargs.pop("device")
                totalsegmentator(str(inp), str(out), **kwargs)
        except Exception as exc:  # noqa: BLE001 - report any failure of the external tool clearly
            raise InputDataError(f"TotalSegmentator failed on the CT: {exc}. {TOTALSEGMENTATOR_HINT}") from exc
        seg = sitk.ReadImage(str(out))
    target = reference if reference is not None else ct_img
    if geometry_differences(seg, target, tolerance_mm=0.01):
        seg = resample_labelmap(seg, target)
    arr = sitk.GetArrayViewFromImage(seg)
    by_name = {v: k for k, v in names.items()}
    return {o: np.array(arr == by_name[o], dtype=bool) for o in organs}


def spect_threshold_organ(image: sitk.Image, roi_mask, fraction_of_max: float = 0.3,
                          threshold: float | None = None, fill_holes: bool = True) -> tuple[np.ndarray, dict]:
    """SPECT-based organ mask inside a rough user ROI (fallback without CT labels).

    Voxels of the ROI above ``threshold`` (image units) or, if None, above ``fraction_of_max`` ×
    the ROI maximum; the largest connected component is kept and holes are filled. Returns
    ``(mask, info)`` with ``info`` = threshold used, volume (mL), voxels. Spill-out of the
    blurred SPECT makes such masks larger than the anatomical organ; prefer CT-based masks.
    """
    if not isinstance(image, sitk.Image):
        raise InputDataError(f"image: expected a SimpleITK image, got {type(image).__name__}")
    arr = sitk.GetArrayViewFromImage(image)
    roi = np.asarray(roi_mask, dtype=bool)
    if roi.shape != arr.shape:
        raise InputDataError(f"roi_mask: shape {roi.shape} (z, y, x) differs from the image {arr.shape}")
    if not roi.any():
        raise InputDataError("roi_mask: the ROI is empty")
    peak = float(arr[roi].max())
    if peak <= 0:
        raise InputDataError("image: no positive value inside the ROI")
    if threshold is None:
        if not 0 < fraction_of_max < 1:
            raise InputDataError(f"fraction_of_max must be between 0 and 1, got {fraction_of_max!r}")
        threshold = fraction_of_max * peak
    m = roi & (arr >= threshold)
    lab, n = ndimage.label(m, structure=ndimage.generate_binary_structure(3, 3))
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        m = lab == int(np.argmax(sizes))
    if fill_holes:
        m = ndimage.binary_fill_holes(m) & roi
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    return m, {"threshold": float(threshold), "volume_ml": float(m.sum()) * voxel_ml, "n_voxels": int(m.sum())}
