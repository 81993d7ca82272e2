"""Constants and input checks shared by the dose modules (activity MBq, TIA MBq·h, mass g, density g/mL, voxel size mm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import InputDataError
from ..radionuclides import KEV_TO_J, Nuclide, get_nuclide


#: Density of soft tissue assumed by the generated kernels (ICRU soft tissue), g/mL.
SOFT_TISSUE_DENSITY_G_PER_ML = 1.04


#: Floor of the density used for dose (g/mL), see the module docstring.
DEFAULT_MIN_DENSITY_G_PER_ML = 0.1


_DATA = Path(__file__).resolve().parent.parent / "data"


_S_PER_H = 3600.0


_BQ_PER_MBQ = 1.0e6


#: keV per g per decay -> mGy/(MBq·s): 1.602e-16 J/keV * 1e3 g/kg * 1e6 Bq/MBq * 1e3 mGy/Gy
_KEV_PER_G_TO_MGY_PER_MBQ_S = KEV_TO_J * 1.0e3 * 1.0e6 * 1.0e3


_ELECTRON_REST_MeV = 0.51099895


_KERNEL_CACHE_SIZE = 16


def _array(x, name: str, *, allow_negative: bool = False, ndim: int | None = None) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"{name}: expected numbers, got {type(x).__name__} ({exc})") from None
    if ndim is not None and a.ndim != ndim:
        raise InputDataError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if a.size == 0:
        raise InputDataError(f"{name}: is empty")
    bad = ~np.isfinite(a)
    if bad.any():
        raise InputDataError(f"{name}: {int(bad.sum())} value(s) are NaN or infinite")
    if not allow_negative and (a < 0).any():
        raise InputDataError(f"{name}: {int((a < 0).sum())} value(s) are negative (min {a.min():.4g}); "
                             "clip them (np.clip) if they come from reconstruction or resampling")
    return a


def _voxel_size(v, name: str = "voxel_size_mm") -> tuple:
    a = np.atleast_1d(np.asarray(v, dtype=float)) if not isinstance(v, str) else None
    if a is None or a.ndim != 1 or a.size not in (1, 3):
        raise InputDataError(f"{name}: expected a number or (x, y, z) in mm, got {v!r}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise InputDataError(f"{name}: voxel sizes must be finite and > 0 mm, got {v!r}")
    return tuple(float(s) for s in (np.repeat(a, 3) if a.size == 1 else a))


def _nuclide(nuclide) -> Nuclide:
    try:
        return get_nuclide(nuclide)
    except InputDataError as exc:
        raise InputDataError(f"nuclide: {exc}") from None


def _maybe_scalar(a: np.ndarray, *inputs):
    return float(a) if all(np.ndim(i) == 0 for i in inputs) else a
