"""Activity → absorbed dose: local energy deposition, voxel S-value convolution, DVH statistics.

Modules: ``led`` (local deposition, dose-rate pass-through), ``density`` (HU -> g/mL), ``kernels`` (voxel S-value
kernels and convolution), ``electron`` / ``photon`` (the transport behind the kernels), ``dvh`` (D90/D50/D10, DVH, EUD).

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
Piecewise-linear calibration HU → mass density. Default table (:data:`DEFAULT_HU_DENSITY_TABLE`):
Schneider et al., Phys Med Biol 2000 (45:459), ICRU 44 tissues (see :mod:`.density`; calibrate per
scanner and kVp for clinical use): air −1000 HU 0.00121, adipose −98 HU 0.93, soft tissue 14 HU
1.03, 23 HU 1.031, ICRU 44 muscle 40 HU 1.05 and liver 60 HU 1.06, 100 HU 1.12, bone 1600 HU 1.96 and 3000 HU 2.8 g/mL; constant beyond the ends.
Without a CT every path (VOI mass, voxel LED, voxel S-values) uses
:data:`SOFT_TISSUE_DENSITY_G_PER_ML` = 1.04 g/mL, the density the kernels are made for.
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

from ._common import DEFAULT_MIN_DENSITY_G_PER_ML, SOFT_TISSUE_DENSITY_G_PER_ML
from .density import DEFAULT_HU_DENSITY_TABLE, hu_to_density_g_per_ml
from .dvh import DoseStatistics, voi_dose_statistics
from .electron import electron_energy_radius_mm
from .kernels import (VoxelSValueKernel, load_lanconelli_kernel, voxel_s_value_kernel, vsv_dose_Gy,
                      vsv_dose_rate_Gy_per_h)
from .led import (dose_rate_passthrough, led_dose_factor_Gy_g_per_MBq_h, led_dose_Gy, led_dose_rate_Gy_per_h,
                  voi_led_dose_Gy)
from .photon import photon_energy_absorbed_in_sphere_keV

__all__ = [
    "SOFT_TISSUE_DENSITY_G_PER_ML", "DEFAULT_MIN_DENSITY_G_PER_ML", "DEFAULT_HU_DENSITY_TABLE",
    "hu_to_density_g_per_ml", "led_dose_factor_Gy_g_per_MBq_h", "led_dose_Gy", "led_dose_rate_Gy_per_h",
    "voi_led_dose_Gy", "photon_energy_absorbed_in_sphere_keV", "electron_energy_radius_mm",
    "VoxelSValueKernel", "voxel_s_value_kernel", "load_lanconelli_kernel", "vsv_dose_rate_Gy_per_h",
    "vsv_dose_Gy", "dose_rate_passthrough", "DoseStatistics", "voi_dose_statistics",
]
