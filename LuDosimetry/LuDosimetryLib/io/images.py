"""Image input, geometry checks, resampling and count-to-activity conversion.

All images are SimpleITK images (geometry-aware: origin, spacing and direction in mm, LPS
physical space as ITK uses it). Masks exchanged with the rest of the library are numpy bool
arrays in the image's ``[z, y, x]`` index order (the order of ``sitk.GetArrayFromImage``).

Nothing here modifies its input images; every function returns new images.

Supported inputs of :func:`read_image`:
  * NRRD (``.nrrd``, ``.nhdr``), NIfTI (``.nii``, ``.nii.gz``), MetaImage (``.mha``, ``.mhd``),
    and any other single file SimpleITK can read;
  * a single DICOM file (e.g. a multi-frame NM SPECT reconstruction);
  * a folder holding a DICOM series (read with ``sitk.ImageSeriesReader``). When a folder holds
    several series, pass ``series_uid`` or the read fails with the list of series found.
    DICOM pixel values come back with Rescale Slope/Intercept applied (by GDCM); the
    quantitative scaling that GDCM does not apply (Real World Value Mapping, vendor private
    factors, an ADMIN decay correction) is applied by :func:`LuDosimetryLib.io.dicom.read_dicom_image`
    when ``apply_dicom_scaling`` is true (the default), see :mod:`LuDosimetryLib.io.dicom`; projections,
    planar images and other series that are not a reconstructed volume are refused there.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputDataError
from .size_limit import MAX_IMAGE_BYTES, _human_bytes, check_image_size, max_image_bytes  # noqa: F401

log = logging.getLogger(__name__)

IMAGE_FILE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".dcm", ".ima")

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
    "label_gaussian": sitk.sitkLabelGaussian,
}


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _ensure_3d(image: sitk.Image, source: str) -> sitk.Image:
    """Return a 3-D scalar image: drop a trailing singleton 4th dimension; refuse anything else."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputDataError(f"{source}: image has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                             "(vector/RGB); a scalar 3-D image is required")
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        size = list(image.GetSize())
        size[3] = 0
        image = sitk.Extract(image, size=size, index=[0, 0, 0, 0])
        dim = 3
    if dim != 3:
        raise InputDataError(f"{source}: image is {dim}-D with size {image.GetSize()}; a 3-D volume is required "
                             "(a 4-D file must have a single time frame)")
    if min(image.GetSize()) < 2:
        raise InputDataError(f"{source}: image size {image.GetSize()} has a dimension below 2 voxels; "
                             "a 3-D volume (not a single slice) is required")
    return image


def _check_finite(image: sitk.Image, source: str, nan_policy: str) -> sitk.Image:
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return image
    arr = sitk.GetArrayViewFromImage(image)
    bad = ~np.isfinite(arr)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return image
    if nan_policy == "raise":
        raise InputDataError(
            f"{source}: {n_bad} of {arr.size} voxels are NaN or infinite. Fix the file, or read it with "
            "nan_policy='zero' to set those voxels to 0 (they then count as zero activity).")
    if nan_policy == "zero":
        clean = np.where(bad, 0.0, arr).astype(arr.dtype)
        out = sitk.GetImageFromArray(clean)
        out.CopyInformation(image)
        log.warning("%s: %d NaN/infinite voxels set to 0 (nan_policy='zero')", source, n_bad)
        return out
    raise ValueError(f"nan_policy must be 'raise' or 'zero', got {nan_policy!r}")


def _header_size_check(path: Path, max_bytes: int | None) -> None:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        raise InputDataError(f"{path}: cannot be read as an image ({first})") from None
    bpv = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID(), reader.GetNumberOfComponents())
    per_voxel = int(np.dtype(sitk.GetArrayViewFromImage(bpv).dtype).itemsize) * reader.GetNumberOfComponents()
    check_image_size(str(path), reader.GetSize(), per_voxel, max_bytes)


