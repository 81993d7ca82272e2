"""Tests of LuDosimetryLib.physics.radiobiology: closed-form Lea–Catcheside factor vs numerical
integration (scipy.integrate), BED/EQD2 identities, and the seed 000 / seed 002 planning rules."""

import math

import numpy as np
import pytest
import radioactivedecay
from scipy import integrate

from LuDosimetryLib.physics import kinetics as K
from LuDosimetryLib.physics import radiobiology as R
from LuDosimetryLib.errors import InputDataError

LN2 = math.log(2)
T_PHYS_H = radioactivedecay.Nuclide("Lu-177").half_life("h")


def g_numeric(dose_rate, t_rep_h, t_max_h, breakpoints=()):
    """G = (2/D²) ∫₀^∞ Ḋ(t) ∫₀^t Ḋ(w) e^(−μ(t−w)) dw dt by nested adaptive quadrature."""
    mu = LN2 / t_rep_h

    def inner(t):
        pts = [p for p in breakpoints if 0 < p < t]
        return integrate.quad(lambda w: dose_rate(w) * math.exp(-mu * (t - w)), 0.0, t,
                              points=pts or None, epsabs=0.0, epsrel=1e-12, limit=400)[0]

    pts = [p for p in breakpoints if 0 < p < t_max_h]
    outer = integrate.quad(lambda t: dose_rate(t) * inner(t), 0.0, t_max_h, points=pts or None,
                           epsabs=0.0, epsrel=1e-11, limit=400)[0]
    D = integrate.quad(dose_rate, 0.0, t_max_h, points=pts or None, epsabs=0.0, epsrel=1e-13, limit=400)[0]
    return 2.0 * outer / D**2


def expsum(a, b):
    return lambda t: sum(ai * math.exp(-bi * t) for ai, bi in zip(a, b))


CASES = {
    "mono": ([1.0], [LN2 / 47.0]),
    "biexp_kidney": ([1.0, -1.0], [LN2 / 47.0, LN2 / 2.0]),
    "biexp_tumour": ([2.5, -2.5], [LN2 / 80.0, LN2 / 3.0]),
    "triexp": ([2.0, 1.0, -3.0], [LN2 / 90.0, LN2 / 10.0, LN2 / 1.0]),
    "biexp_rate_equals_mu": ([1.0, -1.0], [LN2 / 40.0, LN2 / 2.8]),  # b_j = μ: no singularity
}


@pytest.mark.parametrize("name", list(CASES))
def test_closed_form_g_matches_numerical_integration(name):
    a, b = CASES[name]
    t_rep = 2.8
    g = R.lea_catcheside_g(a, b, t_rep)
    # integrate to 60 slowest half-lives: truncation < 1e-17 relative
    gn = g_numeric(expsum(a, b), t_rep, 60 * LN2 / min(b), breakpoints=(5.0, 20.0, 100.0))
    assert g == pytest.approx(gn, rel=1e-6)
    assert 0 < g <= 1


def test_mono_and_biexp_helpers():
    assert R.lea_catcheside_g_mono(47.0, 2.8) == pytest.approx(2.8 / (2.8 + 47.0), rel=1e-14)
    assert R.lea_catcheside_g([3.0], [LN2 / 47.0], 2.8) == pytest.approx(2.8 / 49.8, rel=1e-12)
    l1, l2 = LN2 / 47.0, LN2 / 2.0
    assert R.lea_catcheside_g_biexp(l1, l2, 2.8) == pytest.approx(R.lea_catcheside_g([5.0, -5.0], [l1, l2], 2.8), rel=1e-14)
    # slower uptake spreads the dose: G decreases towards the instantaneous-uptake mono value
    assert R.lea_catcheside_g_biexp(l1, l2, 2.8) < R.lea_catcheside_g_mono(47.0, 2.8)


