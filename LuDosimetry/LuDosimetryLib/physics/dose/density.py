"""CT number (HU) to mass density (g/mL), piecewise linear calibration.

Default calibration (:data:`DEFAULT_HU_DENSITY_TABLE`): the stoichiometric calibration of
Schneider, Bortfeld and Schlegel, Phys Med Biol 2000 (45:459), body tissues of ICRU Report 44
(1989) / Woodard and White, as tabulated by GATE (``Schneider2000DensitiesTable``): air −1000 HU
0.00121, adipose −98 HU 0.93, soft tissue 14 HU 1.03, 23 HU 1.031 and 100 HU 1.1199, bone
1600 HU 1.9642 and 3000 HU 2.8 g/mL. Between 23 and 100 HU (where GATE's table is a straight
line) the ICRU 44 soft tissues are used: skeletal muscle 1.05 g/mL at 40 HU, liver 1.06 g/mL at
60 HU, so soft tissue of 40–60 HU gets 1.05–1.06 g/mL (the earlier table put it 1–2 % light at
1.04). Another change: Schneider's table steps down from 1.1199 (100 HU) to
1.0762 (101 HU) where the bone line starts; here the density may not decrease, so it stays at
1.1199 g/mL from 100 HU until Schneider's bone line reaches that value (≈ 175 HU) and follows the
bone line from there (at most 4 % denser than Schneider's between 101 and 175 HU; no effect on
soft tissue). Calibrate per scanner and kVp for clinical use.
"""

from __future__ import annotations


import numpy as np

from ...checks import scalar as _scalar
from ...errors import InputDataError
from ._common import DEFAULT_MIN_DENSITY_G_PER_ML, _array, _maybe_scalar


#: Default CT calibration: (HU, density g/mL) points, piecewise linear, constant beyond the ends.
_SCHNEIDER_BONE_LINE = ((101.0, 1.0762), (1600.0, 1.9642))  # Schneider 2000 (GATE table): bone line start/end
#: HU where Schneider's bone line reaches the soft-tissue end value 1.1199 g/mL (≈ 175 HU)
_BONE_JOIN_HU = _SCHNEIDER_BONE_LINE[0][0] + (1.1199 - _SCHNEIDER_BONE_LINE[0][1]) * (
    (_SCHNEIDER_BONE_LINE[1][0] - _SCHNEIDER_BONE_LINE[0][0]) / (_SCHNEIDER_BONE_LINE[1][1] - _SCHNEIDER_BONE_LINE[0][1]))
#: Schneider et al. 2000 (Phys Med Biol 45:459) as tabulated by GATE, made monotone (see the module docstring).
#: ICRU 44 soft tissue between Schneider's 23 and 100 HU points: skeletal muscle 1.05 g/mL at 40 HU, liver 1.06 g/mL
#: at 60 HU (Schneider et al. 2000: soft tissue of 40–60 HU ≈ 1.05–1.06 g/mL).
_ICRU44_SOFT_TISSUE = ((40.0, 1.05), (60.0, 1.06))
DEFAULT_HU_DENSITY_TABLE = ((-1000.0, 0.00121), (-98.0, 0.93), (14.0, 1.03), (23.0, 1.031), *_ICRU44_SOFT_TISSUE,
                            (100.0, 1.1199), (_BONE_JOIN_HU, 1.1199), (1600.0, 1.9642), (3000.0, 2.8))


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
