"""Photon point kernels in water: attenuation and buildup (GP fit), energy absorbed in a sphere."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...checks import scalar as _scalar
from ..radionuclides import Nuclide
from ._common import SOFT_TISSUE_DENSITY_G_PER_ML, _DATA, _nuclide


@lru_cache(maxsize=1)
def _water_tables():
    return _read_csv(_DATA / "water_photon_coefficients.csv"), _read_csv(_DATA / "water_buildup_gp.csv")


def _read_csv(path: Path) -> np.ndarray:
    """Numeric rows of a shipped CSV table ('#' comments and one header row skipped)."""
    rows = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return np.array([[float(v) for v in ln.split(",")] for ln in rows[1:]])


def _loglog(E_MeV, x, y):
    return np.exp(np.interp(np.log(E_MeV), np.log(x), np.log(y)))


def _mu_over_rho(E_MeV):
    """(μ/ρ, μ_en/ρ) of water in cm²/g (log-log interpolation of the NIST table)."""
    att, _ = _water_tables()
    return _loglog(E_MeV, att[:, 0], att[:, 1]), _loglog(E_MeV, att[:, 0], att[:, 2])


def _gp_buildup(E_MeV: float, x):
    """G-P build-up factor of water at mean free paths ``x`` (coefficients interpolated in log E)."""
    _, gp = _water_tables()
    e = gp[:, 0]
    E = min(max(E_MeV, e[0]), e[-1])
    i = int(np.clip(np.searchsorted(e, E) - 1, 0, len(e) - 2))
    t = (math.log(E) - math.log(e[i])) / (math.log(e[i + 1]) - math.log(e[i]))
    b, c, a, xk, d = gp[i, 1:] * (1 - t) + gp[i + 1, 1:] * t
    x = np.minimum(np.asarray(x, dtype=float), 40.0)
    xs = np.maximum(x, 1e-12)
    K = c * xs ** a + d * (np.tanh(xs / xk - 2.0) - math.tanh(-2.0)) / (1.0 - math.tanh(-2.0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        B = np.where(np.abs(K - 1.0) < 1e-6, 1.0 + (b - 1.0) * xs, 1.0 + (b - 1.0) * (K ** xs - 1.0) / (K - 1.0))
    return np.where(x <= 0, 1.0, B)


@lru_cache(maxsize=4096)
def _photon_line_model(E_keV: float):
    """(kind, μ/ρ cm²/g, μ_en/ρ cm²/g, build-up normalisation) of one photon line in water."""
    from scipy.integrate import quad

    E = E_keV / 1000.0
    if E_keV < 1.0:
        return ("local", 0.0, 0.0, 1.0)
    mu, mu_en = (float(v) for v in _mu_over_rho(E))
    if E_keV < 15.0:
        return ("absorption", mu_en, mu_en, 1.0)
    ratio = mu_en / mu
    integral = quad(lambda x: ratio * float(_gp_buildup(E, x)) * math.exp(-x), 0.0, 40.0, limit=200)[0]
    integral += ratio * float(_gp_buildup(E, 40.0)) * math.exp(-40.0)
    return ("buildup", mu, mu_en, 1.0 / integral)


def _photon_radial_keV_per_mm(nuc: Nuclide, r_mm, density_g_per_ml: float) -> np.ndarray:
    """ε_γ(r): photon energy absorbed per mm of radius per decay (keV/mm) about a point source."""
    r = np.asarray(r_mm, dtype=float)
    out = np.zeros_like(r)
    rho_cm = density_g_per_ml / 10.0  # (cm²/g)·(g/cm³) = 1/cm -> ·0.1 = 1/mm
    for E_keV, y in nuc.photon_lines:
        kind, mu, mu_en, norm = _photon_line_model(float(E_keV))
        if kind == "local":
            continue
        mu_mm, mu_en_mm = mu * rho_cm, mu_en * rho_cm
        if kind == "absorption":
            out += E_keV * y * mu_en_mm * np.exp(-mu_en_mm * r)
        else:
            x = mu_mm * r
            out += E_keV * y * mu_en_mm * norm * _gp_buildup(E_keV / 1000.0, x) * np.exp(-x)
    return out


def _photon_local_keV(nuc: Nuclide) -> float:
    return float(sum(E * y for E, y in nuc.photon_lines if E < 1.0))


def photon_energy_absorbed_in_sphere_keV(nuclide="Lu-177", radius_mm: float = 50.0,
                                         density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML) -> float:
    """Photon energy per decay (keV) absorbed within ``radius_mm`` of a point source in an
    infinite water-like medium of ``density_g_per_ml``.

    By reciprocity this is also the photon energy per decay absorbed at the centre of a uniform
    spherical source of that radius (per unit activity concentration × mass): divide by the
    nuclide's photon energy for the ``photon_absorbed_fraction`` of :func:`led_dose_Gy`.
    """
    from scipy.integrate import quad

    nuc = _nuclide(nuclide)
    R = _scalar(radius_mm, "radius_mm", nonneg=True)
    rho = _scalar(density_g_per_ml, "density_g_per_ml", positive=True)
    total = _photon_local_keV(nuc)
    for E_keV, y in nuc.photon_lines:
        kind, mu, mu_en, norm = _photon_line_model(float(E_keV))
        if kind == "local":
            continue
        if kind == "absorption":
            total += E_keV * y * (1.0 - math.exp(-mu_en * rho / 10.0 * R))
        else:
            xR = min(mu * rho / 10.0 * R, 40.0)
            f = quad(lambda x: float(_gp_buildup(E_keV / 1000.0, x)) * math.exp(-x), 0.0, xR, limit=200)[0]
            total += E_keV * y * (mu_en / mu) * norm * f
    return float(total)