def _gunzip_once(path: Path, target: Path, max_bytes: int | None) -> None:
    """Decompress ``path`` into ``target`` in one pass with constant memory, reading every gzip
    member to its end: a truncated or corrupt stream, or more data than the limit allows (a
    "zip bomb"), raises InputDataError before anything is read into memory."""
    import zlib

    limit = max_image_bytes(max_bytes) + 1024 * 1024  # voxel data + header/extensions
    written = 0
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as src, open(target, "wb") as dst:
            data = src.read(1 << 20)
            while data:
                out = d.decompress(data, 1 << 22)
                written += len(out)
                if written > limit:
                    raise InputDataError(f"{path}: decompresses to more than {_human_bytes(limit)} (limit "
                                         "LU_DOSIMETRY_MAX_IMAGE_BYTES); refused")
                dst.write(out)
                if d.unconsumed_tail:
                    data = d.unconsumed_tail
                    continue
                if d.eof:  # concatenated members are valid gzip; trailing zero padding is tolerated
                    rest = d.unused_data
                    if rest.strip(b"\x00"):
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        data = rest
                        continue
                    if not rest:
                        rest = src.read(1 << 20)
                        if rest.strip(b"\x00"):
                            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                            data = rest
                            continue
                    break
                data = src.read(1 << 20)
        if not d.eof:
            raise InputDataError(f"{path}: the gzip stream is truncated (the file ends before the compressed data "
                                 "does); the file is incomplete — copy it again")
    except zlib.error as exc:
        raise InputDataError(f"{path}: corrupt gzip data ({exc})") from None


def _nifti_float_layout(head: bytes):
    """(numpy dtype, voxel offset, number of voxels) of a float NIfTI-1 header, else (None, 0, 0)."""
    import struct

    for endian in ("<", ">"):
        if struct.unpack(endian + "i", head[:4])[0] == 348:
            break
    else:
        return None, 0, 0
    kind = {16: "f4", 64: "f8"}.get(struct.unpack(endian + "h", head[70:72])[0])
    if kind is None:
        return None, 0, 0
    dims = struct.unpack(endian + "8h", head[40:56])
    n = 1
    for dd in dims[1:1 + max(0, min(dims[0], 7))]:
        n *= max(1, dd)
    offset = struct.unpack(endian + "f", head[108:112])[0]
    if not math.isfinite(offset) or offset < 348:
        return None, 0, 0
    return np.dtype(endian + kind), int(offset), n


def _nifti_nonfinite_count(path: Path) -> int | None:
    """NaN/inf voxels of an uncompressed float NIfTI-1 file (memory-mapped), else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(352)
    except OSError:
        return None
    if len(head) < 352:
        return None
    dtype, offset, n = _nifti_float_layout(head)
    if dtype is None:
        return None
    try:
        data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(n,))
    except (OSError, ValueError):
        return None
    return int((~np.isfinite(data)).sum())


def list_dicom_series(folder: str | os.PathLike) -> list[tuple[str, list[str]]]:
    """``[(series_instance_uid, [file, ...]), ...]`` of the DICOM series directly in ``folder``
    (see :func:`LuDosimetryLib.io.dicom_series.list_dicom_series`)."""
    from .dicom_series import list_dicom_series as _list  # lazy: the DICOM side owns series reading

    return _list(folder)


def read_image(path: str | os.PathLike, series_uid: str | None = None, nan_policy: str = "raise",
               apply_dicom_scaling: bool = True, max_bytes: int | None = None) -> sitk.Image:
    """Read a 3-D image from an image file, a DICOM file, or a folder holding a DICOM series.

    Parameters
    ----------
    path : image file (NRRD, NIfTI ``.nii``/``.nii.gz``, MHA/MHD, DICOM) or DICOM series folder.
    series_uid : SeriesInstanceUID to pick when a folder holds several series.
    nan_policy : ``"raise"`` (default): NaN/inf voxels raise :class:`InputDataError` naming the file;
        ``"zero"``: documented fallback, such voxels are set to 0 and a warning is logged. (ITK's
        NIfTI reader zeroes NaN by itself; float NIfTI-1 files are therefore checked on their raw
        data.)
    apply_dicom_scaling : for DICOM, also apply the Real World Value Mapping / vendor private
        scale factor that GDCM does not (see :func:`LuDosimetryLib.dicom.read_dicom_image`).
    max_bytes : limit of the voxel data (default :func:`max_image_bytes`, 2 GiB), checked on the
        header before the voxels are read. A ``.nii.gz`` is decompressed once, to a temporary
        file, with the stream read to its end (a truncated file is refused, not half-read).

    Returns
    -------
    A 3-D scalar ``sitk.Image`` (a 4-D file with one frame is reduced to 3-D). Pixel type is as
    stored, except DICOM with rescaling, which comes back as float.

    Raises
    ------
    InputDataError : file or folder missing, unreadable, not 3-D, several DICOM series and no
        ``series_uid``, or NaN voxels with ``nan_policy="raise"``.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{p}: file or folder not found")
    source = str(p)
    n_bad = 0
    if not (p.is_dir() or p.is_file()):  # opening a FIFO would block forever
        raise InputDataError(f"{p}: not a regular file or folder (a FIFO, socket or device)")
    if p.is_dir() or _is_dicom_file(p):
        from .dicom_series import read_dicom_image, read_dicom_series  # lazy: pydicom only when needed

        if apply_dicom_scaling:
            image = read_dicom_image(p, series_uid=series_uid).image
        elif p.is_dir():
            image, _ = read_dicom_series(p, series_uid)
        else:
            from .dicom_pixel_checks import check_dicom_pixel_files

            check_dicom_pixel_files([p], max_bytes)  # RescaleSlope, frames/bits vs PixelData, size (issue 13)
            try:
                image = sitk.ReadImage(str(p))
            except RuntimeError as exc:
                raise InputDataError(f"{p}: SimpleITK cannot read this DICOM file ({str(exc).strip().splitlines()[-1]})") from None
    else:
        with tempfile.TemporaryDirectory(prefix="lu-image-") as tmp:
            readable = p
            if p.name.lower().endswith(".nii.gz"):
                _header_size_check(p, max_bytes)  # cheap: the header only, before decompressing anything
                readable = Path(tmp) / (p.name[:-3] if p.name.lower().endswith(".gz") else p.name)
                _gunzip_once(p, readable, max_bytes)
            else:
                _header_size_check(p, max_bytes)
            try:
                image = sitk.ReadImage(str(readable))
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
                raise InputDataError(f"{p}: cannot be read as an image ({first})") from None
            n_bad = _nifti_nonfinite_count(readable) if p.name.lower().endswith((".nii", ".nii.gz")) else 0
    image = _ensure_3d(image, source)
    if n_bad:
        if nan_policy == "raise":
            raise InputDataError(
                f"{source}: {n_bad} of {int(np.prod(image.GetSize()))} voxels are NaN or infinite. Fix the file, or "
                "read it with nan_policy='zero' to set those voxels to 0 (they then count as zero activity).")
        log.warning("%s: %d NaN/infinite voxels set to 0 (nan_policy='zero')", source, n_bad)
    image = _check_finite(image, source, nan_policy)
    return image


