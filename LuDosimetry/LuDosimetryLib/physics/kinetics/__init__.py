"""Time-activity (or dose-rate) curve fitting and time integration, per VOI and voxel-wise.

Modules: ``voi_fit`` (VOI fits and model selection), ``models`` (the candidate models), ``single_time_point``
(Hänscheid, Madsen, later-cycle ratio), ``voxelwise`` (vectorised voxel fits), ``_inputs`` (shared checks).

Units
-----
Times are hours after administration (``_h``). Values are in whatever unit the caller uses
(activity MBq, activity concentration Bq/mL, or absorbed-dose rate Gy/h); an integral is then in
value·h (MBq·h, Bq·h/mL, or Gy). Rates are per hour (``_per_h``). The physical half-life is
always passed in by the caller (``physical_half_life_h``; for 177Lu get it from
``LuDosimetryLib.radionuclides.get_nuclide("Lu-177").half_life_h``), never typed in here.

Models (``fit_time_activity(..., model=...)``)
----------------------------------------------
``"mono"``       A·e^(−λt), λ ≥ λ_phys.                                  2 parameters
``"biexp"``      A·(e^(−λ1 t) − e^(−λ2 t)) (Macsuka et al. 2026, Eq. 1), washout λ1 ≥ λ_phys, uptake
                 λ2 > λ1, A ≥ 0.                                          3 parameters
``"triexp"``     A1·e^(−λ1 t) + A2·e^(−λ2 t) − (A1 + A2)·e^(−λ3 t), λ_phys ≤ λ1 < λ2 < λ3,
                 A1, A2 ≥ 0 (two washout phases, one uptake; zero at t = 0). 5 parameters
``"trapezoid"``  0 at t = 0, straight lines between the points, then a mono-exponential tail
                 from the last point: ``tail="physical"`` (default) decays with λ_phys;
                 ``tail="last_segment"`` uses the rate through the last two points when that
                 decays faster than physical decay (otherwise physical decay, with a warning).
``"mono_last2"`` 0 at t = 0, straight lines up to the second-to-last point, then the
                 mono-exponential through the last two points to infinity (rate clamped to
                 ≥ λ_phys with a warning). This is the "uptake trapezoid + mono-exponential
                 through the last two points" fallback.
``"auto"``       the rule below.

The ``"auto"`` rule
-------------------
1. All values zero → integral 0 (``trapezoid``, flag ``all_zero``).
2. Rising curve (last point ≥ every earlier point) → ``trapezoid`` with a physical-decay tail and
   a warning (flags ``rising``, ``fallback:trapezoid``, ``tail:physical``): the washout was not
   observed, so nothing faster than physical decay can be claimed.
3. n ≥ 5 points: AICc selection among the parametric models that converge to a physically valid
   solution and have AICc defined (n ≥ k + 2): mono (k = 2), biexp (k = 3), triexp (k = 5, n ≥ 7).
   AICc = n·ln(RSS/n) + 2k + 2k(k+1)/(n−k−1), RSS the σ-weighted residual sum of squares
   (floored at n·1e-12 so that exact fits tie and the simplest one wins).
4. n = 3 or 4 (the clinical 4, 24, 72 h case has as many parameters as points, so AICc is not
   defined for biexp): the Macsuka et al. 2026 bi-exponential is tried first.
5. If no parametric model is accepted (did not converge; λ1 at/below the physical bound, i.e. the
   data decay slower than physical decay; λ2 ≤ λ1 or uptake faster than resolvable; A ≤ 0;
   non-finite integral; singular Jacobian; for n = k, the curve does not pass through the
   points), fall back to ``mono_last2`` when the last two points decay faster than physical
   decay, else to ``trapezoid`` with a physical tail. The chosen model and the reason are
   recorded in ``warnings`` and ``flags``.

A rejected fit at the physical bound is a documented choice: in ``"auto"`` mode a parametric
curve whose washout sits exactly on λ_phys carries no information beyond "not faster than
physical decay", which the trapezoid + physical tail says explicitly. An explicitly requested
model (``model="biexp"``) is returned even at a bound (with a warning); it raises
:class:`~LuDosimetryLib.errors.FitError` only if it cannot be fitted at all.

Uncertainty (EANM practice, Gear et al. 2018, EJNMMI 45:2456)
-------------------------------------------------------------
Per-point standard uncertainties σ_i are ``value_uncertainty``: ``None`` → 5 % relative
(:data:`DEFAULT_RELATIVE_UNCERTAINTY`), a scalar → that relative fraction of each value, a
sequence → absolute σ per point (value units). Relative σ use the measured values, floored at
1e-3 of the largest value. Parametric fits are σ-weighted least squares and the 1σ uncertainty
of the integral is the linear (Jacobian) propagation with absolute σ:
u²(I) = g·(JᵀWJ)⁻¹·gᵀ, g = ∂I/∂p, W = diag(σ⁻²), which is also valid when the number of points
equals the number of parameters (then J is square and the fit interpolates). Non-parametric
integrals are linear (or nearly) in the data and use u²(I) = Σ(∂I/∂y_i)²σ_i². Model-selection
and tail-model uncertainties are not included (they are reported as flags).
"""

from ._inputs import DEFAULT_RELATIVE_UNCERTAINTY, MODELS
from .single_time_point import (
    fit_single_time_point,
    hanscheid_tia,
    later_cycle_dose_scaling,
    madsen_tia,
)
from .voi_fit import TimeActivityFit, fit_time_activity
from .voxelwise import VoxelwiseFit, fit_time_activity_voxelwise

__all__ = [
    "DEFAULT_RELATIVE_UNCERTAINTY",
    "MODELS",
    "TimeActivityFit",
    "VoxelwiseFit",
    "fit_single_time_point",
    "fit_time_activity",
    "fit_time_activity_voxelwise",
    "hanscheid_tia",
    "madsen_tia",
    "later_cycle_dose_scaling",
]
