"""Groupwise analysis and the Eq. 2 sigmoid (seed 000): groups of 11, fit, R^2/RMSE, CI coverage."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from LuResponseLib.errors import AnalysisError
from LuResponseLib.sigmoid import fit_sigmoid, group_by_metric, group_sizes, sigmoid_probability
from LuResponseLib.synthetic import simulate_sigmoid_cohort


def test_groups_of_11_for_73_patients_are_six_of_11_and_one_of_7():
    assert group_sizes(73) == [11] * 6 + [7]
    assert group_sizes(66) == [11] * 6
    assert group_sizes(5) == [5]
    rng = np.random.default_rng(0)
    x = rng.normal(100, 30, 73)
    y = rng.random(73) < 0.4
    groups = group_by_metric(x, y)
    assert [g.n for g in groups] == [11] * 6 + [7]
    order = np.argsort(x, kind="mergesort")
    start = 0
    for g in groups:  # consecutive after ascending sort; proportion and median per group
        idx = order[start:start + g.n]
        start += g.n
        assert g.median_value == pytest.approx(np.median(x[idx]))
        assert g.proportion_PR == pytest.approx(y[idx].mean())
        assert g.n_responders == int(y[idx].sum())
    assert [g.median_value for g in groups] == sorted(g.median_value for g in groups)


def test_groups_ties_are_stable_and_nan_rejected():
    x = np.array([5.0, 1.0, 5.0, 1.0])
    groups = group_by_metric(x, np.array([1, 0, 0, 1], bool), group_size=2, patient_ids=["a", "b", "c", "d"])
    assert groups[0].patient_ids == ["b", "d"] and groups[1].patient_ids == ["a", "c"]
    with pytest.raises(AnalysisError, match="NaN"):
        group_by_metric(np.array([1.0, np.nan]), np.array([True, False]))


def test_sigmoid_recovers_parameters_from_a_large_cohort():
    # 20 000 patients in 20 groups of 1000: group proportions are close to the curve
    cad, y = simulate_sigmoid_cohort(20000, D_half_Gy=120.0, k_Gy=35.0, P_max=0.85, seed=3)
    f = fit_sigmoid(cad, y, group_size=1000)
    assert f.D_half_Gy == pytest.approx(120.0, rel=0.06)
    assert f.k_Gy == pytest.approx(35.0, rel=0.15)
    assert f.P_max == pytest.approx(0.85, abs=0.05)
    assert f.D_half_ci95_Gy[0] < 120.0 < f.D_half_ci95_Gy[1]
    assert f.r2 > 0.95


def test_r2_rmse_and_auc_follow_eq3_eq4_and_sklearn():
    cad, y = simulate_sigmoid_cohort(73, seed=11)
    f = fit_sigmoid(cad, y)
    gx = np.array([g.median_value for g in f.groups])
    gy = np.array([g.proportion_PR for g in f.groups])
    pred = sigmoid_probability(gx, f.D_half_Gy, f.k_Gy, f.P_max)
    r2 = 1 - np.sum((gy - pred) ** 2) / np.sum((gy - gy.mean()) ** 2)       # Eq. 3
    rmse = np.sqrt(np.sum((gy - pred) ** 2) / len(gx))                        # Eq. 4, n = groups
    assert f.r2 == pytest.approx(r2, abs=1e-12)
    assert f.rmse == pytest.approx(rmse, abs=1e-12)
    assert f.auc == pytest.approx(roc_auc_score(y, f.predict(cad)), abs=1e-12)
    assert 0.0 <= f.P_max <= 1.0 and f.k_Gy > 0
    d = f.to_dict()
    assert [g["n"] for g in d["groups"]] == [11] * 6 + [7]
    assert set(d["groups"][0]) >= {"n", "median_cAD_Gy", "proportion_PR"}


def test_fit_is_a_least_squares_minimum():
    cad, y = simulate_sigmoid_cohort(73, seed=5)
    f = fit_sigmoid(cad, y, compute_ci=False)
    gx = np.array([g.median_value for g in f.groups])
    gy = np.array([g.proportion_PR for g in f.groups])
    sse = lambda p, d, k: np.sum((sigmoid_probability(gx, d, k, p) - gy) ** 2)
    best = sse(f.P_max, f.D_half_Gy, f.k_Gy)
    assert best == pytest.approx(f.sse, rel=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(200):  # no nearby feasible point is better
        p = np.clip(f.P_max + rng.normal(0, 0.02), 0, 1)
        assert sse(p, f.D_half_Gy + rng.normal(0, 2), abs(f.k_Gy + rng.normal(0, 1))) >= best - 1e-12


def test_too_few_groups_is_an_error():
    with pytest.raises(AnalysisError, match="at least 4 groups"):
        fit_sigmoid(np.arange(30.0), np.arange(30) % 2 == 0)


def test_acceptance_ci_coverage_of_true_D_half_and_k_in_100_simulated_cohorts():
    """Acceptance: 100 cohorts of 73 patients drawn from the seed-000 sigmoid (D_half 135 Gy,
    k 58 Gy, P_max 1); the reported 95 % profile CIs contain the fitted value always and the
    true D_half and k in >= 90 % of cohorts."""
    truth = {"D_half_Gy": 135.0, "k_Gy": 58.0, "P_max": 1.0}
    cover_d = cover_k = 0
    for s in range(100):
        cad, y = simulate_sigmoid_cohort(73, seed=1000 + s, **truth)
        f = fit_sigmoid(cad, y)
        lo_d, hi_d = f.D_half_ci95_Gy
        lo_k, hi_k = f.k_ci95_Gy
        assert lo_d <= f.D_half_Gy <= hi_d and lo_k <= f.k_Gy <= hi_k
        cover_d += lo_d <= truth["D_half_Gy"] <= hi_d
        cover_k += lo_k <= truth["k_Gy"] <= hi_k
    assert cover_d >= 90, cover_d
    assert cover_k >= 90, cover_k