def test_g_factor_from_fits_exponential_and_piecewise():
    t = np.array([4.0, 24.0, 72.0])
    y = 1.2 * (np.exp(-LN2 / 47 * t) - np.exp(-LN2 / 2 * t))
    fit = K.fit_time_activity(t, y, physical_half_life_h=T_PHYS_H)
    assert R.g_factor_from_fit(fit) == pytest.approx(R.lea_catcheside_g_biexp(LN2 / 47, LN2 / 2, 2.8), rel=1e-7)
    trap = K.fit_time_activity(t, [2.0, 3.0, 1.0], "trapezoid", physical_half_life_h=T_PHYS_H)
    g = R.g_factor_from_fit(trap, 2.8)
    gn = g_numeric(lambda s: float(trap.evaluate(s)), 2.8, 72 + 80 * T_PHYS_H, breakpoints=(4.0, 24.0, 72.0))
    assert g == pytest.approx(gn, rel=1e-6)
    m2 = K.fit_time_activity(t, [10.0, 5.0, 1.5], physical_half_life_h=T_PHYS_H)
    assert m2.model == "mono_last2"
    gn2 = g_numeric(lambda s: float(m2.evaluate(s)), 2.8, 24 + 80 * 48 / math.log(5 / 1.5), breakpoints=(4.0, 24.0))
    assert R.g_factor_from_fit(m2, 2.8) == pytest.approx(gn2, rel=1e-6)


def test_bed_and_eqd2_identities():
    # one cycle: BED = D + G D²/(α/β)
    assert R.bed_Gy([5.0], [0.06], 2.6) == pytest.approx(5.0 + 0.06 * 25 / 2.6, rel=1e-14)
    # sum over cycles, scalar G broadcast
    assert R.bed_Gy([4.0, 5.0], 0.05) == pytest.approx(9.0 + 0.05 * 41 / 2.6, rel=1e-14)
    np.testing.assert_allclose(R.bed_per_cycle_Gy([4.0, 5.0], [0.05, 0.06]), [4 + 0.05 * 16 / 2.6, 5 + 0.06 * 25 / 2.6])
    # acute 2-Gy fractions (G = 1): EQD2 equals the physical dose
    assert R.eqd2_Gy([2.0] * 10, 1.0, 2.6) == pytest.approx(20.0, rel=1e-14)
    assert R.eqd2_Gy([2.0] * 10, 1.0, 10.0) == pytest.approx(20.0, rel=1e-14)


def test_seed002_statement_23Gy_is_about_25Gy_BED():
    """Seed 002 discussion: 23 Gy at PRRT dose rates (4.5 Gy/cycle, α/β 2.6 Gy, T_rep 2.8 h) ≈ 25 Gy BED."""
    g = R.lea_catcheside_g_biexp(LN2 / 47.0, LN2 / 2.0, R.KIDNEY.repair_half_time_h)
    n = 23.0 / 4.5
    bed = 23.0 + g * n * 4.5**2 / R.KIDNEY.alpha_beta_Gy
    assert 24.5 < bed < 26.0
    assert R.KIDNEY.alpha_beta_Gy == 2.6 and R.KIDNEY.repair_half_time_h == 2.8


def test_plan_seed000():
    first = R.plan_next_activity_seed000([], None, 4)
    assert first.next_activity_GBq == 7.4 and first.continue_treatment
    p = R.plan_next_activity_seed000([3.1], 0.42, 3)
    assert p.numbers["uncapped_activity_GBq"] == pytest.approx((23 - 3.1) / 0.42 / 3)
    assert p.next_activity_GBq == 11.1 and "capped" in p.reasoning
    q = R.plan_next_activity_seed000([5.0, 6.0], [0.7, 0.8], 2)
    assert q.next_activity_GBq == pytest.approx((23 - 11) / 0.8 / 2)
    done = R.plan_next_activity_seed000([8.0, 8.0, 7.5], 0.8, 1)
    assert done.next_activity_GBq == 0 and not done.continue_treatment
    with pytest.raises(InputDataError, match="cycles_remaining"):
        R.plan_next_activity_seed000([3.0], 0.4, 0)
    with pytest.raises(InputDataError, match="kidney_ad_per_aa_Gy_per_GBq"):
        R.plan_next_activity_seed000([3.0], -0.4, 2)
    with pytest.raises(InputDataError, match="kidney_doses_Gy_so_far"):
        R.plan_next_activity_seed000([3.0, float("nan")], 0.4, 2)


