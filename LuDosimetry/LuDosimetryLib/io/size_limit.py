"""The size limit of one image's voxel data (default 2 GiB), checked on headers before any voxel is read.

``LU_DOSIMETRY_MAX_IMAGE_BYTES`` (environment) or the ``max_bytes`` argument of the readers
change it. Used by :mod:`.images` (NRRD/NIfTI/MHA headers, gzip streams) and
:mod:`.dicom_pixel_checks` (Rows x Columns x frames of a DICOM series).
"""

from __future__ import annotations

import os

from ..errors import InputDataError

MAX_IMAGE_BYTES = 2 * 1024 ** 3
"""Default limit of the voxel data of one image (2 GiB); ``LU_DOSIMETRY_MAX_IMAGE_BYTES`` or the
``max_bytes`` argument of :func:`read_image` change it."""


def max_image_bytes(max_bytes: int | None = None) -> int:
    """The voxel-data limit in bytes: ``max_bytes``, else ``$LU_DOSIMETRY_MAX_IMAGE_BYTES``, else 2 GiB."""
    if max_bytes is not None:
        return int(max_bytes)
    env = os.environ.get("LU_DOSIMETRY_MAX_IMAGE_BYTES", "").strip()
    try:
        return int(float(env)) if env else MAX_IMAGE_BYTES
    except ValueError:
        raise InputDataError(f"LU_DOSIMETRY_MAX_IMAGE_BYTES = {env!r}: not a number of bytes") from None


def _human_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} bytes"


def check_image_size(source: str, size, bytes_per_voxel: int, max_bytes: int | None = None) -> int:
    """Refuse an image whose voxel data (product of ``size`` x ``bytes_per_voxel``) exceeds the
    limit (:func:`max_image_bytes`); returns the number of bytes."""
    n = bytes_per_voxel
    for s in size:
        n *= max(int(s), 0)
    limit = max_image_bytes(max_bytes)
    if n > limit:
        raise InputDataError(f"{source}: image of size {tuple(int(s) for s in size)} holds {_human_bytes(n)} of voxel "
                             f"data, above the limit of {_human_bytes(limit)} (set LU_DOSIMETRY_MAX_IMAGE_BYTES to "
                             "raise it)")
    return n