def read_image_information(path: str | os.PathLike) -> dict:
    """Header-only summary of an image file: size (x, y, z), spacing (mm), origin, pixel type.
    Cheap (does not read the voxels). Raises InputDataError if unreadable."""
    p = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputDataError(f"{p}: cannot be read as an image ({str(exc).strip().splitlines()[-1]})") from None
    return {
        "size": tuple(reader.GetSize()),
        "spacing_mm": tuple(reader.GetSpacing()),
        "origin_mm": tuple(reader.GetOrigin()),
        "direction": tuple(reader.GetDirection()),
        "pixel_type": sitk.GetPixelIDValueAsString(reader.GetPixelID()),
        "dimension": reader.GetDimension(),
    }


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------

def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel in mL (spacing in mm; 1 mL = 1000 mm³)."""
    return float(np.prod(image.GetSpacing())) / 1000.0


def geometry_differences(a: sitk.Image, b: sitk.Image, tolerance_mm: float = 1e-3,
                         tolerance_direction: float = 1e-5) -> list[str]:
    """List of human-readable differences in size, spacing, origin and direction (empty = same grid)."""
    diffs = []
    if a.GetDimension() != b.GetDimension():
        return [f"dimension {a.GetDimension()} vs {b.GetDimension()}"]
    if tuple(a.GetSize()) != tuple(b.GetSize()):
        diffs.append(f"size {tuple(a.GetSize())} vs {tuple(b.GetSize())} voxels")
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance_mm, rtol=0):
        diffs.append("spacing " + _fmt(a.GetSpacing()) + " vs " + _fmt(b.GetSpacing()) + " mm")
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance_mm, rtol=0):
        diffs.append("origin " + _fmt(a.GetOrigin()) + " vs " + _fmt(b.GetOrigin()) + " mm")
    if not np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance_direction, rtol=0):
        diffs.append("direction " + _fmt(a.GetDirection()) + " vs " + _fmt(b.GetDirection()))
    return diffs


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def check_same_geometry(a: sitk.Image, b: sitk.Image, name_a: str = "image A", name_b: str = "image B",
                        tolerance_mm: float = 1e-3) -> None:
    """Raise :class:`InputDataError` if ``a`` and ``b`` are not on the same voxel grid.

    Compares size, spacing (mm), origin (mm) within ``tolerance_mm`` and direction cosines. The
    message names both images and every difference, and suggests resampling.
    """
    diffs = geometry_differences(a, b, tolerance_mm)
    if diffs:
        raise InputDataError(f"{name_a} and {name_b} are not on the same voxel grid: " + "; ".join(diffs)
                             + f". Resample {name_b} onto {name_a} (images.resample_to_reference) first.")


def mask_to_image(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A uint8 SimpleITK image of a ``[z, y, x]`` bool/int mask with ``reference``'s geometry."""
    mask = np.asarray(mask)
    expected = tuple(reference.GetSize())[::-1]
    if mask.shape != expected:
        raise InputDataError(f"mask shape {mask.shape} (z, y, x) does not match the reference image "
                             f"(size x,y,z {tuple(reference.GetSize())} → expected {expected})")
    out = sitk.GetImageFromArray(mask.astype(np.uint8) if mask.dtype == bool else mask)
    out.CopyInformation(reference)
    return out


