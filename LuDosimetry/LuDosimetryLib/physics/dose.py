"""Activity → absorbed dose: local energy deposition, voxel S-value convolution, DVH statistics.

Conventions
-----------
* Arrays are numpy ``[z, y, x]`` as returned by ``SimpleITK.GetArrayFromImage``; voxel sizes are
  ``(x, y, z)`` in mm as returned by ``Image.GetSpacing()`` (a scalar means cubic voxels).
* Activity per voxel in MBq (``_MBq``), time-integrated activity in MBq·h (``_MBq_h``), dose in
  Gy, dose rate in Gy/h, density in g/mL (= g/cm³), masses in g, kernels in mGy/(MBq·s).
* Every public function validates its input and raises
  :class:`~LuDosimetryLib.errors.InputDataError` naming the argument at fault.

Density from CT (``hu_to_density_g_per_ml``)
--------------------------------------------
Piecewise-linear calibration HU → mass density. Default table (:data:`DEFAULT_HU_DENSITY_TABLE`,
a bilinear-type calibration in the spirit of Schneider et al. 1996/2000; calibrate per scanner
and kVp for clinical use): air −1000 HU 0.00121, adipose −100 HU 0.93, water 0 HU 1.00, soft
tissue 40 HU 1.04, bone line 1000 HU 1.61 and 3000 HU 2.79 g/mL; constant beyond the ends.
The result is floored at ``min_density_g_per_ml`` (default 0.1 g/mL, i.e. about −900 HU):
the density returned is the one *used for dose*, so voxels of air (SPECT spill-out outside the
body, bowel gas) get at most 10× the soft-tissue dose per unit activity instead of ~850×,
while lung (≈0.2–0.35 g/mL) is unaffected. Pass ``min_density_g_per_ml=0`` to disable.

Local energy deposition (LED)
-----------------------------
D (Gy) = Ã (MBq·h) × 3600 s/h × 10⁶ Bq/MBq × E (J) / m (kg), with E the non-penetrating energy
per decay (electrons: β, conversion and Auger electrons, plus alphas) from ICRP-107
(:mod:`radionuclides`): for 177Lu 147.9 keV, 0.0853 Gy·g/(MBq·h). Photons are assumed to escape
(EANM 2022 convention); ``photon_absorbed_fraction`` adds a fraction φ of the photon energy
(35.1 keV for 177Lu) locally, e.g. φ from :func:`photon_energy_absorbed_in_sphere_keV` for a
large uniform region. The same formula maps activity (MBq) to dose rate (Gy/h).

Voxel S-value kernels (``voxel_s_value_kernel``)
------------------------------------------------
Generated from physics for soft tissue modelled as water of density
:data:`SOFT_TISSUE_DENSITY_G_PER_ML` = 1.04 g/mL (ICRU soft tissue):

* Electrons (β spectrum, conversion and Auger electrons of ICRP-107): radial energy deposition
  about a point source from a condensed-history Monte Carlo in water, run once per nuclide
  (deterministic seed, cached): continuous slowing down with the Bethe collision stopping power
  (I = 75 eV, Sternheimer density effect; radiative losses neglected, < 1 % below 2 MeV in
  water), energy steps of 4 %, Gaussian multiple scattering with the Highland scattering angle
  evaluated over the residual CSDA range. Electrons below 10 keV (range < 3 µm), and alphas,
  deposit at the origin. Checks (tests): CSDA ranges within 1.5 % of NIST ESTAR; X90 of 90Y in
  water 5.2 mm (Berger 1971: 5.3 mm); against the 177Lu 2.21 mm Monte Carlo kernel of
  Lanconelli et al. 2012 the source voxel absorbs 85.9 % vs 84.2 % of the electron energy (the
  energy reaching the face neighbours is ~10 % lower: no straggling or delta rays here).
* Photons (γ, X, annihilation lines): point kernel
  ε(r) = Σ E·y·μ_en·B(μr)·e^(−μr) (energy per mm of radius per decay) with NIST μ and μ_en of
  water (``data/water_photon_coefficients.csv``) and the ANSI/ANS-6.4.3 G-P build-up factors of
  water (``data/water_buildup_gp.csv``), each line's B renormalised so that an infinite medium
  absorbs exactly the emitted energy. Lines below 15 keV use B = 1 with μ_en as attenuation
  (pure absorption); lines below 1 keV deposit at the origin. Scattering beyond the kernel
  extent and any body outline are ignored (an infinite soft-tissue medium). Check: 177Lu
  photon-region S-values within 5 % of Lanconelli et al. 2012.
* Source-to-target voxel averaging: S(c) = (1/ρ)∫T(u − c)·ε(|u|)/(4π|u|²)du with T the
  separable "tent" density of the difference of two points uniform in the source and target
  voxels (this conserves energy exactly: Σ S·m = energy absorbed in the kernel extent). Near the
  origin (r < 4 voxel sizes) the integral is done per radius with a spherical quadrature of
  directions (handles the 1/r² singularity); farther out with sub-voxel sampling (4³ source ×
  4³ target points per voxel pair), blended smoothly between 2 and 4 voxel sizes.
* Default extent: half-width of ``photon_radius_mm`` = 100 mm per axis (43³ voxels at 4.8 mm).
  Photon energy absorbed farther away is not counted (in a patient part of it escapes anyway).

``load_lanconelli_kernel`` reads user-supplied octant tables (i, j, k, S in mGy/(MBq·s)) of the
Lanconelli et al. 2012 database and mirrors them into the full kernel.

VSV convolution (``vsv_dose_rate_Gy_per_h``)
--------------------------------------------
Dose rate = activity ⊛ kernel by FFT (``scipy.signal.fftconvolve``, zero padding, "same"
output grid). Density scaling (optional): the kernel is for soft tissue ρ_t = 1.04 g/mL; with a
density map the dose in each voxel is multiplied by ρ_t/max(ρ_voxel, floor) — the same energy
deposited in a lighter or heavier mass (first-order heterogeneity correction, exact for the
locally absorbed electron part). An absorbed-dose-rate map already in Gy/h (e.g. Monte Carlo)
skips this step: :func:`dose_rate_passthrough`.

VOI statistics (``voi_dose_statistics``)
----------------------------------------
Mean, min, max, D90/D50/D10 (the highest dose d such that at least x % of the VOI volume, or
mass when voxel masses are given, receives ≥ d), the cumulative DVH and the equivalent uniform
dose of O'Donoghue 1999 (J Nucl Med 40:1337): EUD = −ln(Σ w_i e^(−α D_i)) / α, the uniform dose
giving the same expected surviving fraction under linear (α) cell kill, w_i the volume or mass
fractions; α (Gy⁻¹) defaults to 0.3 (set it per tissue; the EUD → mean dose as α → 0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..checks import scalar as _scalar
from ..errors import InputDataError
from ..physics.radionuclides import KEV_TO_J, Nuclide, get_nuclide

__all__ = [
    "SOFT_TISSUE_DENSITY_G_PER_ML", "DEFAULT_MIN_DENSITY_G_PER_ML", "DEFAULT_HU_DENSITY_TABLE",
    "hu_to_density_g_per_ml", "led_dose_factor_Gy_g_per_MBq_h", "led_dose_Gy", "led_dose_rate_Gy_per_h",
    "voi_led_dose_Gy", "photon_energy_absorbed_in_sphere_keV", "electron_energy_radius_mm",
    "VoxelSValueKernel", "voxel_s_value_kernel", "load_lanconelli_kernel", "vsv_dose_rate_Gy_per_h",
    "vsv_dose_Gy", "dose_rate_passthrough", "DoseStatistics", "voi_dose_statistics",
]

#: Density of soft tissue assumed by the generated kernels (ICRU soft tissue), g/mL.
SOFT_TISSUE_DENSITY_G_PER_ML = 1.04
#: Floor of the density used for dose (g/mL), see the module docstring.
DEFAULT_MIN_DENSITY_G_PER_ML = 0.1
#: Default CT calibration: (HU, density g/mL) points, piecewise linear, constant beyond the ends.
DEFAULT_HU_DENSITY_TABLE = ((-1000.0, 0.00121), (-100.0, 0.93), (0.0, 1.00), (40.0, 1.04),
                            (1000.0, 1.61), (3000.0, 2.79))

_DATA = Path(__file__).resolve().parent / "data"
_S_PER_H = 3600.0
_BQ_PER_MBQ = 1.0e6
#: keV per g per decay -> mGy/(MBq·s): 1.602e-16 J/keV * 1e3 g/kg * 1e6 Bq/MBq * 1e3 mGy/Gy
_KEV_PER_G_TO_MGY_PER_MBQ_S = KEV_TO_J * 1.0e3 * 1.0e6 * 1.0e3
_ELECTRON_REST_MeV = 0.51099895
_KERNEL_CACHE_SIZE = 16


# ----------------------------------------------------------------------------- validation helpers

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


# ----------------------------------------------------------------------------- CT density

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


# ----------------------------------------------------------------------------- local deposition

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


# ----------------------------------------------------------------------------- photon physics

@lru_cache(maxsize=1)
def _water_tables():
    return _read_csv(_DATA / "water_photon_coefficients.csv"), _read_csv(_DATA / "water_buildup_gp.csv")


def _read_csv(path: Path) -> np.ndarray:
    """Numeric rows of a shipped CSV table ('#' comments and one header row skipped)."""
    rows = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
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


# ----------------------------------------------------------------------------- electron transport

_MC_ELECTRONS = 30000
_MC_STEP_FRACTION = 0.04
_MC_CUTOFF_MeV = 0.010
_MC_BINS = 500
_MC_SEED = 20120101


def _bethe_collision_stopping_power(T_MeV):
    """Collision stopping power of water for electrons (MeV cm²/g), Bethe–Rohrlich–Carlson (ICRU 37)
    with I = 75 eV and the Sternheimer density effect (water: C̄ 3.5017, x0 0.24, x1 2.8004,
    a 0.09116, m 3.4773)."""
    me = _ELECTRON_REST_MeV
    tau = np.asarray(T_MeV, dtype=float) / me
    g = tau + 1.0
    b2 = 1.0 - 1.0 / g ** 2
    x = np.log10(np.sqrt(g ** 2 - 1.0))
    c_bar, x0, x1, a, m = 3.5017, 0.2400, 2.8004, 0.09116, 3.4773
    delta = np.where(x >= x1, 4.6052 * x - c_bar, np.where(x >= x0, 4.6052 * x - c_bar + a * (x1 - x) ** m, 0.0))
    F = 1.0 - b2 + (tau ** 2 / 8.0 - (2.0 * tau + 1.0) * math.log(2.0)) / (tau + 1.0) ** 2
    k = 0.5 * 0.307075 * 0.555087  # 2π r_e² m_e c² N_A × (Z/A of water), MeV cm²/g
    I_over_me = 75.0e-6 / me
    return k / b2 * (np.log(tau ** 2 * (tau + 2.0) / (2.0 * I_over_me ** 2)) + F - delta)


@lru_cache(maxsize=1)
def _csda_table():
    """CSDA range of electrons in water (g/cm²) on a log energy grid 1 keV – 20 MeV."""
    from scipy.integrate import cumulative_trapezoid

    E = np.geomspace(1.0e-3, 20.0, 3000)
    inv_s = 1.0 / _bethe_collision_stopping_power(E)
    R = cumulative_trapezoid(inv_s, E, initial=0.0) + 0.5 * E[0] * inv_s[0]  # ~ linear below 1 keV
    return np.log(E), np.log(R)


def _csda_range_g_per_cm2(E_MeV):
    lE, lR = _csda_table()
    return np.exp(np.interp(np.log(np.maximum(E_MeV, 1.0e-3)), lE, lR))


def _transport_electrons(E0_MeV: np.ndarray, weight_keV: np.ndarray, edges: np.ndarray, rng) -> np.ndarray:
    """Condensed-history transport of electrons from the origin; returns the energy (keV per decay)
    deposited in the radial bins ``edges`` (g/cm²). Each electron carries ``weight_keV`` in total."""
    n = E0_MeV.size
    me = _ELECTRON_REST_MeV
    X0 = 36.08  # radiation length of water, g/cm²
    pos = np.zeros((n, 3))
    u = np.zeros((n, 3))
    u[:, 2] = 1.0  # point source: the radial distribution does not depend on the start direction
    E = E0_MeV.astype(float).copy()
    w = weight_keV / E0_MeV  # keV per decay per MeV deposited
    hist = np.zeros(edges.size - 1)
    nb = edges.size - 1
    inv_dr = nb / edges[-1]
    idx = np.arange(n)
    while idx.size:
        e = E[idx]
        dE = _MC_STEP_FRACTION * e
        last = (e - dE) < _MC_CUTOFF_MeV
        dE = np.where(last, e, dE)
        s = _csda_range_g_per_cm2(e) - np.where(last, 0.0, _csda_range_g_per_cm2(e - dE))
        em = e - 0.5 * dE
        p = np.sqrt(em * (em + 2.0 * me))
        beta2 = (p / (em + me)) ** 2
        # Highland angle over the residual range, turned into a scattering power per g/cm²
        log_term = np.maximum(1.0 + 0.038 * np.log(_csda_range_g_per_cm2(em) / (X0 * beta2)), 0.3)
        theta0 = 13.6 / (p * np.sqrt(beta2)) * log_term * np.sqrt(s / X0)
        P = pos[idx] + u[idx] * (0.5 * s)[:, None]
        r = np.sqrt(np.einsum("ij,ij->i", P, P))
        b = np.minimum((r * inv_dr).astype(np.int64), nb - 1)
        hist += np.bincount(b, weights=dE * w[idx], minlength=nb)
        # deflection: polar angle from a 2-D Gaussian, uniform azimuth
        th = theta0 * np.sqrt(-2.0 * np.log(1.0 - rng.random(idx.size)))
        ph = rng.random(idx.size) * 2.0 * np.pi
        uu = u[idx]
        ct, st, cp, sp = np.cos(th), np.sin(th), np.cos(ph), np.sin(ph)
        wz = uu[:, 2]
        sq = np.sqrt(np.maximum(1.0 - wz ** 2, 0.0))
        safe = sq > 1e-8
        sqs = np.where(safe, sq, 1.0)
        nx = np.where(safe, uu[:, 0] * ct + st * (uu[:, 0] * wz * cp - uu[:, 1] * sp) / sqs, st * cp)
        ny = np.where(safe, uu[:, 1] * ct + st * (uu[:, 1] * wz * cp + uu[:, 0] * sp) / sqs, st * sp)
        nz = np.where(safe, wz * ct - sq * st * cp, np.sign(wz + 1e-300) * ct)
        nu = np.stack([nx, ny, nz], axis=1)
        nu /= np.linalg.norm(nu, axis=1)[:, None]
        u[idx] = nu
        pos[idx] = P + nu * (0.5 * s)[:, None]
        E[idx] = e - dE
        idx = idx[~last]
    return hist


def _allocate(n_total: int, shares: np.ndarray, minimum: int = 200) -> np.ndarray:
    shares = np.asarray(shares, dtype=float)
    n = np.where(shares > 0, np.maximum(minimum, np.floor(n_total * shares / shares.sum())), 0).astype(int)
    return n


@lru_cache(maxsize=16)
def _electron_radial_deposition(canonical: str):
    """Radial energy deposition (keV per decay) of the nuclide's electrons and alphas about a point
    source in water: (bin edges in g/cm², energy per bin). Bin 0 also holds the energy of
    electrons below the transport cut-off and of alphas."""
    nuc = get_nuclide(canonical)
    cut_keV = _MC_CUTOFF_MeV * 1000.0
    local_keV = nuc.alpha_energy_keV
    beta_keV = nuc.beta_minus_energy_keV + nuc.beta_plus_energy_keV
    lines = [(E, y) for E, y in nuc.electron_lines if E >= cut_keV]
    local_keV += sum(E * y for E, y in nuc.electron_lines if E < cut_keV)
    e_max_keV = max([E for E, _ in lines] + [nuc.beta_max_energy_keV, cut_keV])
    r_max = 1.05 * float(_csda_range_g_per_cm2(e_max_keV / 1000.0))
    edges = np.linspace(0.0, r_max, _MC_BINS + 1)
    line_keV = np.array([E * y for E, y in lines])
    comp_shares = np.array([beta_keV if nuc.beta_spectrum_keV else 0.0, line_keV.sum()])
    n_beta, n_lines = _allocate(_MC_ELECTRONS, comp_shares) if comp_shares.sum() > 0 else (0, 0)
    E0, wt = [], []
    if n_beta:
        e, dens = (np.asarray(v, dtype=float) for v in nuc.beta_spectrum_keV)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(e))])
        q = (np.arange(n_beta) + 0.5) / n_beta
        eb = np.interp(q, cdf / cdf[-1], e)
        low = eb < cut_keV
        # stratified samples: each carries the same share of the tabulated mean beta energy
        wb = eb * (beta_keV / eb.sum())
        local_keV += wb[low].sum()
        E0.append(eb[~low] / 1000.0)
        wt.append(wb[~low])
    if n_lines:
        counts = np.maximum(1, np.round(n_lines * line_keV / line_keV.sum())).astype(int)
        for (E, y), k in zip(lines, counts):
            E0.append(np.full(k, E / 1000.0))
            wt.append(np.full(k, E * y / k))
    hist = np.zeros(_MC_BINS)
    if E0:
        rng = np.random.default_rng(_MC_SEED)
        hist = _transport_electrons(np.concatenate(E0), np.concatenate(wt), edges, rng)
    hist[0] += local_keV
    # exact bookkeeping: the total equals the ICRP-107 electron + alpha energy per decay
    total = nuc.local_deposition_keV
    if hist.sum() > 0:
        hist *= total / hist.sum()
    hist.setflags(write=False)
    edges.setflags(write=False)
    return edges, hist


def electron_energy_radius_mm(nuclide="Lu-177", fraction: float = 0.9, density_g_per_ml: float = 1.0) -> float:
    """Radius (mm) of the sphere about a point source that absorbs ``fraction`` of the electron
    energy (X90 for 0.9) in water of ``density_g_per_ml``, from the kernel's electron transport."""
    nuc = _nuclide(nuclide)
    f = _scalar(fraction, "fraction", lo=0.0, hi=1.0)
    rho = _scalar(density_g_per_ml, "density_g_per_ml", positive=True)
    edges, hist = _electron_radial_deposition(nuc.name)
    c = np.concatenate([[0.0], np.cumsum(hist)]) / max(hist.sum(), 1e-300)
    return float(np.interp(f, c, edges) / rho * 10.0)


