"""CT number (HU) to mass density (g/mL), piecewise linear calibration."""

from __future__ import annotations


import numpy as np

from ...checks import scalar as _scalar
from ...errors import InputDataError
from ._common import DEFAULT_MIN_DENSITY_G_PER_ML, _array, _maybe_scalar


#: Default CT calibration: (HU, density g/mL) points, piecewise linear, constant beyond the ends.
DEFAULT_HU_DENSITY_TABLE = ((-1000.0, 0.00121), (-100.0, 0.93), (0.0, 1.00), (40.0, 1.04),
                            (1000.0, 1.61), (3000.0, 2.79))


def _calibration_table(calibration) -> tuple[np.ndarray, np.ndarray]:
    if calibration is None:
        t = np.asarray(DEFAULT_HU_DENSITY_TABLE, dtype=float)
        return t[:, 0], t[:, 1]
    if isinstance(calibration, dict):
        hu = calibration.get("hu")
        rho = calibration.get("density_g_per_ml")
        if hu is None or rho is None:
            raise InputDataError("calibration: a dict needs keys 'hu' and 'density_g_per_ml'")
    else:
        t = np.asarray(calibration, dtype=float)
        if t.ndim != 2 or t.shape[1] != 2:
            raise InputDataError(f"calibration: expected (HU, density) pairs or a dict, got shape {t.shape}")
        hu, rho = t[:, 0], t[:, 1]
    hu = _array(hu, "calibration['hu']", allow_negative=True, ndim=1)
    rho = _array(rho, "calibration['density_g_per_ml']", ndim=1)
    if hu.size != rho.size or hu.size < 2:
        raise InputDataError("calibration: needs at least 2 points and as many densities as HU values")
    if np.any(np.diff(hu) <= 0):
        raise InputDataError("calibration: HU values must be strictly increasing")
    if np.any(np.diff(rho) < 0):
        raise InputDataError("calibration: densities must not decrease with HU")
    return hu, rho


def hu_to_density_g_per_ml(hu, calibration=None, min_density_g_per_ml: float = DEFAULT_MIN_DENSITY_G_PER_ML):
    """Mass density (g/mL) used for dose from CT numbers (HU), piecewise linear.

    ``calibration``: ``None`` (:data:`DEFAULT_HU_DENSITY_TABLE`), ``{"hu": [...],
    "density_g_per_ml": [...]}`` or a sequence of (HU, density) pairs; constant beyond the ends.
    The result is floored at ``min_density_g_per_ml`` (default 0.1 g/mL) so that air voxels do not
    produce huge doses. Returns a float array of the shape of ``hu`` (a float for a scalar).
    """
    a = _array(hu, "hu", allow_negative=True)
    floor = _scalar(min_density_g_per_ml, "min_density_g_per_ml", nonneg=True)
    xp, fp = _calibration_table(calibration)
    rho = np.maximum(np.interp(a, xp, fp), floor)
    return _maybe_scalar(rho, hu)
