"""Survival (KM, log-rank, Cox, landmark) and lesion-level analyses (seed 001 dV/TCP, seed 003)."""

import numpy as np
import pytest
from scipy import stats

from LuResponseLib.errors import AnalysisError
from LuResponseLib.lesions import (categorize_lesions, lesion_category, logistic_mle, regress_volume_change,
                                   tumor_control_probability)
from LuResponseLib.survival import compare_survival, cox_continuous, cox_efron, kaplan_meier, landmark


def test_kaplan_meier_by_hand():
    t = np.array([2, 3, 3, 5, 8, 9, 12], float)
    e = np.array([1, 1, 0, 1, 0, 1, 0], bool)
    km = kaplan_meier(t, e)
    # S(2)=6/7, S(3)=6/7*5/6=5/7, S(5)=5/7*3/4, S(9)=15/28*1/2
    s = dict(zip(km.timeline_months, km.survival))
    assert s[2] == pytest.approx(6 / 7) and s[3] == pytest.approx(5 / 7)
    assert s[5] == pytest.approx(15 / 28) and s[9] == pytest.approx(15 / 56)
    assert km.median_months == 9 and km.n_events == 4


def test_cox_hr_recovers_known_hazard_ratio_and_logrank():
    rng = np.random.default_rng(0)
    n = 400
    g = rng.random(n) < 0.5
    true_hr = 0.4
    t = rng.exponential(1 / np.where(g, 0.05 * true_hr, 0.05))
    c = rng.uniform(10, 60, n)
    e = t <= c
    t = np.minimum(t, c)
    r = compare_survival(t, e, g, "PFS", "dose", "high dose", ("low", "high"))
    assert r.hazard_ratio_ci95[0] < true_hr < r.hazard_ratio_ci95[1]
    assert r.hazard_ratio == pytest.approx(true_hr, rel=0.3)
    assert r.logrank_p < 1e-6 and r.n_used == n
    from lifelines.statistics import logrank_test

    assert r.logrank_p == pytest.approx(logrank_test(t[g], t[~g], e[g], e[~g]).p_value)
    cc = cox_continuous(t, e, g.astype(float), "g")
    assert cc["hazard_ratio_per_unit"] == pytest.approx(r.hazard_ratio, rel=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_cox_efron_equals_lifelines(seed):
    """The vectorised Efron Cox fit equals lifelines' CoxPHFitter (run to precision 1e-14):
    coefficient, SE and Wald p within 1e-9 relative, with and without tied times."""
    import pandas as pd
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(seed)
    n = (40, 300, 3000)[seed % 3]
    x = rng.normal(size=n) * (3 if seed % 2 else 1)
    tt = rng.exponential(1 / np.exp(0.4 * x))
    c = rng.uniform(0, 2, n)
    t, e = np.minimum(tt, c), (tt <= c).astype(float)
    if seed >= 3:
        t = np.round(t * 10) / 10  # many ties
    ref = CoxPHFitter().fit(pd.DataFrame({"T": t, "E": e, "x": x}), "T", "E",
                            fit_options={"precision": 1e-14, "max_steps": 200}).summary.loc["x"]
    r = cox_efron(t, e, x)
    assert r["converged"]
    # lifelines stops when its step is small (score ~1e-7 left on 40 patients): 1e-7 relative
    assert r["coef"] == pytest.approx(ref["coef"], rel=1e-7)
    assert r["se"] == pytest.approx(ref["se(coef)"], rel=1e-7)
    assert r["p"] == pytest.approx(ref["p"], rel=1e-5, abs=1e-300)
    assert r["ci95"] == pytest.approx((ref["exp(coef) lower 95%"], ref["exp(coef) upper 95%"]), rel=1e-7)
    if n <= 300:  # the Efron score, summed term by term, vanishes at our estimate
        b, score = r["coef"], 0.0
        for u in np.unique(t[e == 1]):
            dm, rm = (t == u) & (e == 1), t >= u
            w = np.exp(b * x)
            score += x[dm].sum()
            for m in range(int(dm.sum())):
                f = m / dm.sum()
                score -= ((w * x)[rm].sum() - f * (w * x)[dm].sum()) / (w[rm].sum() - f * w[dm].sum())
        assert abs(score) < 1e-9


def test_cox_efron_separated_events_not_estimable():
    g = np.r_[np.ones(20), np.zeros(20)]
    r = cox_efron(np.arange(40.0), np.r_[np.zeros(20), np.ones(20)], g)
    assert not r["converged"] and np.isnan(r["hazard_ratio"]) and "not estimable" in r["notes"][0]


def test_missing_rows_listed_and_one_group_rejected():
    t = np.array([1, 2, 3, 4, np.nan, 6.0])
    e = np.array([1, 0, 1, 1, 1, 0.0])
    g = np.array([1, 0, 1, 0, 1, np.nan])
    r = compare_survival(t, e, g, "OS", "x", "rule", patient_ids=list("abcdef"))
    assert r.excluded_patient_ids == ["e", "f"] and r.n_used == 4
    with pytest.raises(AnalysisError, match="one group"):
        compare_survival(t[:4], e[:4], np.ones(4), "OS", "x", "rule")


def test_landmark_keeps_event_free_patients_and_rezeroes_time():
    t = np.array([3.0, 6.0, 6.5, 12.0, 5.0, np.nan])
    keep, tl = landmark(t, np.ones(6), 6.0)
    assert keep.tolist() == [False, False, True, True, False, False]  # time <= landmark excluded
    np.testing.assert_allclose(tl[keep], [0.5, 6.0])
    with pytest.raises(AnalysisError):
        landmark(t, np.ones(6), -1)


def test_volume_regression_equals_linregress_and_band_contains_fit():
    rng = np.random.default_rng(1)
    ad = rng.uniform(10, 250, 146)
    dv = 15 - 0.3 * ad + rng.normal(0, 18, 146)
    f = regress_volume_change(ad, dv)
    ref = stats.linregress(ad, dv)
    assert f.slope_percent_per_Gy == pytest.approx(ref.slope) and f.intercept_percent == pytest.approx(ref.intercept)
    assert f.slope_p == pytest.approx(ref.pvalue, rel=1e-6)
    half = stats.t.ppf(0.975, 144) * ref.stderr
    assert f.slope_ci95 == pytest.approx((ref.slope - half, ref.slope + half))
    assert f.slope_ci95[0] < -0.3 < f.slope_ci95[1]
    assert np.all(f.mean_band_percent[0] < f.fit_percent) and np.all(f.prediction_band_percent[1] > f.mean_band_percent[1])


def test_tcp_logistic_mle_matches_unpenalised_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    ad = rng.uniform(5, 250, 300)
    p = 1 / (1 + np.exp(-(-3 + 0.04 * ad)))
    controlled = rng.random(300) < p
    dv = np.where(controlled, -10.0, 10.0)
    tcp = tumor_control_probability(ad, dv)
    sk = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10).fit(ad[:, None], controlled)
    assert tcp.beta1_per_Gy == pytest.approx(sk.coef_[0, 0], rel=1e-5)
    assert tcp.beta0 == pytest.approx(sk.intercept_[0], rel=1e-5)
    assert tcp.beta1_ci95[0] < 0.04 < tcp.beta1_ci95[1]
    assert tcp.D50_Gy == pytest.approx(-tcp.beta0 / tcp.beta1_per_Gy)
    assert 50 < tcp.D50_Gy < 100  # true 75 Gy
    assert np.all(np.diff(tcp.tcp) > 0) and np.all(tcp.band[0] <= tcp.tcp) and np.all(tcp.tcp <= tcp.band[1])