# ----------------------------------------------------------------------------- kernels

@dataclass(frozen=True, eq=False)
class VoxelSValueKernel:
    """A voxel S-value kernel: mean absorbed dose rate in each target voxel per unit activity
    in the central source voxel, mGy/(MBq·s).

    values_mGy_per_MBq_s: odd-sized array ``[z, y, x]`` (read-only), centre = source voxel.
    voxel_size_mm: ``(x, y, z)`` in mm. tissue_density_g_per_ml: density the kernel is for.
    components: "electrons+photons", "electrons" or "photons". source: provenance.
    """

    values_mGy_per_MBq_s: np.ndarray
    voxel_size_mm: tuple
    nuclide: str
    tissue_density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML
    components: str = "electrons+photons"
    source: str = ""
    notes: tuple = field(default_factory=tuple)

    @property
    def shape(self) -> tuple:
        return self.values_mGy_per_MBq_s.shape

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.voxel_size_mm)) / 1000.0

    @property
    def voxel_mass_g(self) -> float:
        return self.voxel_volume_ml * self.tissue_density_g_per_ml

    def absorbed_energy_per_decay_keV(self) -> float:
        """Σ S × voxel mass, as energy per decay (keV): what the kernel deposits in its extent."""
        return float(self.values_mGy_per_MBq_s.sum() * self.voxel_mass_g / _KEV_PER_G_TO_MGY_PER_MBQ_S)


