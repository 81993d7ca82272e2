"""Checks of the DICOM pixel-module header against the pixel data, made before GDCM reads it.

GDCM (SimpleITK) reads a RescaleSlope of 0 or NaN as 1 and a NumberOfFrames or BitsAllocated
that does not match the stored pixel data as a volume of zeros — both silently, with exit 0.
:func:`check_dicom_pixel_files` refuses such files with a message naming the file and the tag:

* ``RescaleSlope`` (0028,1053): when present, a finite number other than 0;
* ``RescaleIntercept`` (0028,1052): when present, finite;
* ``BitsAllocated`` (0028,0100) one of 1, 8, 16, 32, 64 and ``BitsStored`` (0028,0101) not above it;
* for uncompressed transfer syntaxes, the length of ``PixelData`` (7FE0,0010) equals
  Rows x Columns x NumberOfFrames x SamplesPerPixel x BitsAllocated / 8 (rounded up to even);
* the voxel data of the series stays below the image size limit
  (:func:`LuDosimetryLib.io.size_limit.max_image_bytes`).

Only element lengths are read (``defer_size``): the pixel data itself is not loaded.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputDataError

_ALLOWED_BITS = (1, 8, 16, 32, 64)


def _number(ds, keyword):
    v = ds.get(keyword, None)
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def check_dicom_pixel_header(path, ds, pixel_length: int | None, compressed: bool) -> list[str]:
    """Problems (messages naming ``path`` and the tag) of one dataset ``ds``; ``pixel_length``
    is the byte length of its PixelData element (None when absent or undefined)."""
    problems = []
    slope = _number(ds, "RescaleSlope")
    if slope is not None and (not math.isfinite(slope) or slope == 0):
        problems.append(f"{path}: RescaleSlope (0028,1053) = {ds.get('RescaleSlope')!r} must be a finite number "
                        "other than 0 (it would be read as 1 and every value scaled wrongly)")
    icpt = _number(ds, "RescaleIntercept")
    if icpt is not None and not math.isfinite(icpt):
        problems.append(f"{path}: RescaleIntercept (0028,1052) = {ds.get('RescaleIntercept')!r} must be a finite number")
    bits = ds.get("BitsAllocated", None)
    stored = ds.get("BitsStored", None)
    if bits is not None and bits not in _ALLOWED_BITS:
        problems.append(f"{path}: BitsAllocated (0028,0100) = {bits} is not one of {', '.join(map(str, _ALLOWED_BITS))}")
    elif bits is not None and stored is not None and stored > bits:
        problems.append(f"{path}: BitsStored (0028,0101) = {stored} exceeds BitsAllocated (0028,0100) = {bits}")
    rows, cols = ds.get("Rows", None), ds.get("Columns", None)
    frames_raw = ds.get("NumberOfFrames", None)
    try:
        frames = int(frames_raw) if frames_raw not in (None, "") else 1
    except (TypeError, ValueError):
        problems.append(f"{path}: NumberOfFrames (0028,0008) = {frames_raw!r} is not a whole number")
        return problems
    if frames < 1:
        problems.append(f"{path}: NumberOfFrames (0028,0008) = {frames} must be at least 1")
        return problems
    if (not compressed and pixel_length is not None and bits in _ALLOWED_BITS and isinstance(rows, int)
            and isinstance(cols, int)):
        samples = ds.get("SamplesPerPixel", 1) or 1
        expected_bits = rows * cols * frames * samples * bits
        expected = (expected_bits + 7) // 8
        if pixel_length not in (expected, expected + (expected % 2)):
            stored_frames = pixel_length * 8 / max(1, rows * cols * samples * bits)
            problems.append(
                f"{path}: PixelData (7FE0,0010) holds {pixel_length} bytes but Rows {rows} x Columns {cols} x "
                f"NumberOfFrames {frames} x SamplesPerPixel {samples} x BitsAllocated {bits} / 8 = {expected} bytes"
                f" (the data hold {stored_frames:.4g} frames at these bits); the header does not describe the "
                "pixel data — the image would be read as zeros or garbage")
    return problems


def check_dicom_pixel_files(files, max_bytes: int | None = None) -> None:
    """Check the pixel header of the first and last file of a series (or a single multi-frame
    file) and the series' voxel-data size; raise :class:`InputDataError` listing every problem."""
    import pydicom
    from pydicom.uid import UID

    from .size_limit import check_image_size

    files = [Path(f) for f in files]
    if not files:
        return
    problems: list[str] = []
    sample = files if len(files) <= 2 else [files[0], files[-1]]
    total_bytes_per_file = None
    frames_per_file = 1
    for f in sample:
        try:
            ds = pydicom.dcmread(str(f), defer_size=256, force=True)
        except Exception as exc:  # noqa: BLE001 — pydicom raises many types on broken files
            raise InputDataError(f"{f}: DICOM header cannot be read ({type(exc).__name__}: {exc})") from None
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        compressed = bool(ts) and UID(ts).is_compressed
        raw = ds._dict.get(0x7FE00010)  # the raw element: its length without loading the pixel data
        length = getattr(raw, "length", None)
        if length == 0xFFFFFFFF:  # undefined length: encapsulated (compressed) data
            length = None
        problems += check_dicom_pixel_header(f, ds, length, compressed)
        rows, cols, bits = ds.get("Rows", 0) or 0, ds.get("Columns", 0) or 0, ds.get("BitsAllocated", 16) or 16
        try:
            frames_per_file = max(1, int(ds.get("NumberOfFrames", 1) or 1))
        except (TypeError, ValueError):
            frames_per_file = 1
        if isinstance(rows, int) and isinstance(cols, int):
            total_bytes_per_file = (rows, cols, max(4, (int(bits) + 7) // 8))
    if problems:
        raise InputDataError("; ".join(problems))
    if total_bytes_per_file is not None:
        rows, cols, bpv = total_bytes_per_file  # as float32 after rescaling, at least 4 bytes per voxel
        check_image_size(str(files[0].parent if len(files) > 1 else files[0]),
                         (cols, rows, frames_per_file * len(files)), bpv, max_bytes)
