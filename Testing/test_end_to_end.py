"""End to end on the synthetic patient: `lu-dosimetry demo` and `lu-dosimetry run`.

Shared session fixtures of Testing/conftest.py: `demo_dir` (one `lu-dosimetry demo` run, 4 cycles with
patient motion; the tests on it are marked `slow`) and `motion_free_run` (2 cycles, no motion) for the
claims that do not depend on the number of cycles or on registration.

Accuracy: pipeline absorbed dose per VOI per cycle vs the analytic ground truth (tumours and
kidneys of at least 10 mL) within 10 % (issue 4 acceptance; issue 2 asked for 15 %).
"""

import csv
import hashlib
import json

import numpy as np
import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.results.truth import compare_with_ground_truth

CONTRACT_COLUMNS = ["patient_id", "cycle", "voi", "kind", "volume_ml", "administered_activity_MBq",
                    "absorbed_dose_Gy", "ad_per_aa_Gy_per_GBq", "fit_model", "effective_half_life_h",
                    "recovery_coefficient", "flags"]


@pytest.fixture
def motion_free_out(motion_free_run):
    """Output folder of the session's shared run on the 2-cycle motion-free patient (conftest.py)."""
    return motion_free_run.out_dir


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # the demo run (4 cycles, registration) takes ~1.5 min
def test_demo_writes_contract_outputs(demo_dir):
    for name in ("voi_cycle_doses.csv", "summary.json", "report.html"):
        assert (demo_dir / name).is_file(), name
    with open(demo_dir / "voi_cycle_doses.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert set(CONTRACT_COLUMNS) <= set(reader.fieldnames)
    assert {int(r["cycle"]) for r in rows} == {1, 2, 3, 4}
    s = json.loads((demo_dir / "summary.json").read_text())
    for key in ("patient_id", "cycles", "cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent",
                "kidney_cumulative_dose_Gy", "kidney_bed_Gy", "warnings"):
        assert key in s, key
    html = (demo_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert "tumor_liver_1" in html


@pytest.mark.slow  # the demo run (4 cycles, registration) takes ~1.5 min
def test_demo_doses_match_ground_truth(demo_dir):
    cmp = compare_with_ground_truth(demo_dir / "voi_cycle_doses.csv",
                                    demo_dir / "synthetic_patient" / "ground_truth.json", min_volume_ml=10.0)
    kinds = {r["kind"] for r in cmp.rows}
    assert kinds == {"tumor", "kidney"}
    assert len(cmp.rows) == 4 * 5  # 3 tumours >= 10 mL + 2 kidneys, 4 cycles
    # issue 4 acceptance is 10 %; measured 3.1 % (rigid CT + two-stage cycle registration), guard at 6 %
    assert cmp.max_abs_relative_error < 0.06, cmp.to_text()


@pytest.mark.slow  # the demo run (4 cycles, registration) takes ~1.5 min
def test_pv_corrected_tumour_activity_matches_truth(demo_dir):
    """Issue 3 acceptance: tumour activity (>= 10 mL) within 10 % of truth after PVC, every scan."""
    truth = json.loads((demo_dir / "synthetic_patient" / "ground_truth.json").read_text())
    with open(demo_dir / "voi_time_activity.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    checked = 0
    for voi in truth["vois"]:
        if voi["kind"] != "tumor" or voi["volume_ml"] < 10:
            continue
        for r in (r for r in rows if r["voi"] == voi["name"]):
            c = voi["cycles"][int(r["cycle"]) - 1]
            true_MBq = c["concentration_Bq_per_ml"][f"{float(r['hours_post_injection']):g}"] * voi["volume_ml"] * 1e-6
            assert float(r["value_pv_corrected"]) == pytest.approx(true_MBq, rel=0.10), (voi["name"], r)
            # and the correction matters: uncorrected values are far lower
            assert float(r["value"]) < 0.9 * true_MBq
            checked += 1
    assert checked == 3 * 4 * 3


def test_lesion_tracking_in_summary(motion_free_out):
    s = json.loads((motion_free_out / "summary.json").read_text())
    lt = s["lesion_tracking"]
    assert sorted(t["lesion"] for t in lt["tracks"]) == ["tumor_liver_1", "tumor_liver_2", "tumor_node_1"]
    assert all(t["category"] in ("disappearing", "decreasing", "stable", "increasing", "new") for t in lt["tracks"])
    assert isinstance(lt["heterogeneous"], bool)


def test_small_tumour_excluded_and_listed(motion_free_out):
    s = json.loads((motion_free_out / "summary.json").read_text())
    assert "tumor_node_2" in s["tumors_excluded"]
    assert any("tumor_node_2" in w and "excluded" in w for w in s["warnings"])


@pytest.mark.slow  # the demo run (4 cycles, registration) takes ~1.5 min
def test_summary_metrics_consistent_with_rows(demo_dir):
    with open(demo_dir / "voi_cycle_doses.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "tumor" and r["included"] == "True"]
    s = json.loads((demo_dir / "summary.json").read_text())
    per_tumour = {}
    for r in rows:
        per_tumour.setdefault(r["voi"], {})[int(r["cycle"])] = r
    cad = np.mean([sum(float(x["absorbed_dose_Gy"]) for x in c.values()) for c in per_tumour.values()])
    assert s["cumulative_tumor_dose_Gy"] == pytest.approx(cad, rel=1e-4)
    first = np.mean([float(c[1]["ad_per_aa_Gy_per_GBq"]) for c in per_tumour.values()])
    last = np.mean([float(c[4]["ad_per_aa_Gy_per_GBq"]) for c in per_tumour.values()])
    assert s["delta_ad_per_aa_percent"] == pytest.approx(100 * (last / first - 1), rel=1e-3)
    # ground truth falls ~10 %/cycle -> about -27 % over 3 cycles
    assert -40 < s["delta_ad_per_aa_percent"] < -15


def test_run_does_not_modify_input(coarse_patient, tmp_path):
    # the small shared 2-cycle patient (conftest.py): the claim depends on neither cycles nor resolution
    patient = coarse_patient.parent
    before = _digest(patient)
    assert main(["run", str(patient / "study.json"), "--out", str(tmp_path / "out"),
                 "--registration", "translation"]) == 0
    assert _digest(patient) == before
    assert (tmp_path / "out" / "summary.json").is_file()
    # nothing left behind but the results and the manifest of the files they own (issue 13)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".lu-results.json", "dvh_cumulative.csv",
                                                                      "report.html", "report.pdf", "summary.json",
                                                                      "voi_cycle_doses.csv", "voi_time_activity.csv"]


def test_run_reports_manifest_errors_cleanly(tmp_path, capsys):
    (tmp_path / "study.json").write_text(json.dumps({"patient_id": "X", "cycles": []}))
    assert main(["run", str(tmp_path / "study.json"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cycles" in err and "segmentation" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_results_assemble_into_cohort_table(motion_free_out, tmp_path):
    """Contract 2 -> contract 3: LuResponse assembles the patient's summary with a clinical CSV."""
    from LuResponseLib.table import assemble_cohort_table

    s = json.loads((motion_free_out / "summary.json").read_text())
    clinical = tmp_path / "clinical.csv"
    clinical.write_text(f"patient_id,response,sex\n{s['patient_id']},PR,F\n")
    assembled = assemble_cohort_table(motion_free_out, clinical)
    t = assembled.table
    ids = [str(x) for x in t.column("patient_id")]
    i = ids.index(s["patient_id"])
    assert float(t.column("cumulative_tumor_dose_Gy")[i]) == pytest.approx(s["cumulative_tumor_dose_Gy"], rel=1e-9)
    assert float(t.column("delta_ad_per_aa_percent")[i]) == pytest.approx(s["delta_ad_per_aa_percent"], rel=1e-9)
    assert str(t.column("response")[i]) == "PR"
    assert assembled.cycles is not None


@pytest.mark.slow  # the demo run (4 cycles, registration) takes ~1.5 min
def test_next_cycle_plans_in_summary(demo_dir):
    s = json.loads((demo_dir / "summary.json").read_text())
    # 4 of 4 cycles given: the seed-000 course is complete
    assert s["next_cycle_activity"]["activity_MBq"] is None
    p2 = s["next_cycle_activity_renal_bed"]
    # kidney BED ~20 Gy after 4 cycles is below 27 - 2 Gy: the seed-002 rule gives another 7.4 GBq cycle
    assert s["kidney_bed_Gy"] < 25
    assert p2["continue_treatment"] is True and p2["activity_MBq"] == pytest.approx(7400.0)


def test_cohort_lesion_metrics_leave_out_excluded_tumours(motion_free_out, tmp_path):
    """The CSV carries `excluded`; the assembled lesion metrics match the summary's cAD."""
    from LuResponseLib.table import assemble_cohort_table

    s = json.loads((motion_free_out / "summary.json").read_text())
    t = assemble_cohort_table(motion_free_out).table
    i = [str(x) for x in t.column("patient_id")].index(s["patient_id"])
    assert float(t.column("n_lesions")[i]) == len(s["tumors_included"]) == 3
    assert float(t.column("mean_lesion_ad_Gy")[i]) == pytest.approx(s["cumulative_tumor_dose_Gy"], rel=1e-6)