def _fibonacci_directions(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = math.pi * (1.0 + 5.0 ** 0.5) * i
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def _blend_weight(r, r1, r2):
    """1 below r1, 0 above r2, raised-cosine between: the near/far split of the point kernel."""
    t = np.clip((np.asarray(r, dtype=float) - r1) / (r2 - r1), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def _near_part(radii_mm, energy_keV, h, half, rng, n_dirs):
    """Σ_k E_k·⟨T(r_k·d − c)⟩_d over directions, accumulated on the full kernel grid (keV/mm³)."""
    hx, hy, hz = h
    nx, ny, nz = half
    shape = (2 * nz + 1, 2 * ny + 1, 2 * nx + 1)
    acc = np.zeros(int(np.prod(shape)))
    dirs = _fibonacci_directions(n_dirs)
    from scipy.spatial.transform import Rotation

    keep = energy_keV > 0
    radii_mm, energy_keV = radii_mm[keep], energy_keV[keep]
    if radii_mm.size == 0:
        return acc.reshape(shape)
    rots = Rotation.random(radii_mm.size, random_state=rng.integers(2 ** 31)).as_matrix()
    chunk = max(1, 400000 // n_dirs)
    V = hx * hy * hz
    for s in range(0, radii_mm.size, chunk):
        R = rots[s:s + chunk]
        P = np.einsum("kab,nb->kna", R, dirs) * radii_mm[s:s + chunk, None, None]
        W = np.broadcast_to((energy_keV[s:s + chunk] / (n_dirs * V))[:, None], P.shape[:2]).ravel()
        P = P.reshape(-1, 3)
        idx_w = []
        for a, (ha, na) in enumerate(((hx, nx), (hy, ny), (hz, nz))):
            t = P[:, a] / ha
            i0 = np.floor(t)
            f = t - i0
            idx_w.append(((i0.astype(np.int64) + na, 1.0 - f), (i0.astype(np.int64) + 1 + na, f)))
        for (ix, wx) in idx_w[0]:
            for (iy, wy) in idx_w[1]:
                for (iz, wz) in idx_w[2]:
                    ok = (ix >= 0) & (ix <= 2 * nx) & (iy >= 0) & (iy <= 2 * ny) & (iz >= 0) & (iz <= 2 * nz)
                    flat = (iz[ok] * shape[1] + iy[ok]) * shape[2] + ix[ok]
                    acc += np.bincount(flat, weights=(W * wx * wy * wz)[ok], minlength=acc.size)
    return acc.reshape(shape)


def _far_part(func, h, half, r1, n_sub=4):
    """∫T(u − c)·f(|u|)du by sub-voxel sampling for every kernel voxel (octant, then mirrored);
    ``func(r_mm)`` is the smooth far part of the point kernel (keV/mm³)."""
    nx, ny, nz = half
    k = np.arange(-(n_sub - 1), n_sub)
    wk = (n_sub - np.abs(k)) / n_sub ** 2
    offs = [k * (ha / n_sub) for ha in h]
    out = np.zeros((nz + 1, ny + 1, nx + 1))
    cx, cy, cz = (np.arange(n + 1) * ha for n, ha in zip(half, h))
    diag = 0.5 * math.sqrt(sum((2 * ha) ** 2 for ha in h))  # farthest sub-sample from the voxel centre
    for iz in range(nz + 1):
        Z = cz[iz] + offs[2]  # (q,)
        for iy in range(ny + 1):
            Y = cy[iy] + offs[1]
            centre_r = np.sqrt(cx ** 2 + cy[iy] ** 2 + cz[iz] ** 2)
            cols = np.nonzero(centre_r + diag > r1)[0]
            if cols.size == 0:
                continue
            X = cx[cols][:, None] + offs[0][None, :]  # (c, q)
            r2 = (X[:, :, None, None] ** 2 + Y[None, None, :, None] ** 2 + Z[None, None, None, :] ** 2)
            vals = func(np.sqrt(r2))
            w = wk[:, None, None] * wk[None, :, None] * wk[None, None, :]
            out[iz, iy, cols] = np.einsum("cqrs,qrs->c", vals, w)
    full = np.zeros((2 * nz + 1, 2 * ny + 1, 2 * nx + 1))
    full[nz:, ny:, nx:] = out
    full[:nz, :, :] = full[2 * nz:nz:-1, :, :]
    full[:, :ny, :] = full[:, 2 * ny:ny:-1, :]
    full[:, :, :nx] = full[:, :, 2 * nx:nx:-1]
    return full


def _symmetrise(a: np.ndarray) -> np.ndarray:
    return (a + a[::-1] + a[:, ::-1] + a[:, :, ::-1] + a[::-1, ::-1] + a[::-1, :, ::-1] + a[:, ::-1, ::-1]
            + a[::-1, ::-1, ::-1]) / 8.0


def _half_sizes(size_voxels, h, photon_radius_mm, electron_range_mm):
    if size_voxels is None:
        # a target voxel at offset n (voxels) can get electron dose only if (n - 1)·h < range
        extent = max(photon_radius_mm, electron_range_mm)
        return tuple(int(math.ceil(extent / ha - 1e-9)) for ha in h)
    s = np.atleast_1d(np.asarray(size_voxels))
    if s.ndim != 1 or s.size not in (1, 3) or not np.all(np.mod(s, 1) == 0):
        raise InputDataError(f"size_voxels: expected an odd integer or 3 odd integers (x, y, z), got {size_voxels!r}")
    s = np.repeat(s, 3) if s.size == 1 else s
    if np.any(s < 1) or np.any(s % 2 == 0):
        raise InputDataError(f"size_voxels: kernel sizes must be odd and >= 1, got {size_voxels!r}")
    return tuple(int(v) // 2 for v in s)


@lru_cache(maxsize=_KERNEL_CACHE_SIZE)
def _build_kernel(name, h, half, density, electrons, photons):
    nuc = get_nuclide(name)
    rng = np.random.default_rng(_MC_SEED + 1)
    rho_mm = density / 1000.0  # g/mm³
    hmax, hmin = max(h), min(h)
    r1, r2 = 2.0 * hmax, 4.0 * hmax
    n_dirs = int(min(60000, max(3000, 250.0 * (r2 / hmin) ** 2)))
    near = np.zeros((2 * half[2] + 1, 2 * half[1] + 1, 2 * half[0] + 1))
    # far part of the point kernel, tabulated on a fine radial grid out to the kernel corners
    r_corner = math.sqrt(sum(((n + 1) * ha) ** 2 for n, ha in zip(half, h)))
    r_tab = np.linspace(0.0, r_corner, int(min(200000, math.ceil(r_corner / (hmin / 20.0)))) + 2)
    eps_far = np.zeros_like(r_tab)  # keV per mm of radius per decay
    if electrons:
        edges_g, e_keV = _electron_radial_deposition(nuc.name)
        edges = np.asarray(edges_g) / density * 10.0  # g/cm² -> mm
        mid = 0.5 * (edges[1:] + edges[:-1])
        wnear = _blend_weight(mid, r1, r2)
        radii = mid.copy()
        radii[0] = 0.0  # bin 0 (local deposits) at the origin
        near += _near_part(radii, np.asarray(e_keV) * wnear, h, half, rng, n_dirs)
        if np.any(wnear < 1.0):
            dens_per_mm = np.asarray(e_keV) / np.diff(edges)
            eps_far += np.where(r_tab < edges[-1], np.interp(r_tab, mid, dens_per_mm), 0.0)
    if photons and nuc.photon_lines:
        dr = hmin / 10.0  # ε_γ is smooth; this resolves the tent functions
        rp = (np.arange(int(math.ceil(r2 / dr))) + 0.5) * dr
        eps = _photon_radial_keV_per_mm(nuc, rp, density) * dr * _blend_weight(rp, r1, r2)
        eps[0] += _photon_local_keV(nuc)
        near += _near_part(rp, eps, h, half, rng, n_dirs)
        eps_far += _photon_radial_keV_per_mm(nuc, r_tab, density)
    values = _symmetrise(near)
    if np.any(eps_far > 0):
        def far(r):
            rs = np.maximum(r, 1e-9)
            return (1.0 - _blend_weight(rs, r1, r2)) * np.interp(rs, r_tab, eps_far) / (4.0 * math.pi * rs ** 2)

        values = values + _far_part(far, h, half, r1)
    values = values / rho_mm * _KEV_PER_G_TO_MGY_PER_MBQ_S
    values.setflags(write=False)
    comps = "+".join(c for c, on in (("electrons", electrons), ("photons", photons)) if on)
    return VoxelSValueKernel(
        values_mGy_per_MBq_s=values, voxel_size_mm=h, nuclide=nuc.name, tissue_density_g_per_ml=density,
        components=comps,
        source="generated: ICRP-107 spectra, electron condensed-history transport in water, photon point kernel "
               "(NIST mu/mu_en, ANS-6.4.3 G-P build-up), source/target voxel averaging",
        notes=(f"extent +/-{half} voxels (x, y, z)", f"near/far blend {r1:.3g}-{r2:.3g} mm"))


def voxel_s_value_kernel(nuclide="Lu-177", voxel_size_mm=4.8, size_voxels=None, *,
                         tissue_density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML,
                         include_electrons: bool = True, include_photons: bool = True,
                         photon_radius_mm: float = 100.0) -> VoxelSValueKernel:
    """Voxel S-value kernel (mGy/(MBq·s)) for soft tissue, generated from ICRP-107 emissions.

    ``voxel_size_mm``: a number or ``(x, y, z)`` mm (anisotropic voxels are supported).
    ``size_voxels``: odd kernel size (int or (x, y, z)); default covers ``photon_radius_mm``
    (100 mm) per axis, and at least the maximum electron range.
    ``include_electrons`` / ``include_photons``: select components (e.g. electrons only to
    compare with LED). Generation takes ~1–3 s (electron transport once per nuclide, then ~1 s
    per voxel size); results are cached. See the module docstring for the physics.
    """
    nuc = _nuclide(nuclide)
    h = _voxel_size(voxel_size_mm)
    rho = _scalar(tissue_density_g_per_ml, "tissue_density_g_per_ml", positive=True)
    radius = _scalar(photon_radius_mm, "photon_radius_mm", positive=True)
    if not (include_electrons or include_photons):
        raise InputDataError("include_electrons/include_photons: at least one component must be included")
    if max(h) / min(h) > 10:
        raise InputDataError(f"voxel_size_mm: anisotropy above 10:1 is not supported, got {h}")
    e_range = 0.0
    if include_electrons:
        e_range = float(_electron_radial_deposition(nuc.name)[0][-1]) / rho * 10.0
    half = _half_sizes(size_voxels, h, radius if include_photons else 0.0, e_range)
    if np.prod([2 * n + 1 for n in half]) > 256 ** 3:
        raise InputDataError(f"size_voxels: kernel of {[2 * n + 1 for n in half]} voxels is too large")
    key_h = tuple(round(v, 9) for v in h)
    return _build_kernel(nuc.name, key_h, half, round(rho, 9), bool(include_electrons),
                         bool(include_photons and len(nuc.photon_lines) > 0))


_VOXEL_RE = re.compile(r"(\d+(?:\.\d+)?)\s*mm", re.IGNORECASE)


def load_lanconelli_kernel(path, voxel_size_mm=None, nuclide: str | None = None,
                           tissue_density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML) -> VoxelSValueKernel:
    """Read a Lanconelli et al. 2012 (Phys Med Biol 57:517) voxel S-value octant table.

    Format: header lines, then rows ``i j k S`` (tab, space, comma or semicolon separated) for
    all voxel offsets 0..n in each axis, S in mGy/(MBq·s). The octant is mirrored into the
    full ``(2n+1)³`` kernel; (i, j, k) are offsets along (x, y, z). ``voxel_size_mm`` defaults to
    the "… 2.21mm …" size in the header; ``nuclide`` to the first header word.
    """
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"path: kernel file {str(p)!r} does not exist")
    header, rows = [], []
    for n, line in enumerate(p.read_text(errors="replace").splitlines(), start=1):
        parts = [t for t in re.split(r"[\s,;]+", line.strip()) if t]
        if not parts:
            continue
        try:
            nums = [float(t) for t in parts]
        except ValueError:
            if rows:
                raise InputDataError(f"path: {p.name} line {n}: expected 'i j k S' numbers, got {line.strip()!r}") from None
            header.append(line.strip())
            continue
        if len(nums) < 4:
            raise InputDataError(f"path: {p.name} line {n}: expected 4 columns 'i j k S', got {line.strip()!r}")
        rows.append(nums[:4])
    if not rows:
        raise InputDataError(f"path: {p.name} has no 'i j k S' rows")
    t = np.asarray(rows)
    ijk, S = t[:, :3], t[:, 3]
    if np.any(ijk < 0) or np.any(np.mod(ijk, 1) != 0):
        raise InputDataError(f"path: {p.name}: i, j, k must be non-negative integers (an octant table)")
    if not np.all(np.isfinite(S)) or np.any(S < 0):
        raise InputDataError(f"path: {p.name}: S-values must be finite and >= 0 mGy/(MBq·s)")
    ijk = ijk.astype(int)
    n = ijk.max(axis=0)
    expected = int(np.prod(n + 1))
    if len(np.unique(ijk, axis=0)) != len(ijk):
        raise InputDataError(f"path: {p.name}: duplicate (i, j, k) rows")
    if len(ijk) != expected:
        raise InputDataError(f"path: {p.name}: incomplete octant, {len(ijk)} rows for offsets 0..{tuple(n)} "
                             f"({expected} expected)")
    if voxel_size_mm is None:
        m = _VOXEL_RE.search(" ".join(header))
        if not m:
            raise InputDataError(f"voxel_size_mm: not given and no '<size> mm' found in the header of {p.name}")
        voxel_size_mm = float(m.group(1))
    h = _voxel_size(voxel_size_mm)
    if nuclide is None:
        nuclide = header[0].split()[0] if header and header[0].split() else "unknown"
        try:
            nuclide = get_nuclide(nuclide).name
        except InputDataError:
            pass  # keep the header's word
    rho = _scalar(tissue_density_g_per_ml, "tissue_density_g_per_ml", positive=True)
    oct_ = np.zeros((n[2] + 1, n[1] + 1, n[0] + 1))
    oct_[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = S
    full = np.zeros((2 * n[2] + 1, 2 * n[1] + 1, 2 * n[0] + 1))
    for zs in (1, -1):
        for ys in (1, -1):
            for xs in (1, -1):
                full[n[2] + zs * np.arange(n[2] + 1)[:, None, None],
                     n[1] + ys * np.arange(n[1] + 1)[None, :, None],
                     n[0] + xs * np.arange(n[0] + 1)[None, None, :]] = oct_
    full.setflags(write=False)
    return VoxelSValueKernel(values_mGy_per_MBq_s=full, voxel_size_mm=h, nuclide=str(nuclide),
                             tissue_density_g_per_ml=rho, components="as tabulated",
                             source=f"Lanconelli-format table {p.name}", notes=tuple(header))


# ----------------------------------------------------------------------------- convolution

def _check_kernel(kernel) -> VoxelSValueKernel:
    if not isinstance(kernel, VoxelSValueKernel):
        raise InputDataError(f"kernel: expected a VoxelSValueKernel (voxel_s_value_kernel or load_lanconelli_kernel), "
                             f"got {type(kernel).__name__}")
    k = kernel.values_mGy_per_MBq_s
    if k.ndim != 3 or any(s % 2 == 0 for s in k.shape):
        raise InputDataError(f"kernel: values must be a 3-D array of odd sizes, got shape {k.shape}")
    return kernel


def _convolve(values, name, kernel, density_g_per_ml, voxel_size_mm, min_density_g_per_ml, factor):
    from scipy.signal import fftconvolve

    kernel = _check_kernel(kernel)
    a = _array(values, name, ndim=3)
    if voxel_size_mm is not None:
        h = _voxel_size(voxel_size_mm)
        if not np.allclose(h, kernel.voxel_size_mm, rtol=1e-3, atol=0):
            raise InputDataError(f"voxel_size_mm: image voxels {h} mm differ from the kernel's {kernel.voxel_size_mm} "
                                 "mm; make a kernel for this voxel size or resample the image")
    out = fftconvolve(a, kernel.values_mGy_per_MBq_s, mode="same") * factor
    np.maximum(out, 0.0, out=out)  # FFT round-off
    if density_g_per_ml is not None:
        rho = _array(density_g_per_ml, "density_g_per_ml", ndim=3)
        if rho.shape != a.shape:
            raise InputDataError(f"density_g_per_ml: shape {rho.shape} does not match {name} shape {a.shape}")
        floor = _scalar(min_density_g_per_ml, "min_density_g_per_ml", positive=True)
        out *= kernel.tissue_density_g_per_ml / np.maximum(rho, floor)
    return out


def vsv_dose_rate_Gy_per_h(activity_MBq, kernel: VoxelSValueKernel, density_g_per_ml=None, *, voxel_size_mm=None,
                           min_density_g_per_ml: float = DEFAULT_MIN_DENSITY_G_PER_ML) -> np.ndarray:
    """Absorbed dose rate map (Gy/h) from an activity map (MBq per voxel, ``[z, y, x]``) by FFT
    convolution with ``kernel`` (mGy/(MBq·s)).

    ``density_g_per_ml``: optional density map (same shape) for the ρ_tissue/ρ_voxel scaling
    (floored at ``min_density_g_per_ml``). ``voxel_size_mm`` (x, y, z), when given, must match
    the kernel's. Outside the image the activity is taken as zero.
    """
    # mGy/(MBq·s) × MBq = mGy/s; × 3600 s/h / 1000 mGy/Gy = Gy/h
    return _convolve(activity_MBq, "activity_MBq", kernel, density_g_per_ml, voxel_size_mm, min_density_g_per_ml,
                     _S_PER_H / 1000.0)


def vsv_dose_Gy(tia_MBq_h, kernel: VoxelSValueKernel, density_g_per_ml=None, *, voxel_size_mm=None,
                min_density_g_per_ml: float = DEFAULT_MIN_DENSITY_G_PER_ML) -> np.ndarray:
    """Absorbed dose map (Gy) from a time-integrated activity map (MBq·h per voxel); see
    :func:`vsv_dose_rate_Gy_per_h`."""
    return _convolve(tia_MBq_h, "tia_MBq_h", kernel, density_g_per_ml, voxel_size_mm, min_density_g_per_ml,
                     _S_PER_H / 1000.0)


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


# ----------------------------------------------------------------------------- VOI statistics

@dataclass(frozen=True, eq=False)
class DoseStatistics:
    """Dose statistics of one VOI (doses in Gy; fractions of the VOI volume, or mass if weighted).

    dvh_dose_Gy / dvh_fraction: cumulative DVH, fraction of the VOI receiving ≥ each dose.
    eud_Gy: O'Donoghue equivalent uniform dose for ``eud_alpha_per_Gy``.
    """

    mean_Gy: float
    min_Gy: float
    max_Gy: float
    d90_Gy: float
    d50_Gy: float
    d10_Gy: float
    eud_Gy: float
    eud_alpha_per_Gy: float
    n_voxels: int
    weighting: str
    total_mass_g: float | None
    dvh_dose_Gy: np.ndarray = field(repr=False)
    dvh_fraction: np.ndarray = field(repr=False)

    def d_percent_Gy(self, percent: float) -> float:
        """D_x: highest dose received by at least ``percent`` % of the VOI (from the DVH grid)."""
        p = _scalar(percent, "percent", lo=0.0, hi=100.0) / 100.0
        ok = self.dvh_fraction >= p - 1e-12
        return float(self.dvh_dose_Gy[ok][-1]) if ok.any() else 0.0

    def as_dict(self) -> dict:
        return {"mean_Gy": self.mean_Gy, "min_Gy": self.min_Gy, "max_Gy": self.max_Gy, "d90_Gy": self.d90_Gy,
                "d50_Gy": self.d50_Gy, "d10_Gy": self.d10_Gy, "eud_Gy": self.eud_Gy,
                "eud_alpha_per_Gy": self.eud_alpha_per_Gy, "n_voxels": self.n_voxels, "weighting": self.weighting,
                "total_mass_g": self.total_mass_g}


def _d_x(sorted_d, cum_from_top, x):
    """Highest dose d_i with fraction(≥ d_i) ≥ x (sorted ascending, cum_from_top[i] = fraction ≥ d_i)."""
    ok = np.nonzero(cum_from_top >= x - 1e-12)[0]
    return float(sorted_d[ok[-1]]) if ok.size else float(sorted_d[0])


def voi_dose_statistics(dose_Gy, mask, voxel_mass_g=None, *, eud_alpha_per_Gy: float = 0.3,
                        dvh_bins: int = 200) -> DoseStatistics:
    """Statistics of the dose map ``dose_Gy`` (Gy) inside the boolean ``mask`` (same shape).

    ``voxel_mass_g``: optional scalar or array (same shape) of voxel masses (g): mean, D_x, DVH
    and EUD are then mass-weighted, else volume-weighted. D_x = highest dose received by at
    least x % of the VOI. ``eud_alpha_per_Gy`` (> 0): radiosensitivity of the EUD.
    """
    d = _array(dose_Gy, "dose_Gy", allow_negative=True)
    m = np.asarray(mask)
    if m.shape != d.shape:
        raise InputDataError(f"mask: shape {m.shape} does not match dose_Gy shape {d.shape}")
    if m.dtype != bool:
        if not np.all(np.isin(m, (0, 1))):
            raise InputDataError("mask: must be boolean or 0/1")
        m = m.astype(bool)
    if not m.any():
        raise InputDataError("mask: is empty (no voxel selected)")
    vals = d[m]
    if np.any(vals < 0):
        raise InputDataError(f"dose_Gy: {int((vals < 0).sum())} voxel(s) inside the mask are negative")
    alpha = _scalar(eud_alpha_per_Gy, "eud_alpha_per_Gy", positive=True)
    nb = int(_scalar(dvh_bins, "dvh_bins", positive=True))
    total_mass = None
    if voxel_mass_g is None:
        w = np.ones_like(vals)
        weighting = "volume"
    else:
        vm = _array(voxel_mass_g, "voxel_mass_g")
        if vm.ndim == 0:
            w = np.full_like(vals, float(vm))
        elif vm.shape == d.shape:
            w = vm[m]
        else:
            raise InputDataError(f"voxel_mass_g: shape {vm.shape} does not match dose_Gy shape {d.shape}")
        if np.any(w <= 0):
            raise InputDataError("voxel_mass_g: masses inside the mask must be > 0 g")
        weighting = "mass"
        total_mass = float(w.sum())
    order = np.argsort(vals, kind="stable")
    sd, sw = vals[order], w[order]
    frac = sw / sw.sum()
    cum_top = np.minimum(np.cumsum(frac[::-1])[::-1], 1.0)  # fraction receiving >= sd[i]
    from scipy.special import logsumexp

    eud = float(-logsumexp(-alpha * sd, b=frac) / alpha)
    grid = np.linspace(0.0, float(sd[-1]), nb + 1)
    # fraction receiving >= g: weights of doses >= g
    pos = np.searchsorted(sd, grid, side="left")
    dvh = np.minimum(np.concatenate([cum_top, [0.0]])[pos], 1.0)
    grid.setflags(write=False)
    dvh.setflags(write=False)
    return DoseStatistics(
        mean_Gy=float(np.sum(frac * sd)), min_Gy=float(sd[0]), max_Gy=float(sd[-1]),
        d90_Gy=_d_x(sd, cum_top, 0.9), d50_Gy=_d_x(sd, cum_top, 0.5), d10_Gy=_d_x(sd, cum_top, 0.1),
        eud_Gy=min(max(eud, float(sd[0])), float(sd[-1])), eud_alpha_per_Gy=alpha, n_voxels=int(vals.size),
        weighting=weighting, total_mass_g=total_mass, dvh_dose_Gy=grid, dvh_fraction=dvh)