def test_tcp_separation_reported():
    beta, cov, converged, notes = logistic_mle(np.array([1, 2, 3, 4, 5, 6.0]), np.array([0, 0, 0, 1, 1, 1.0]))
    assert not converged and notes and np.isnan(cov).all()


@pytest.mark.parametrize("b,f,cat", [
    (10, 6.9, "decreasing"), (10, 7.0, "stable"), (10, 13.0, "stable"), (10, 13.1, "increasing"),
    (10, np.nan, "disappearing"), (10, 0.0, "disappearing"), (np.nan, 5, "new"), (0.0, 5, "new")])
def test_seed003_lesion_categories(b, f, cat):
    assert lesion_category(b, f) == cat


def test_patient_heterogeneity_flag():
    pid = ["A", "A", "B", "B", "C", "C"]
    base = [10, 10, 10, np.nan, 10, 10]
    fol = [5, 15, 5, 3, 9, 11]  # A: decreasing + increasing; B: decreasing + new; C: stable only
    r = categorize_lesions(pid, base, fol)
    assert r["categories"] == ["decreasing", "increasing", "decreasing", "new", "stable", "stable"]
    assert {p: v["heterogeneous"] for p, v in r["patients"].items()} == {"A": True, "B": True, "C": False}
    assert r["n_heterogeneous"] == 2
    with pytest.raises(AnalysisError):
        lesion_category(np.nan, np.nan)