def test_plan_seed002():
    g = 0.05
    first = R.plan_seed002([], [])
    assert first.next_activity_GBq == 7.4 and first.rule == "renal_BED_27Gy"
    # 0.6 Gy/GBq → 4.44 Gy per cycle, BED/cycle = 4.44 + 0.05·4.44²/2.6 ≈ 4.82 Gy
    per = 0.6 * 7.4 + g * (0.6 * 7.4) ** 2 / 2.6
    go = R.plan_seed002([4.44] * 4, [g] * 4, 0.6)
    assert go.numbers["delivered_bed_Gy"] == pytest.approx(4 * per)
    assert go.continue_treatment and go.next_activity_GBq == 7.4  # 19.3 + 4.8 = 24.1 ≤ 29
    stop_window = R.plan_seed002([4.44] * 6, [g] * 6, 0.6)  # 28.9 ≥ 25
    assert not stop_window.continue_treatment and "window reached" in stop_window.reasoning
    # step 2 continues to 40 ± 2 Gy
    assert R.plan_seed002([4.44] * 6, [g] * 6, 0.6, step=2).continue_treatment
    # a full cycle would overshoot: stop, report the reduced activity reaching the target exactly
    big = R.plan_seed002([7.0, 7.0, 7.0], [g] * 3, 1.0)
    assert not big.continue_treatment
    x = big.numbers["reduced_activity_to_target_GBq"]
    assert R.bed_Gy([7.0, 7.0, 7.0, x * 1.0], [g] * 4) == pytest.approx(27.0, rel=1e-10)
    with pytest.raises(InputDataError, match="g_factors_so_far has 1 entries"):
        R.plan_seed002([4.0, 4.0], [0.05], 0.6)
    with pytest.raises(InputDataError, match="step"):
        R.plan_seed002([4.0], [0.05], 0.6, step=3)
    with pytest.raises(InputDataError, match="kidney_ad_per_aa_Gy_per_GBq is required"):
        R.plan_seed002([4.0], [0.05])


def test_validation_messages():
    with pytest.raises(InputDataError, match="coefficients has 2 entries but rates_per_h has 1"):
        R.lea_catcheside_g([1, -1], [0.1])
    with pytest.raises(InputDataError, match="rates_per_h must be > 0"):
        R.lea_catcheside_g([1], [0.0])
    with pytest.raises(InputDataError, match="repair_half_time_h"):
        R.lea_catcheside_g([1], [0.1], -2.8)
    with pytest.raises(InputDataError, match="integrate to > 0"):
        R.lea_catcheside_g([1, -1], [0.2, 0.1])
    with pytest.raises(InputDataError, match="uptake_rate_per_h"):
        R.lea_catcheside_g_biexp(0.1, 0.05)
    with pytest.raises(InputDataError, match="g_factors has 2 entries but doses_Gy has 3"):
        R.bed_Gy([1.0, 2.0, 3.0], [0.1, 0.2])
    with pytest.raises(InputDataError, match="doses_Gy must be >= 0"):
        R.bed_Gy([-1.0], [0.1])
    with pytest.raises(InputDataError, match="g_factors must be within"):
        R.bed_Gy([1.0], [1.5])
    with pytest.raises(InputDataError, match="alpha_beta_Gy"):
        R.eqd2_Gy([1.0], [0.1], 0.0)
    with pytest.raises(InputDataError, match="alpha_beta_Gy"):
        R.TissueParameters(alpha_beta_Gy=-1, repair_half_time_h=1.5, name="tumour")