def physical_points_zyx(image: sitk.Image, index_zyx: np.ndarray) -> np.ndarray:
    """Physical coordinates (x, y, z in mm) of continuous voxel indices given as ``[..., (z, y, x)]``."""
    idx = np.asarray(index_zyx, dtype=float)[..., ::-1]
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing())
    origin = np.asarray(image.GetOrigin())
    return origin + (idx * spacing) @ direction.T


def mask_centroid_mm(mask: np.ndarray, image: sitk.Image) -> tuple[float, float, float]:
    """Physical centroid (x, y, z, mm) of a ``[z, y, x]`` mask on ``image``'s grid."""
    idx = np.argwhere(np.asarray(mask))
    if idx.size == 0:
        raise InputDataError("mask is empty: no centroid")
    return tuple(float(v) for v in physical_points_zyx(image, idx.mean(axis=0)))


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------

@dataclass
class ResampleResult:
    """Result of :func:`resample_to_reference`.

    image : the resampled image (float32) on the reference grid.
    total_in : sum of concentration × voxel volume over the input voxels that map inside the
        reference field of view (units of the image × mL, e.g. Bq for Bq/mL).
    total_out_raw : the same sum on the resampled image before renormalisation.
    scale_factor : applied renormalisation (1.0 when ``preserve_total`` is false).
    fraction_outside_fov : fraction of the input total that falls outside the reference grid.
    """

    image: sitk.Image
    total_in: float
    total_out_raw: float
    scale_factor: float
    fraction_outside_fov: float
    warnings: list[str] = field(default_factory=list)


def _affine_of(transform: sitk.Transform) -> tuple[np.ndarray, np.ndarray] | None:
    """(A, t) with T(x) = A x + t if ``transform`` is affine (checked on test points), else None."""
    o = np.zeros(3)
    t0 = np.asarray(transform.TransformPoint(tuple(o)))
    A = np.column_stack([np.asarray(transform.TransformPoint(tuple(e))) - t0 for e in np.eye(3) * 100.0]) / 100.0
    rng = np.random.default_rng(0)
    for p in rng.uniform(-300, 300, size=(4, 3)):
        if not np.allclose(A @ p + t0, transform.TransformPoint(tuple(p)), atol=1e-3):
            return None
    return A, t0


def _fraction_in_reference_fov(image: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None,
                               values: np.ndarray) -> float | None:
    """Fraction of sum(values) (on ``image``'s grid) at points that fall inside ``reference``'s grid.

    ``transform`` maps reference points to image points, so image points go to the reference
    through its inverse. Returns None when the transform is not affine (not checked then)."""
    if transform is None:
        A, t = np.eye(3), np.zeros(3)
    else:
        at = _affine_of(transform)
        if at is None:
            return None
        A, t = at
    total = float(values.sum())
    if not np.any(values):
        return 1.0
    # image index (x, y, z) -> reference continuous index is one affine map: cidx = M idx + m0, evaluated
    # on the whole grid by broadcasting per axis (no list of voxel coordinates, ~20x faster)
    d_i = np.asarray(image.GetDirection()).reshape(3, 3)
    d_r = np.asarray(reference.GetDirection()).reshape(3, 3)
    a_inv = np.linalg.inv(A)
    to_ref = np.diag(1.0 / np.asarray(reference.GetSpacing())) @ d_r.T @ a_inv
    M = to_ref @ d_i @ np.diag(np.asarray(image.GetSpacing()))
    m0 = to_ref @ (np.asarray(image.GetOrigin()) - t) - np.diag(1.0 / np.asarray(reference.GetSpacing())) @ d_r.T @ \
        np.asarray(reference.GetOrigin())
    nz, ny, nx = values.shape
    ax = [np.arange(n, dtype=np.float64) for n in (nx, ny, nz)]
    size = np.asarray(reference.GetSize())
    inside = np.ones(values.shape, bool)
    for k in range(3):
        c = (M[k, 0] * ax[0])[None, None, :] + (M[k, 1] * ax[1])[None, :, None] + (M[k, 2] * ax[2])[:, None, None] + m0[k]
        inside &= (c >= -0.5) & (c <= size[k] - 0.5)
    return float(values[inside].sum()) / total if total != 0 else 1.0


