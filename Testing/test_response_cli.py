"""`lu-dosimetry cohort`: end-to-end outputs, demo determinism, atomic writing, error messages."""

import argparse
import base64
import json
import re

import numpy as np
import pytest

from LuResponseLib import report as report_module
from LuResponseLib.cli import add_cohort_arguments, run_cohort_command
from LuResponseLib.models import ResponseModel
from LuResponseLib.synthetic import make_demo_cohort
from LuResponseLib.table import load_cohort_table, load_cycle_table, load_lesion_table


def run(argv):
    p = argparse.ArgumentParser()
    add_cohort_arguments(p)
    return run_cohort_command(p.parse_args(argv))


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """One full demo run through the real `lu-dosimetry` entry point, with figures."""
    from LuDosimetryLib.cli import main

    out = tmp_path_factory.mktemp("cli") / "demo"
    code = main(["cohort", "--demo", "--seed", "2", "--out", str(out), "--bootstrap", "100", "--cv-repeats", "2",
                 "--predict", "120,-55"])
    assert code == 0
    return out


def test_demo_outputs_complete(demo_out):
    for name in ("cohort_report.html", "cohort_results.json", "demo_cohort.csv", "demo_voi_cycle_doses.csv",
                 "demo_lesions.csv", "demo_visits.csv", "models/logistic_model.json", "models/svm_model.json"):
        assert (demo_out / name).is_file(), name
    figs = {p.name for p in (demo_out / "figures").iterdir()}
    for stem in ("fig1_ad_per_aa_per_cycle", "fig2_subgroups", "fig3_response_boxplots", "fig4_groups_sigmoid",
                 "fig5_cutoff_scatter", "fig6_probability_surfaces", "roc_curves", "km_survival", "landmark_hazard_ratios",
                 "waterfall_best_shrinkage", "waterfall_delta_ad_per_aa", "lesion_dv_tcp"):
        assert {f"{stem}.png", f"{stem}.svg"} <= figs, stem
    assert not [p for p in demo_out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_results_json_contract(demo_out):
    d = json.loads((demo_out / "cohort_results.json").read_text())
    s = d["sigmoid"]
    for k in ("D_half_Gy", "k_Gy", "P_max", "r2", "rmse"):
        assert isinstance(s[k], float)
    assert [g["n"] for g in s["groups"]] == [11] * 6 + [7]
    assert all({"n", "median_cAD_Gy", "proportion_PR"} <= set(g) for g in s["groups"])
    for m in ("logistic", "svm"):
        auc, ci = d["models"][m]["auc"], d["models"][m]["auc_ci95"]
        assert 0.5 < auc < 1 and ci[0] < auc < ci[1]
        y = np.array([r in ("PR", "CR") for r in load_cohort_table(demo_out / "demo_cohort.csv").response])
        from sklearn.metrics import roc_auc_score

        assert auc == pytest.approx(roc_auc_score(y, d["models"][m]["oof_probability"]), abs=1e-12)
    assert d["descriptive"]["response_counts"] == {"CR": 0, "PR": 28, "SD": 33, "PD": 12, "missing": 0}
    assert d["rules"][0]["name"] == "cAD >= 100 Gy and dAD/AA <= -50 %"
    assert d["survival"] and d["lesions"]["categories"]["n_patients"] == 73
    assert d["per_cycle"]["tumor"]["cycles"] == [1, 2, 3, 4]


def test_report_is_self_contained(demo_out):
    html = (demo_out / "cohort_report.html").read_text()
    assert "<script" not in html and not re.search(r'src="(?!data:)', html)
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == len(list((demo_out / "figures").glob("*.png")))
    assert base64.b64decode(imgs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    for text in ("Eq. 2 parameter", "Cut-off rules", "Survival", "Table 2", "Synthetic demonstration cohort"):
        assert text in html


def test_demo_tables_reload_and_saved_models_reproduce(demo_out):
    t = load_cohort_table(demo_out / "demo_cohort.csv")
    assert t.n_patients == 73 and t.response_counts()["PR"] == 28
    ref = make_demo_cohort(2).table
    np.testing.assert_allclose(t.cumulative_tumor_dose_Gy, ref.cumulative_tumor_dose_Gy, rtol=1e-9)
    assert len(load_cycle_table(demo_out / "demo_voi_cycle_doses.csv")) > 73 * 4
    assert len(load_lesion_table(demo_out / "demo_lesions.csv")) > 73
    m = ResponseModel.load_json(demo_out / "models" / "logistic_model.json")
    d = json.loads((demo_out / "cohort_results.json").read_text())
    c = d["models"]["logistic"]["trained_model"]["coefficients_original_units"]
    assert m.coefficients_original_units() == c


def test_demo_is_deterministic_per_seed():
    a, b, c = make_demo_cohort(5), make_demo_cohort(5), make_demo_cohort(6)
    assert a.table.to_csv_text() == b.table.to_csv_text()
    assert a.table.to_csv_text() != c.table.to_csv_text()
    for demo in (a, c):
        assert demo.table.response_counts() == {"CR": 0, "PR": 28, "SD": 33, "PD": 12, "missing": 0}
        cad = demo.table.cumulative_tumor_dose_Gy
        assert 60 < np.median(cad) < 140 and -45 < np.median(demo.table.delta_ad_per_aa_percent) < -10


def test_csv_table_run_user_cutoffs_and_prediction(tmp_path, capsys):
    csv = tmp_path / "cohort.csv"
    make_demo_cohort(3).table.write_csv(csv)
    out = tmp_path / "res"
    assert run([str(csv), "--out", str(out), "--no-plots", "--bootstrap", "50", "--cv-repeats", "0",
                "--cutoff", "120,-40", "--predict", "900,-30"]) == 0
    d = json.loads((out / "cohort_results.json").read_text())
    assert [r["name"] for r in d["rules"]][-1] == "cAD >= 120 Gy and dAD/AA <= -40 %"
    printed = capsys.readouterr().out
    assert "CV AUC" in printed and "outside the training range" in printed
    assert not (out / "figures").exists()


def test_results_dir_assembly_via_cli(tmp_path):
    from test_response_table import _write_result_folders

    demo = make_demo_cohort(4)
    ids = list(demo.table.patient_ids)
    _write_result_folders(tmp_path / "results", demo, ids)
    clin = tmp_path / "clinical.csv"
    clin.write_text("patient_id,response\n" + "".join(f"{p},{r}\n" for p, r in zip(ids, demo.table.response)))
    out = tmp_path / "res"
    assert run(["--results-dir", str(tmp_path / "results"), "--clinical", str(clin), "--out", str(out),
                "--no-plots", "--bootstrap", "20", "--cv-repeats", "0"]) == 0
    d = json.loads((out / "cohort_results.json").read_text())
    assert d["n_patients"] == 73 and d["per_cycle"]["tumor"]["n_patients"] == 73
    assert load_cohort_table(out / "cohort_table.csv").n_patients == 73


def test_outputs_all_or_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "build_report_html", boom)
    out = tmp_path / "res"
    with pytest.raises(RuntimeError, match="disk full"):
        run(["--demo", "--out", str(out), "--no-plots", "--bootstrap", "10", "--cv-repeats", "0"])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # temporary folder removed too


def test_existing_output_folder_entries_replaced(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "cohort_results.json").write_text("old")
    args = ["--demo", "--out", str(out), "--no-plots", "--bootstrap", "10", "--cv-repeats", "0"]
    with pytest.raises(ValueError, match="already holds a result set .*--overwrite"):  # refused before computing
        run(args)
    assert (out / "cohort_results.json").read_text() == "old"
    assert run(args + ["--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert json.loads((out / "cohort_results.json").read_text())["n_patients"] == 73
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".lu-results.json"]


def test_malformed_table_exit_code_and_message(tmp_path, capsys):
    from LuDosimetryLib.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,cumulative_tumor_dose_Gy,delta_ad_per_aa_percent,response\n"
                   "P1,100,-20,PR\nP2,x,-20,SD\nP2,50,-10,YY\n")
    assert main(["cohort", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s) in cohort table" in err
    assert "line 3 (patient P2), column 'cumulative_tumor_dose_Gy'" in err
    assert "line 4 (patient P2), column 'response': unknown response code 'YY'" in err
    assert "line 4 (patient P2), column 'patient_id': duplicate patient 'P2'" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="exactly one of"):
        run(["--out", str(tmp_path / "o")])


@pytest.mark.parametrize("n,responses", [(40, ("PR", "SD", "PD")), (8, ("PR", "SD", "PD")), (30, ("PR",))])
def test_small_or_degenerate_cohorts_give_warnings_not_crashes(tmp_path, n, responses):
    import warnings

    from LuResponseLib.analysis import CohortAnalysisOptions, run_cohort_analysis
    from LuResponseLib.report import write_cohort_outputs
    from LuResponseLib.table import cohort_table_from_rows

    rng = np.random.default_rng(n)
    rows = [{"patient_id": f"P{i}", "cumulative_tumor_dose_Gy": "" if i == 3 else float(rng.uniform(20, 200)),
             "delta_ad_per_aa_percent": float(rng.normal(-30, 20)), "response": responses[i % len(responses)]}
            for i in range(n)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = run_cohort_analysis(cohort_table_from_rows(rows), CohortAnalysisOptions(n_bootstrap=20, n_cv_repeats=0))
        paths = write_cohort_outputs(r, tmp_path / "o", make_plots=n != 40)  # n=40: full path covered by demo_out
    assert any("P3" in w for w in r.warnings)  # the patient without cAD is named, not dropped silently
    if n == 8 or responses == ("PR",):
        assert not r.cv and any("skipped" in w for w in r.warnings)
    else:
        assert set(r.cv) == {"logistic", "svm", "logistic_cAD", "logistic_delta"}
    assert (tmp_path / "o" / "cohort_report.html") in paths


def test_demo_visits_and_pet_tables_reload_and_rerun_via_cli(demo_out, tmp_path, capsys):
    """The demo's scans and PET lesions written as CSV read back and give the same landmark and
    lesion results through --visits / --pet-lesions; --landmark-days chooses the landmarks."""
    from LuResponseLib.pet_lesions import load_pet_lesion_table
    from LuResponseLib.visits import load_visit_table

    v = load_visit_table(demo_out / "demo_visits.csv")
    pet = load_pet_lesion_table(demo_out / "demo_pet_lesions.csv")
    assert len(v.patients) == 73 and len(pet.scans) == 73 and pet.modality == "PET"
    d = json.loads((demo_out / "cohort_results.json").read_text())
    lm = d["landmark_analysis"]
    assert lm["not_run"] is None and [r["landmark"] for r in lm["landmarks"]] == [
        "150 days", "180 days", "36 weeks", "48 weeks", "72 weeks", "no limit"]
    assert all(r["excluded_counts"]["best_response_pd"] == 12 for r in lm["landmarks"])
    assert d["options"]["model_settings"]["logistic_method"] == "maximum likelihood (unpenalised)"
    out = tmp_path / "o"
    code = run([str(demo_out / "demo_cohort.csv"), "--visits", str(demo_out / "demo_visits.csv"),
                "--pet-lesions", str(demo_out / "demo_pet_lesions.csv"), "--landmark-days", "150",
                "--landmark-days", "none", "--out", str(out), "--bootstrap", "20", "--cv-repeats", "0",
                "--no-plots", "--seed", "2"])
    assert code == 0
    d2 = json.loads((out / "cohort_results.json").read_text())
    assert [r["landmark"] for r in d2["landmark_analysis"]["landmarks"]] == ["150 days", "no limit"]
    assert d2["landmark_analysis"]["landmarks"][0]["hazard_ratio_per_1_percent_change"] == pytest.approx(
        lm["landmarks"][0]["hazard_ratio_per_1_percent_change"], rel=1e-6)
    assert d2["lesions"]["pet_response"]["first_followup_lesion_counts"] == \
        d["lesions"]["pet_response"]["first_followup_lesion_counts"]
    assert "landmark 150 days" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run([str(demo_out / "demo_cohort.csv"), "--landmark-days", "-3"])
