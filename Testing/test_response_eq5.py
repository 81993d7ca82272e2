"""Eq. 5 (Macsuka et al., J Nucl Med 2026) by maximum likelihood, checked against an independent
maximum-likelihood fit (scipy.optimize on the log-likelihood, exact gradient and Hessian); separated
cohorts are detected and get the penalised fit with a message."""

import numpy as np
import pytest
from scipy.optimize import minimize

from LuResponseLib.analysis import CohortAnalysisOptions, run_cohort_analysis
from LuResponseLib.cohort import cohort_table_from_rows
from LuResponseLib.models import (ModelSettings, cross_validated_probabilities, fit_response_model,
                                  logistic_separation)
from LuResponseLib.errors import AnalysisError
from LuResponseLib.synthetic import make_demo_cohort

FEATURES = ["cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent"]


def _independent_ml(X, y):
    """Unpenalised logistic MLE in the original units by scipy's trust-region Newton (exact Hessian)."""
    Xd = np.column_stack([np.ones(len(y)), X])
    sc = np.r_[1.0, X.std(axis=0)]  # scale the parameters only for conditioning; the optimum is the same
    Z = Xd / sc

    def f(b):
        eta = Z @ b
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    def g(b):
        return Z.T @ (1 / (1 + np.exp(-(Z @ b))) - y)

    def h(b):
        p = 1 / (1 + np.exp(-(Z @ b)))
        return Z.T @ (Z * (p * (1 - p))[:, None])

    r = minimize(f, np.zeros(Z.shape[1]), jac=g, hess=h, method="trust-exact", options={"gtol": 1e-13})
    assert np.max(np.abs(g(r.x))) < 1e-6  # Hessian eigenvalues ~10-100: parameter error < 1e-7
    return r.x / sc


def test_demo_cohort_ml_equals_independent_ml_fit():
    t = make_demo_cohort(0).table
    X = np.column_stack([t.cumulative_tumor_dose_Gy, t.delta_ad_per_aa_percent])
    y = t.responder.astype(float)
    assert logistic_separation(X, y) is None
    m = fit_response_model(X, y, "logistic", FEATURES)
    assert m.settings["logistic_penalty"] == "none" and "fit_note" not in m.settings
    c = m.coefficients_original_units()
    ours = np.array([c["beta0"], c["beta_cumulative_tumor_dose_Gy"], c["beta_delta_ad_per_aa_percent"]])
    ref = _independent_ml(X, y)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    # the penalised fit (scikit-learn default C = 1) is a different, shrunk estimate
    pen = fit_response_model(X, y, "logistic", FEATURES, settings=ModelSettings(logistic_penalty="l2"))
    cp = pen.coefficients_original_units()
    assert abs(cp["beta_cumulative_tumor_dose_Gy"]) < abs(c["beta_cumulative_tumor_dose_Gy"])
    # one-feature models too
    m1 = fit_response_model(X[:, :1], y, "logistic", FEATURES[:1]).coefficients_original_units()
    np.testing.assert_allclose([m1["beta0"], m1["beta_cumulative_tumor_dose_Gy"]], _independent_ml(X[:, :1], y),
                               rtol=1e-6)


def test_separable_cohort_detected_message_and_penalised_fit():
    rng = np.random.default_rng(3)
    n = 40
    cad = np.r_[rng.uniform(20, 90, n // 2), rng.uniform(110, 250, n // 2)]
    delta = rng.uniform(-80, 20, n)
    y = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    X = np.column_stack([cad, delta])
    msg = logistic_separation(X, y)
    assert msg is not None and "completely separated" in msg
    m = fit_response_model(X, y, "logistic", FEATURES)
    assert m.settings["logistic_penalty"] == "l2" and "do not exist" in m.settings["fit_note"]
    assert np.all(np.isfinite(list(m.coefficients_original_units().values())))
    # quasi-complete separation (one tie on the boundary) is detected too
    Xq = np.r_[X, [[100.0, 0.0], [100.0, 0.0]]]
    yq = np.r_[y, 0.0, 1.0]
    assert "quasi-completely" in logistic_separation(Xq, yq)
    # overlapping classes: not separated
    yo = y.copy()
    yo[[0, n - 1]] = 1 - yo[[0, n - 1]]
    assert logistic_separation(X, yo) is None

    rows = [{"patient_id": f"P{i}", FEATURES[0]: cad[i], FEATURES[1]: delta[i],
             "response": "PR" if y[i] else "SD"} for i in range(n)]
    res = run_cohort_analysis(cohort_table_from_rows(rows), CohortAnalysisOptions(n_bootstrap=50, n_cv_repeats=0))
    assert any("model 'logistic' (all patients)" in w and "L2-penalised" in w for w in res.warnings)
    d = res.to_dict()
    assert d["models"]["logistic"]["trained_model"]["settings"]["logistic_penalty"] == "l2"
    assert d["options"]["model_settings"]["logistic_method"] == "maximum likelihood (unpenalised)"


def test_penalty_option_validated_and_stated():
    with pytest.raises(AnalysisError, match="logistic_penalty"):
        ModelSettings(logistic_penalty="l1")
    s = ModelSettings(logistic_penalty="l2", logistic_C=0.5)
    assert s.to_dict()["logistic_method"].startswith("L2-penalised") and s.to_dict()["logistic_C"] == 0.5
    t = make_demo_cohort(0).table
    X = np.column_stack([t.cumulative_tumor_dose_Gy, t.delta_ad_per_aa_percent])
    cv = cross_validated_probabilities(X, t.responder, "logistic", n_bootstrap=20)
    assert cv.notes == []
