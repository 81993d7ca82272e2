"""Large cohorts (issue 16): rank-based bootstrap AUC, SVM on a stated stratified subsample,
adaptive repeated CV, threads that do not change results, progress inside the model stage."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from LuResponseLib.analysis import CohortAnalysisOptions, _repeats, run_cohort_analysis
from LuResponseLib.models import ModelSettings, cross_validated_probabilities, fit_response_model, repeated_cv_auc
from LuResponseLib.roc import bootstrap_auc_ci
from LuResponseLib.svm import stratified_subsample
from LuResponseLib.synthetic import make_large_cohort, simulate_logistic_cohort


def test_rank_bootstrap_with_ties_equals_explicit_resampling_and_pairwise_form():
    rng = np.random.default_rng(5)
    y = rng.random(400) < 0.3
    s = np.round(rng.normal(size=400) + y, 1)  # many ties
    lo, hi, aucs = bootstrap_auc_ci(y, s, n_bootstrap=120, seed=9)
    rng2 = np.random.default_rng(9)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    ips = [pos[rng2.integers(0, pos.size, pos.size)] for _ in range(120)]
    ins = [neg[rng2.integers(0, neg.size, neg.size)] for _ in range(120)]
    for b in range(120):
        idx = np.r_[ips[b], ins[b]]
        assert aucs[b] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)
        if b < 5:  # the pairwise (Mann-Whitney) definition, written out
            p, q = s[ips[b]], s[ins[b]]
            pw = ((p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])).mean()
            assert aucs[b] == pytest.approx(pw, abs=1e-12)
    assert (lo, hi) == tuple(np.quantile(aucs, [0.025, 0.975]))


def test_stratified_subsample_keeps_proportions():
    y = np.r_[np.ones(3000), np.zeros(7000)].astype(bool)
    idx = stratified_subsample(y, 2000, seed=1)
    assert idx.size == 2000 and np.all(np.diff(idx) > 0) and y[idx].sum() == 600
    assert np.array_equal(idx, stratified_subsample(y, 2000, seed=1))
    assert np.array_equal(stratified_subsample(y[:50], 2000), np.arange(50))


def test_svm_subsample_stated_and_close_to_full_fit():
    X, y, _ = simulate_logistic_cohort(1200, seed=3)
    Xt, yt, _ = simulate_logistic_cohort(2000, seed=4)
    small = fit_response_model(X, y, "svm", settings=ModelSettings(svm_max_train=600, n_jobs=1))
    full = fit_response_model(X, y, "svm", settings=ModelSettings(svm_max_train=0, n_jobs=1))
    assert "600 of the 1200 patients" in small.settings["svm_trained_on"]
    assert "svm_trained_on" not in full.settings
    a_small = roc_auc_score(yt, small.predict_probability(Xt, warn=False))
    a_full = roc_auc_score(yt, full.predict_probability(Xt, warn=False))
    assert abs(a_small - a_full) < 0.02  # measured 8,000 vs 2,000: 0.003 (bench --svm-check)
    cv = cross_validated_probabilities(X, y, "svm", n_bootstrap=20, settings=ModelSettings(svm_max_train=600))
    assert any("subsample of 600 of the 960" in n for n in cv.notes)


def test_threads_do_not_change_results():
    X, y, _ = simulate_logistic_cohort(300, seed=2)
    for kind in ("logistic", "svm"):
        a = cross_validated_probabilities(X, y, kind, n_bootstrap=30, settings=ModelSettings(n_jobs=1))
        b = cross_validated_probabilities(X, y, kind, n_bootstrap=30, settings=ModelSettings(n_jobs=2))
        np.testing.assert_array_equal(a.oof_probability, b.oof_probability)
        r1 = repeated_cv_auc(X, y, kind, 3, settings=ModelSettings(n_jobs=1))
        r2 = repeated_cv_auc(X, y, kind, 3, settings=ModelSettings(n_jobs=2))
        np.testing.assert_array_equal(r1.aucs, r2.aucs)


def test_adaptive_repeats_and_progress_inside_models():
    opt = CohortAnalysisOptions(n_cv_repeats=20)
    assert _repeats("svm", 1500, opt) == (20, None)
    k, note = _repeats("svm", 10000, opt)
    assert k == 5 and "reduced to 5 of 20 splits" in note
    assert _repeats("logistic", 10000, opt) == (20, None)
    c = make_large_cohort(400, seed=1)
    seen = []
    opt = CohortAnalysisOptions(n_bootstrap=50, n_cv_repeats=6, model_settings=ModelSettings(svm_max_train=200))
    res = run_cohort_analysis(c.table, opt, visits=c.visits, progress=lambda f, m: seen.append((f, m)))
    assert any(m.startswith("cross-validated models: svm") for _, m in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
    d = res.to_dict()
    assert d["models"]["svm"]["repeated_cv"]["n_repeats"] == 5 and d["models"]["svm"]["repeated_cv"]["note"]
    assert "200 of the 400" in d["models"]["svm"]["trained_model"]["settings"]["svm_trained_on"]
    assert any("reduced to 5 of 6 splits" in w for w in res.warnings)
    assert len(res.landmark) == 6 and all(r.n_eligible > 200 for r in res.landmark[:2])