def resample_to_reference(image: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None,
                          interpolator: str = "linear", preserve_total: bool = True, quantity: str = "concentration",
                          default_value: float = 0.0) -> ResampleResult:
    """Resample an activity (or dose-rate) image onto ``reference``'s grid.

    Parameters
    ----------
    image : the image to move (e.g. the 4 h SPECT in Bq/mL).
    reference : the grid to resample onto (e.g. the 24 h SPECT).
    transform : maps *reference* physical points to *image* physical points (the convention of
        ``sitk.Resample`` and of :class:`LuDosimetryLib.registration.RegistrationResult`); None =
        identity (images already in the same patient space, e.g. same frame of reference).
    interpolator : ``"linear"`` (default), ``"bspline"`` or ``"nearest"``.
    preserve_total : renormalise so that the total activity is kept (see below).
    quantity : ``"concentration"`` (voxel value per mL, e.g. Bq/mL, Gy/h) or ``"amount"`` (per
        voxel, e.g. counts or Bq in the voxel); amounts are converted to concentration for the
        interpolation and back, so the total is comparable across voxel sizes.
    default_value : value outside the input image.

    Total-activity convention
    -------------------------
    The image is resampled as a concentration with the chosen interpolator; total activity is
    Σ value × voxel volume (mL). Interpolation, voxel-size changes and rotations change that sum
    slightly. With ``preserve_total`` the result is multiplied by one global factor so that its
    total equals the total of the *input voxels that map inside the reference grid* (activity
    moved out of the field of view is not redistributed; a warning says how much was lost).
    Negative-free inputs stay negative-free for linear/nearest. The factor is logged and given in
    the result; a factor outside 0.95–1.05 adds a warning (usually a large change of voxel
    size: consider smoothing first). For CT or other non-activity images pass
    ``preserve_total=False``; for labelmaps use :func:`resample_labelmap`.

    Returns
    -------
    :class:`ResampleResult` (``.image``: float32 ``sitk.Image`` on the reference grid, plus the
    totals and the scale factor).
    """
    if quantity not in ("concentration", "amount"):
        raise ValueError(f"quantity must be 'concentration' or 'amount', got {quantity!r}")
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(_INTERPOLATORS)}, got {interpolator!r}")
    src = sitk.Cast(image, sitk.sitkFloat64)
    if quantity == "amount":
        src = src / voxel_volume_ml(image)
    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    out = sitk.Resample(src, reference, tx, _INTERPOLATORS[interpolator], float(default_value), sitk.sitkFloat64)
    if interpolator == "bspline":
        out = sitk.Maximum(out, 0.0) if float(sitk.GetArrayViewFromImage(src).min()) >= 0 else out

    src_arr = sitk.GetArrayViewFromImage(src)
    total_all = float(src_arr.sum()) * voxel_volume_ml(image)
    frac = _fraction_in_reference_fov(image, reference, transform, src_arr)
    warnings = []
    if frac is None:
        frac = 1.0
        warnings.append("transform is not affine: activity outside the reference field of view not checked")
    total_in = total_all * frac
    out_arr = sitk.GetArrayViewFromImage(out)
    total_out = float(out_arr.sum()) * voxel_volume_ml(reference)
    scale = 1.0
    if preserve_total and total_out != 0 and total_in != 0:
        scale = total_in / total_out
        if abs(scale - 1.0) > 0.05:
            warnings.append(f"total activity changed by {100 * (1 / scale - 1):+.1f} % on resampling and was "
                            f"renormalised (factor {scale:.4f}); check voxel sizes")
        out = out * scale
    if 1.0 - frac > 0.01:
        warnings.append(f"{100 * (1 - frac):.1f} % of the total lies outside the reference field of view and is lost")
    for w in warnings:
        log.warning("resample_to_reference: %s", w)
    if quantity == "amount":
        out = out * voxel_volume_ml(reference)
    out = sitk.Cast(out, sitk.sitkFloat32)
    return ResampleResult(image=out, total_in=total_in, total_out_raw=total_out, scale_factor=scale,
                          fraction_outside_fov=1.0 - frac, warnings=warnings)


