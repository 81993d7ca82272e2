"""`cohort --predict` / `--models DIR`: bootstrap intervals, saved replicates, no re-analysis,
prediction in cohort_results.json, the report and on Figs. 5/6; parsing of negative values;
D_half interval within its bounds; survival units; numbers at risk; lesion fit range."""

import argparse
import json
import time

import numpy as np
import pytest
from LuResponseLib.cli import add_cohort_arguments
from LuResponseLib.model_schema import ModelFileError
from LuResponseLib.models import ResponseModel, fit_response_model
from LuResponseLib.prediction import bootstrap_replicates, predict_patient
from LuResponseLib.synthetic import make_demo_cohort, simulate_logistic_cohort

FEATURES = ["cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent"]


def _parser():
    p = argparse.ArgumentParser()
    add_cohort_arguments(p)
    return p


@pytest.mark.parametrize("argv, expected", [
    (["--predict", "120,-40"], [(120.0, -40.0)]),
    (["--predict", "-40,120"], [(-40.0, 120.0)]),
    (["--predict=-40,120"], [(-40.0, 120.0)]),
    (["--predict", "-40.5,-3", "--predict", "120,-40"], [(-40.5, -3.0), (120.0, -40.0)]),
])
def test_predict_values_with_leading_minus_parse(argv, expected):
    assert _parser().parse_args(argv).predict == expected


def test_predict_parses_through_the_lu_dosimetry_entry_point():
    from LuDosimetryLib.cli import build_parser

    a = build_parser().parse_args(["cohort", "--models", "m", "--predict", "-40,120", "--cutoff", "-10,-5"])
    assert a.predict == [(-40.0, 120.0)] and a.cutoff == [(-10.0, -5.0)] and a.models == "m"
    with pytest.raises(SystemExit):  # a real unknown option is still refused
        build_parser().parse_args(["cohort", "--predictt", "1,2"])


