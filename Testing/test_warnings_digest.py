"""Warnings a physicist reads (results/warnings_digest.py, issue 12): one line per problem, not per
cycle; voxel-wise fallbacks per VOI with voxel counts; the demo's comparison shows every VOI."""

from __future__ import annotations

import csv
import json

from LuDosimetryLib.results.truth import full_comparison, full_comparison_text
from LuDosimetryLib.results.warnings_digest import digest


def test_same_problem_in_several_cycles_is_one_line():
    ws = ["kidney_left cycle 1: voxel-wise fit fallback in 12 of 400 VOI voxels (mono_last2 12, trapezoid 0)",
          "kidney_left cycle 3: voxel-wise fit fallback in 9 of 400 VOI voxels (mono_last2 9, trapezoid 0)",
          "kidney_left cycle 2: voxel-wise fit fallback in 15 of 400 VOI voxels (mono_last2 15, trapezoid 0)",
          "spleen cycle 1: voxel-wise fit fallback in 1 of 314 VOI voxels (mono_last2 1, trapezoid 0)",
          "no recovery_coefficients in the manifest: no partial-volume correction applied",
          "no recovery_coefficients in the manifest: no partial-volume correction applied",
          "tumor_a cycle 1: one time point only, madsen method (T_eff 50.1 h from cycle 2)",
          "tumor_a cycle 3: one time point only, madsen method (T_eff 50.1 h from cycle 2)"]
    out = digest(ws)
    assert out == [
        ("kidney_left cycles 1, 2, 3: voxel-wise fit fallback in 12/15/9 of 400 VOI voxels (mono_last2 12/15/9, "
         "trapezoid 0)"),
        "spleen cycle 1: voxel-wise fit fallback in 1 of 314 VOI voxels (mono_last2 1, trapezoid 0)",
        "no recovery_coefficients in the manifest: no partial-volume correction applied",
        "tumor_a cycles 1, 3: one time point only, madsen method (T_eff 50.1 h from cycle 2)"]


def test_different_problems_of_one_voi_stay_apart():
    out = digest(["k cycle 1: requested model 'mono' failed", "k cycle 2: zero integral, no Lea-Catcheside factor"])
    assert len(out) == 2


def test_run_warnings_per_voi_with_voxel_counts(coarse_patient, tmp_path):
    from LuDosimetryLib.pipeline import PipelineOptions, run_manifest

    result = run_manifest(coarse_patient, tmp_path / "out", PipelineOptions(registration="none"))
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert not any("voxel(s) used a fallback" in w for w in s["warnings"])  # no longer one line per map
    per_voi = [w for w in s["warnings"] if "voxel-wise fit fallback in" in w]
    assert per_voi and all(" of " in w and "VOI voxels" in w for w in per_voi)
    assert any("cycles 1, 2:" in w for w in per_voi)  # one line for both cycles
    assert len(s["warnings"]) < len(s["warnings_detail"])
    # the full comparison names every VOI of the truth, organs and excluded tumours included
    with open(tmp_path / "out" / "voi_cycle_doses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    truth = json.loads((coarse_patient.parent / "ground_truth.json").read_text())
    table = full_comparison(rows, truth)
    assert {r["voi"] for r in table} == {v["name"] for v in truth["vois"]}
    why = {r["voi"]: r["why"] for r in table}
    # spleen is corrected by default (an organ at risk); liver is not, and the table says why it differs
    assert "no partial-volume correction" in why["liver"]
    assert "no partial-volume correction" not in why["spleen"]
    assert "below the minimum tumour volume" in why["tumor_node_2"]
    assert all(r["measured_D90_Gy"] == r["measured_D90_Gy"] for r in table)  # D90 given where the truth has one
    text = full_comparison_text(rows, truth)
    assert "spleen" in text and "D90" in text
    # uncertainty budget written: components beside the total, summary block, ± in the report
    assert all(abs(float(r["absorbed_dose_uncertainty_Gy"]) ** 2 - sum(float(r[f"u_{c}_Gy"]) ** 2 for c in
               ("calibration", "rc", "volume", "registration", "fit", "teff"))) < 1e-3 * float(r["absorbed_dose_Gy"]) ** 2
               for r in rows)
    assert set(s["uncertainty"]["metrics"]) == {"cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent",
                                                "kidney_cumulative_dose_Gy", "kidney_bed_Gy"}
    assert s["uncertainty"]["seconds"] < 2.0
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    sd = s["uncertainty"]["metrics"]["kidney_bed_Gy"]["sigma"]
    assert f"{s['kidney_bed_Gy']:.2f} ± {sd:.2f}" in html
    assert result.summary["uncertainty"]["inputs"]["calibration_rel"] == 0.03


def test_two_scans_of_one_cycle_are_not_merged_into_one_cycle_list():
    from LuDosimetryLib.results.warnings_digest import digest

    ws = ["registration cycle 2 #1/3: residual 4.1 mm", "registration cycle 2 #3/3: residual 5.0 mm",
          "registration cycle 3 #1/3: residual 4.4 mm"]
    out = digest(ws)
    assert not any("cycles 2, 2" in w for w in out)
    assert "registration cycle 2 #3/3: residual 5.0 mm" in out