def resample_labelmap(labelmap: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None) -> sitk.Image:
    """Nearest-neighbour resampling of a labelmap onto ``reference``'s grid (labels kept, 0 outside).

    ``transform`` maps reference points to labelmap points (as :func:`resample_to_reference`).
    The pixel type of the labelmap is kept.
    """
    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(labelmap, reference, tx, sitk.sitkNearestNeighbor, 0, labelmap.GetPixelID())


def resample_mask(mask: np.ndarray, mask_reference: sitk.Image, target: sitk.Image,
                  transform: sitk.Transform | None = None) -> np.ndarray:
    """Move a ``[z, y, x]`` bool mask from ``mask_reference``'s grid onto ``target``'s grid
    (nearest neighbour; ``transform`` maps target points to mask points). Returns a bool array."""
    img = mask_to_image(np.asarray(mask, dtype=bool), mask_reference)
    return sitk.GetArrayFromImage(resample_labelmap(img, target, transform)).astype(bool)


# --------------------------------------------------------------------------------------------
# Counts to activity concentration
# --------------------------------------------------------------------------------------------

def counts_to_bq_per_ml(image: sitk.Image, calibration_cps_per_MBq: float, acquisition_duration_s: float,
                        half_life_h: float | None = None, source: str = "SPECT image") -> sitk.Image:
    """Convert a reconstructed SPECT in counts per voxel to activity concentration (Bq/mL).

    ``A_voxel [MBq] = counts / acquisition_duration_s / calibration_cps_per_MBq`` and
    ``C [Bq/mL] = A_voxel × 1e6 / voxel_volume_mL``.

    Conventions
    -----------
    * ``acquisition_duration_s`` is the duration the calibration factor refers to: the total
      time over which the reconstructed counts were collected (e.g. 90 projections × 30 s /
      number of heads sharing them, as in the calibration measurement). The same convention
      must be used for the calibration acquisition and the patient acquisition.
    * ``calibration_cps_per_MBq`` is total reconstructed counts per second per MBq in the field
      of view (a tomographic, not planar, sensitivity).
    * Decay: without ``half_life_h`` the result is the *mean* activity during the acquisition,
      which is what the counts measure. With ``half_life_h`` it is decay-corrected to the
      **acquisition start** by ``λT / (1 − e^{−λT})`` (λ = ln 2 / T½, T the duration). No
      correction to the injection time is made: time-activity curves keep physical decay, and
      the time of each point is the acquisition (start) time. For 177Lu and 30 min the
      correction is 1.0011 (0.11 %).

    Raises InputDataError for a non-positive calibration or duration.
    """
    if not (isinstance(calibration_cps_per_MBq, (int, float)) and calibration_cps_per_MBq > 0
            and math.isfinite(calibration_cps_per_MBq)):
        raise InputDataError(f"{source}: calibration_cps_per_MBq must be a positive number, got {calibration_cps_per_MBq!r}")
    if not (isinstance(acquisition_duration_s, (int, float)) and acquisition_duration_s > 0
            and math.isfinite(acquisition_duration_s)):
        raise InputDataError(f"{source}: acquisition_duration_s must be a positive number, got {acquisition_duration_s!r}")
    factor = 1e6 / (float(acquisition_duration_s) * float(calibration_cps_per_MBq) * voxel_volume_ml(image))
    if half_life_h is not None:
        if not half_life_h > 0:
            raise InputDataError(f"{source}: half_life_h must be > 0, got {half_life_h!r}")
        lam_T = math.log(2.0) / (half_life_h * 3600.0) * float(acquisition_duration_s)
        factor *= lam_T / -math.expm1(-lam_T)
    out = sitk.Cast(image, sitk.sitkFloat64) * factor
    return sitk.Cast(out, sitk.sitkFloat32)


def total_activity_MBq(image_bq_per_ml: sitk.Image, mask: np.ndarray | None = None) -> float:
    """Σ concentration (Bq/mL) × voxel volume (mL) / 1e6 over ``mask`` (or the whole image), in MBq."""
    arr = sitk.GetArrayViewFromImage(image_bq_per_ml)
    s = float(arr[np.asarray(mask, dtype=bool)].sum()) if mask is not None else float(arr.sum())
    return s * voxel_volume_ml(image_bq_per_ml) / 1e6