def test_bootstrap_interval_matches_wald_interval_on_a_large_cohort():
    """Independent check: on 1,500 patients the percentile bootstrap interval of the logistic
    probability agrees with the delta-method (Wald) interval from the Fisher information,
    expit(eta ± 1.96 se(eta)), to 0.02 in probability."""
    X, y, _ = simulate_logistic_cohort(1500, seed=5)
    m = fit_response_model(X, y, "logistic", FEATURES)
    m.bootstrap = bootstrap_replicates("logistic", X, y, 400, seed=1)
    x0 = np.array([120.0, -40.0])
    pred = predict_patient({"logistic": m}, *x0)["models"]["logistic"]
    Z = np.column_stack([np.ones(len(y)), X])
    b = np.r_[m.coefficients_original_units()["beta0"], [m.coefficients_original_units()[f"beta_{f}"] for f in FEATURES]]
    p = 1 / (1 + np.exp(-Z @ b))
    cov = np.linalg.inv(Z.T @ (Z * (p * (1 - p))[:, None]))
    z0 = np.r_[1.0, x0]
    eta, se = z0 @ b, np.sqrt(z0 @ cov @ z0)
    wald = 1 / (1 + np.exp(-(eta + np.array([-1.96, 1.96]) * se)))
    assert pred["ci"][0] < pred["probability"] < pred["ci"][1]
    np.testing.assert_allclose(pred["ci"], wald, atol=0.02)
    assert pred["n_resamples"] == 400 and pred["warnings"] == []


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A cohort result folder as `cohort` writes it: models/*_model.json with replicates and
    the demo table (no analysis run)."""
    root = tmp_path_factory.mktemp("models_dir")
    t = make_demo_cohort(0).table
    (root / "demo_cohort.csv").write_text(t.to_csv_text(), encoding="utf-8")
    X = np.column_stack([t.cumulative_tumor_dose_Gy, t.delta_ad_per_aa_percent])
    (root / "models").mkdir()
    for name, kind, cols in (("logistic", "logistic", [0, 1]), ("svm", "svm", [0, 1]), ("logistic_cAD", "logistic", [0])):
        m = fit_response_model(X[:, cols], t.responder, kind, [FEATURES[c] for c in cols])
        m.bootstrap = bootstrap_replicates(kind, X[:, cols], t.responder, 60, seed=0)
        m.save_json(root / "models" / f"{name}_model.json")
    return root


def test_saved_replicates_round_trip_and_are_validated(saved_models, tmp_path):
    f = saved_models / "models" / "svm_model.json"
    m = ResponseModel.load_json(f)
    assert len(m.bootstrap["replicates"]) == 60
    a = predict_patient({"svm": m}, 120, -40)["models"]["svm"]
    assert a["ci"][0] <= a["probability"] <= a["ci"][1] and 0 < a["ci"][1] - a["ci"][0] < 1
    d = json.loads(f.read_text())
    d["bootstrap"]["replicates"][3]["params"]["gamma"] = -1
    bad = tmp_path / "bad_model.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(ModelFileError, match=r"bootstrap\.replicates\[3\]\.params\.gamma"):
        ResponseModel.load_json(bad)


def test_models_dir_predicts_fast_without_reanalysis(saved_models, tmp_path, monkeypatch, capsys):
    from LuDosimetryLib.cli import main
    from LuResponseLib import analysis

    monkeypatch.setattr(analysis, "run_cohort_analysis", lambda *a, **k: pytest.fail("re-analysis"))
    out = tmp_path / "pred"
    t0 = time.perf_counter()
    assert main(["cohort", "--models", str(saved_models), "--predict", "120,-40", "--out", str(out)]) == 0
    elapsed = time.perf_counter() - t0
    assert elapsed < 3.0, f"--models --predict took {elapsed:.2f} s"
    d = json.loads((out / "cohort_results.json").read_text())
    (p,) = d["predictions"]
    assert (p["cumulative_tumor_dose_Gy"], p["delta_ad_per_aa_percent"]) == (120.0, -40.0)
    assert set(p["models"]) == {"logistic", "svm", "logistic_cAD"}
    for e in p["models"].values():
        assert e["ci"][0] <= e["probability"] <= e["ci"][1] and e["n_resamples"] == 60
    # the same numbers as predicting from the loaded models directly
    direct = ResponseModel.load_json(saved_models / "models" / "logistic_model.json")
    assert p["models"]["logistic"]["probability"] == pytest.approx(
        float(direct.predict_probability([[120.0, -40.0]], warn=False)[0]), abs=1e-15)
    html = (out / "cohort_report.html").read_text()
    assert "New patient: cAD 120 Gy" in html and "Bootstrap interval" in html
    for stem in ("fig5_cutoff_scatter", "fig6_probability_surfaces"):  # the patient's label on both figures
        assert "<!-- 120 Gy, -40 % -->" in (out / "figures" / f"{stem}.svg").read_text(), stem
    assert "logistic" in capsys.readouterr().out


def test_models_dir_errors_are_clear(tmp_path, capsys):
    from LuDosimetryLib.cli import main

    assert main(["cohort", "--models", str(tmp_path), "--predict", "1,2", "--out", str(tmp_path / "o")]) != 0
    assert "no model files" in capsys.readouterr().err
    assert main(["cohort", "--models", str(tmp_path), "--out", str(tmp_path / "o")]) != 0
    assert "--models is used with --predict" in capsys.readouterr().err


def test_patient_marked_on_figures():
    from LuResponseLib.plots import figure_cutoff_scatter, figure_probability_surfaces

    t = make_demo_cohort(0).table
    X = np.column_stack([t.cumulative_tumor_dose_Gy, t.delta_ad_per_aa_percent])
    m = fit_response_model(X, t.responder, "logistic", FEATURES)
    for fig in (figure_cutoff_scatter(X[:, 0], X[:, 1], t.response, patients=[(300.0, 40.0)]),
                figure_probability_surfaces({"logistic": m}, X[:, 0], X[:, 1], t.responder, [(300.0, 40.0)])):
        ax = fig.axes[0]
        stars = [c for c in ax.collections if np.allclose(c.get_offsets(), [[300.0, 40.0]])]
        assert len(stars) == 1
        lo, hi = ax.get_xlim(), ax.get_ylim()
        assert lo[0] <= 300 <= lo[1] and hi[0] <= 40 <= hi[1]  # the axes reach the patient
        assert any(tx.get_text() == "300 Gy, +40 %" for tx in ax.texts)


@pytest.mark.parametrize("seed", [None, 3])
def test_sigmoid_interval_never_negative(seed):
    """The demo cohort (whose D_half interval reached -97 Gy before the bound) and flat
    dose-response data: the interval is not bounded by the data below; it stops at 0 Gy."""
    from LuResponseLib.sigmoid import fit_sigmoid

    if seed is None:
        t = make_demo_cohort(0).table
        cad, y = t.cumulative_tumor_dose_Gy, t.responder
    else:
        rng = np.random.default_rng(seed)
        cad, y = rng.uniform(20, 250, 77), rng.random(77) < 0.45
    s = fit_sigmoid(cad, y)
    assert s.D_half_ci95_Gy[0] >= 0 and s.bounds["D_half_Gy"][0] >= 0 and s.D_half_Gy >= 0
    assert s.ci_limited["D_half_Gy"][0]  # the lower end is the bound, and the notes say so
    assert any("D_half_Gy is not bounded by the data on the lower" in n for n in s.notes)


def test_survival_units_and_numbers_at_risk():
    from LuResponseLib.survival import kaplan_meier

    t = np.array([1.0, 2, 2, 3, 5, 8, 8, 13])
    e = np.array([1, 1, 0, 1, 0, 1, 1, 0], dtype=bool)
    km = kaplan_meier(t, e)
    assert km.n_at_risk([0, 2, 2.5, 8, 14]) == [8, 7, 5, 3, 0]  # count of times >= tick
    from lifelines import KaplanMeierFitter

    et = KaplanMeierFitter().fit(t, e).event_table  # lifelines: at risk at each event time
    for tick in et.index[1:]:
        assert km.n_at_risk([tick])[0] == int(et.loc[tick, "at_risk"])
    assert km.to_dict()["time_unit"] == "months"


def test_km_figure_has_at_risk_rows_and_lesion_fit_within_range():
    from LuResponseLib.lesions import regress_volume_change
    from LuResponseLib.plots import figure_km, figure_lesions
    from LuResponseLib.survival import compare_survival

    rng = np.random.default_rng(0)
    t = rng.exponential(12, 40)
    c = compare_survival(t, rng.random(40) < 0.7, rng.random(40) < 0.5, "PFS", "x", "x > 1")
    ax = figure_km([c]).axes[0]
    texts = [tx.get_text() for tx in ax.texts]
    assert "Number at risk" in texts and str(c.groups[0].n) in texts and str(c.groups[1].n) in texts
    ad = rng.uniform(20, 380, 150)
    dv = np.clip(10 - 0.32 * ad + rng.normal(0, 20, 150), -95, 60)
    lin = regress_volume_change(ad, dv)
    ax = figure_lesions(ad, dv, lin).axes[0]
    fit_line = ax.lines[0]
    assert np.min(fit_line.get_xdata()) >= ad.min() - 1e-9 and np.max(fit_line.get_xdata()) <= ad.max() + 1e-9
    assert min(np.min(ln.get_ydata()) for ln in ax.lines if len(ln.get_xdata()) > 2) >= -100
    assert ax.get_ylim()[0] >= -105 - 1e-9


@pytest.mark.slow
def test_full_analysis_writes_prediction_to_json_report_figures_and_models(tmp_path):
    """`cohort TABLE --predict`: the prediction (with interval) in cohort_results.json and the
    report, the star on Figs. 5 and 6, and the replicates in the saved models, which then give
    the same answer through `--models` without the analysis."""
    from LuDosimetryLib.cli import main

    csv = tmp_path / "cohort.csv"
    make_demo_cohort(1).table.write_csv(csv)
    out = tmp_path / "res"
    assert main(["cohort", str(csv), "--out", str(out), "--bootstrap", "40", "--cv-repeats", "0",
                 "--predict=-40,120", "--predict", "150,-60"]) == 0
    d = json.loads((out / "cohort_results.json").read_text())
    a, b = d["predictions"]
    assert (a["cumulative_tumor_dose_Gy"], a["delta_ad_per_aa_percent"]) == (-40.0, 120.0)
    assert any("outside the training range" in w for w in a["models"]["logistic"]["warnings"])
    for name in ("logistic", "svm", "logistic_cAD", "logistic_delta"):
        e = b["models"][name]
        assert e["ci"][0] <= e["probability"] <= e["ci"][1] and e["n_resamples"] == 40
    assert b["models"]["sigmoid_eq2"]["ci"] is None
    html = (out / "cohort_report.html").read_text()
    assert "New patient: cAD 150 Gy" in html and "New patient: cAD -40 Gy" in html
    for stem in ("fig5_cutoff_scatter", "fig6_probability_surfaces"):
        svg = (out / "figures" / f"{stem}.svg").read_text()
        assert "<!-- 150 Gy, -60 % -->" in svg and "<!-- -40 Gy, +120 % -->" in svg, stem
    out2 = tmp_path / "again"
    assert main(["cohort", "--models", str(out), "--predict", "150,-60", "--out", str(out2), "--no-plots"]) == 0
    (again,) = json.loads((out2 / "cohort_results.json").read_text())["predictions"]
    for name in ("logistic", "svm", "logistic_cAD", "logistic_delta"):
        assert again["models"][name]["probability"] == pytest.approx(b["models"][name]["probability"], abs=1e-12)
        assert again["models"][name]["ci"] == pytest.approx(b["models"][name]["ci"], abs=1e-12)


def test_replicate_count_bounded_on_large_cohorts():
    from LuResponseLib.prediction import replicate_count

    assert replicate_count("logistic", 1000, 73) == 1000 and replicate_count("svm", 1000, 73) == 200
    assert replicate_count("logistic", 1000, 10_000) == 200 and replicate_count("svm", 1000, 10_000) == 10
    assert replicate_count("svm", 50, 73) == 50
    X, y, _ = simulate_logistic_cohort(3000, seed=2)
    b = bootstrap_replicates("svm", X, y, 1000, seed=0)
    assert b["n_resamples"] == len(b["replicates"]) == 10 and "10 resamples (not 1000)" in b["notes"][0]
