"""Local energy deposition (LED): dose and dose rate from activity and mass; dose-rate maps passed through."""

from __future__ import annotations


import numpy as np

from ...checks import scalar as _scalar
from ...errors import InputDataError
from ..radionuclides import KEV_TO_J
from ._common import SOFT_TISSUE_DENSITY_G_PER_ML, _BQ_PER_MBQ, _S_PER_H, _array, _maybe_scalar, _nuclide


def led_dose_factor_Gy_g_per_MBq_h(nuclide="Lu-177", photon_absorbed_fraction: float = 0.0) -> float:
    """LED dose per time-integrated activity per mass, Gy·g/(MBq·h) (177Lu: 0.0853).

    Energy = electrons + alphas + ``photon_absorbed_fraction`` × photon energy per decay.
    """
    nuc = _nuclide(nuclide)
    phi = _scalar(photon_absorbed_fraction, "photon_absorbed_fraction", lo=0.0, hi=1.0)
    energy_J = (nuc.local_deposition_keV + phi * nuc.photon_energy_keV) * KEV_TO_J
    return energy_J * _BQ_PER_MBQ * _S_PER_H * 1000.0


def _mass_g(mass_g, density_g_per_ml, voxel_volume_ml):
    if mass_g is not None:
        if density_g_per_ml is not None:
            raise InputDataError("mass_g: give either mass_g or density_g_per_ml (with voxel_volume_ml), not both")
        m = _array(mass_g, "mass_g")
        if np.any(m <= 0):
            raise InputDataError(f"mass_g: masses must be > 0 g ({int((m <= 0).sum())} value(s) are not)")
        return m
    if voxel_volume_ml is None:
        raise InputDataError("mass_g: give mass_g (g), or voxel_volume_ml (mL) with density_g_per_ml "
                             f"(default {SOFT_TISSUE_DENSITY_G_PER_ML} g/mL)")
    vol = _scalar(voxel_volume_ml, "voxel_volume_ml", positive=True)
    rho = (np.asarray(SOFT_TISSUE_DENSITY_G_PER_ML) if density_g_per_ml is None
           else _array(density_g_per_ml, "density_g_per_ml"))
    if np.any(rho <= 0):
        raise InputDataError("density_g_per_ml: densities must be > 0 g/mL (use hu_to_density_g_per_ml, which "
                             "floors air)")
    return rho * vol


def _led(values, name, mass_g, nuclide, density_g_per_ml, voxel_volume_ml, photon_absorbed_fraction):
    a = _array(values, name)
    m = _mass_g(mass_g, density_g_per_ml, voxel_volume_ml)
    try:
        out = np.broadcast_arrays(a, m)
    except ValueError:
        raise InputDataError(f"mass_g/density_g_per_ml: shape {m.shape} does not match {name} shape {a.shape}") from None
    factor = led_dose_factor_Gy_g_per_MBq_h(nuclide, photon_absorbed_fraction)
    d = out[0] * factor / out[1]
    return _maybe_scalar(d, values, m)


def led_dose_Gy(tia_MBq_h, mass_g=None, nuclide="Lu-177", *, density_g_per_ml=None, voxel_volume_ml=None,
                photon_absorbed_fraction: float = 0.0):
    """Absorbed dose (Gy) by local energy deposition of time-integrated activity (MBq·h).

    ``tia_MBq_h``: scalar (a VOI) or array (voxels). Mass: ``mass_g`` (scalar or array of the
    same shape), or ``voxel_volume_ml`` with ``density_g_per_ml`` (scalar or array; default
    soft tissue 1.04 g/mL). ``photon_absorbed_fraction`` adds that fraction of the photon energy.
    """
    return _led(tia_MBq_h, "tia_MBq_h", mass_g, nuclide, density_g_per_ml, voxel_volume_ml, photon_absorbed_fraction)


def led_dose_rate_Gy_per_h(activity_MBq, mass_g=None, nuclide="Lu-177", *, density_g_per_ml=None,
                           voxel_volume_ml=None, photon_absorbed_fraction: float = 0.0):
    """Absorbed dose rate (Gy/h) by local energy deposition of an activity (MBq); see :func:`led_dose_Gy`."""
    return _led(activity_MBq, "activity_MBq", mass_g, nuclide, density_g_per_ml, voxel_volume_ml,
                photon_absorbed_fraction)


def voi_led_dose_Gy(tia_MBq_h: float, mass_g: float, nuclide="Lu-177", photon_absorbed_fraction: float = 0.0) -> float:
    """Mean absorbed dose (Gy) of a VOI from its time-integrated activity (MBq·h) and mass (g), LED."""
    tia = _scalar(tia_MBq_h, "tia_MBq_h", nonneg=True)
    m = _scalar(mass_g, "mass_g", positive=True)
    return tia * led_dose_factor_Gy_g_per_MBq_h(nuclide, photon_absorbed_fraction) / m


_DOSE_RATE_UNITS = {"gy/h": 1.0, "mgy/h": 1.0e-3, "cgy/h": 1.0e-2, "gy/s": 3600.0, "mgy/s": 3.6}


def dose_rate_passthrough(dose_rate, units: str = "Gy/h") -> np.ndarray:
    """An absorbed-dose-rate map made elsewhere (e.g. Monte Carlo), returned in Gy/h as float64.

    ``units``: "Gy/h" (unchanged), "mGy/h", "cGy/h", "Gy/s" or "mGy/s". Activity units are refused.
    """
    if not isinstance(units, str):
        raise InputDataError(f"units: expected a string such as 'Gy/h', got {units!r}")
    key = units.replace(" ", "").lower()
    if key not in _DOSE_RATE_UNITS:
        hint = (" (an activity unit: use vsv_dose_rate_Gy_per_h or led_dose_rate_Gy_per_h)"
                if "bq" in key or "count" in key else "")
        raise InputDataError(f"units: {units!r} is not a dose-rate unit{hint}; expected one of Gy/h, mGy/h, cGy/h, "
                             "Gy/s, mGy/s")
    return _array(dose_rate, "dose_rate") * _DOSE_RATE_UNITS[key]
