"""LuResponse cohort table (contract 3): loading, validation messages, assembly from result folders."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from LuResponseLib.errors import CohortTableError
from LuResponseLib.synthetic import make_demo_cohort
from LuResponseLib.table import (assemble_cohort_table, cohort_table_from_rows, load_cohort_table, load_cycle_table,
                                 load_lesion_table)

ROOT = Path(__file__).resolve().parents[1]

GOOD = """patient_id,cumulative_tumor_dose_Gy,delta_ad_per_aa_percent,response,sex,pfs_months,pfs_event
P1,120.5,-55,PR,F,30.2,0
P2,80,-10,SD,M,20.1,1
P3,45.2,5.5,pd,M,8,1
P4,150,-30,CR,F,40,0
"""


def write(tmp_path, text, name="cohort.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_valid_table_types_and_responders(tmp_path):
    t = load_cohort_table(write(tmp_path, GOOD))
    assert t.n_patients == 4
    assert list(t.patient_ids) == ["P1", "P2", "P3", "P4"]
    np.testing.assert_allclose(t.cumulative_tumor_dose_Gy, [120.5, 80, 45.2, 150])
    assert list(t.response) == ["PR", "SD", "PD", "CR"]  # case normalised
    assert list(t.responder) == [True, False, False, True]  # CR counts as responder
    assert t.column("pfs_event").tolist() == [0, 1, 1, 0]
    assert t.missing == []
    assert t.response_counts() == {"CR": 1, "PR": 1, "SD": 1, "PD": 1, "missing": 0}


def test_malformed_table_one_error_lists_every_bad_row_and_column(tmp_path):
    text = """patient_id,cumulative_tumor_dose_Gy,response,pfs_event,os_months
P1,120,PR,0,12
P2,abc,XR,1,10
P3,80,SD,2,-4
P1,90,SD,1,5
P5,-3,PD,yes,7
"""
    with pytest.raises(CohortTableError) as ei:
        load_cohort_table(write(tmp_path, text))
    e = ei.value
    msg = str(e)
    got = {(p.line, p.column) for p in e.problems}
    expected = {
        (None, "delta_ad_per_aa_percent"),          # missing required column
        (3, "cumulative_tumor_dose_Gy"),             # non-numeric
        (3, "response"),                             # unknown code
        (4, "pfs_event"),                            # not 0/1
        (4, "os_months"),                            # negative time
        (5, "patient_id"),                           # duplicate patient
        (6, "cumulative_tumor_dose_Gy"),             # negative dose
    }
    assert got == expected, msg
    assert len(e.problems) == 7
    assert msg.startswith("7 problem(s) in cohort table")
    assert "line 3 (patient P2), column 'response': unknown response code 'XR'" in msg
    assert "line 3 (patient P2), column 'cumulative_tumor_dose_Gy': 'abc' is not a number" in msg
    assert "duplicate patient 'P1' (also on line 2)" in msg
    assert "column 'delta_ad_per_aa_percent': required column is missing" in msg
    assert isinstance(e, ValueError)  # the CLI prints ValueErrors as one clear message


def test_misspelled_required_column_gets_a_hint(tmp_path):
    text = "patient_id,cumulative_tumour_dose_Gy,delta_ad_per_aa_percent,response\nP1,1,2,PR\n"
    with pytest.raises(CohortTableError, match="found 'cumulative_tumour_dose_Gy'"):
        load_cohort_table(write(tmp_path, text))


def test_missing_values_are_reported_not_dropped(tmp_path):
    text = GOOD + "P5,,-20,SD,M,,\nP6,70,-20,,F,5,1\n"
    t = load_cohort_table(write(tmp_path, text))
    assert t.n_patients == 6  # kept
    miss = {(m.patient_id, m.column) for m in t.missing}
    assert miss == {("P5", "cumulative_tumor_dose_Gy"), ("P5", "pfs_months"), ("P5", "pfs_event"), ("P6", "response")}
    assert any("cumulative_tumor_dose_Gy: missing for 1 patient(s): P5 (line 6)" in n for n in t.notes)
    assert t.excluded_ids("cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent", "response") == ["P5", "P6"]
    assert t.complete("pfs_months").tolist() == [True, True, True, True, False, True]


def test_round_trip_csv_and_semicolon_and_bom(tmp_path):
    t = load_cohort_table(write(tmp_path, GOOD))
    p = t.write_csv(tmp_path / "out.csv")
    t2 = load_cohort_table(p)
    assert t2.to_rows() == t.to_rows()
    semi = "\ufeff" + GOOD.replace(",", ";")
    t3 = load_cohort_table(write(tmp_path, semi, "semi.csv"))
    assert t3.to_rows() == t.to_rows()


def test_extra_columns_kept_and_typed():
    rows = [{"patient_id": "A", "cumulative_tumor_dose_Gy": 1, "delta_ad_per_aa_percent": -1, "response": "PR",
             "ki67_percent": "3.5", "centre": "Oxford"},
            {"patient_id": "B", "cumulative_tumor_dose_Gy": 2, "delta_ad_per_aa_percent": -2, "response": "SD",
             "ki67_percent": "", "centre": "Toronto"}]
    t = cohort_table_from_rows(rows)
    assert t.column("ki67_percent").dtype == float and np.isnan(t.column("ki67_percent")[1])
    assert t.column("centre").tolist() == ["Oxford", "Toronto"]


def _write_result_folders(root: Path, demo, ids):
    cyc = demo.cycles
    header = ["patient_id", "cycle", "voi", "kind", "volume_ml", "administered_activity_MBq", "absorbed_dose_Gy",
              "ad_per_aa_Gy_per_GBq", "fit_model", "effective_half_life_h", "recovery_coefficient", "flags"]
    t = demo.table
    for p in ids:
        i = list(t.patient_ids).index(p)
        d = root / f"result_{p}"
        d.mkdir(parents=True)
        summary = {"patient_id": p, "cycles": [1, 2, 3, 4],
                   "cumulative_tumor_dose_Gy": float(t.cumulative_tumor_dose_Gy[i]),
                   "delta_ad_per_aa_percent": float(t.delta_ad_per_aa_percent[i]),
                   "kidney_cumulative_dose_Gy": float(t.column("kidney_cumulative_dose_Gy")[i]),
                   "kidney_bed_Gy": 20.0, "warnings": []}
        (d / "summary.json").write_text(json.dumps(summary))
        sel = cyc.column("patient_id") == p
        lines = [",".join(header)]
        for j in np.flatnonzero(sel):
            vals = []
            for h in header:
                v = cyc.columns[h][j]
                vals.append("" if v is None or (isinstance(v, float) and np.isnan(v)) else
                            (str(int(v)) if h == "cycle" else str(v)))
            lines.append(",".join(vals))
        (d / "voi_cycle_doses.csv").write_text("\n".join(lines) + "\n")


def test_assemble_from_result_folders_and_clinical_csv(tmp_path):
    demo = make_demo_cohort(1)
    ids = list(demo.table.patient_ids[:6])
    _write_result_folders(tmp_path / "results", demo, ids)
    clin = ["patient_id,response,sex,pfs_months,pfs_event"]
    for p in ids[:5] + ["EXTRA1"]:
        i = list(demo.table.patient_ids).index(p) if p != "EXTRA1" else 0
        clin.append(f"{p},{demo.table.response[i]},{demo.table.column('sex')[i]},12.5,1")
    cpath = write(tmp_path, "\n".join(clin) + "\n", "clinical.csv")
    a = assemble_cohort_table(tmp_path / "results", cpath)
    t = a.table
    assert t.n_patients == 7  # 6 with results + 1 clinical-only, none dropped
    got = dict(zip(t.patient_ids, t.cumulative_tumor_dose_Gy))
    for p in ids:
        i = list(demo.table.patient_ids).index(p)
        assert got[p] == pytest.approx(demo.table.cumulative_tumor_dose_Gy[i], rel=1e-12)
    assert np.isnan(got["EXTRA1"])
    # the 6th patient has no clinical row -> response missing, reported
    assert ("response" in {m.column for m in t.missing if m.patient_id == ids[5]})
    assert any("without results: EXTRA1" in n for n in a.notes)
    assert any(f"no clinical row: {ids[5]}" in n for n in a.notes)
    # lesion indices from voi_cycle_doses.csv equal the demo's per-patient values
    for p in ids:
        i = list(demo.table.patient_ids).index(p)
        j = list(t.patient_ids).index(p)
        for c in ("mean_lesion_ad_Gy", "min_lesion_ad_Gy", "max_lesion_ad_Gy"):
            assert t.column(c)[j] == pytest.approx(demo.table.column(c)[i], abs=2e-3)
        assert t.column("cumulative_aa_GBq")[j] == pytest.approx(demo.table.column("cumulative_aa_GBq")[i], abs=2e-3)
    assert a.cycles is not None and set(a.cycles.column("patient_id")) == set(ids)


def test_assembly_reports_every_problem(tmp_path):
    r = tmp_path / "results"
    (r / "a").mkdir(parents=True)
    (r / "b").mkdir()
    (r / "c").mkdir()
    (r / "a" / "summary.json").write_text('{"patient_id": "X1", "cumulative_tumor_dose_Gy": 10, '
                                          '"delta_ad_per_aa_percent": -5}')
    (r / "b" / "summary.json").write_text('{"patient_id": "X1"}')
    (r / "c" / "summary.json").write_text("{not json")
    with pytest.raises(CohortTableError) as ei:
        assemble_cohort_table(r)
    msg = str(ei.value)
    assert "2 problem(s)" in msg and "duplicate patient" in msg and "cannot read JSON" in msg


def test_cycle_and_lesion_tables_validated(tmp_path):
    p = write(tmp_path, "patient_id,cycle,voi,kind,absorbed_dose_Gy,ad_per_aa_Gy_per_GBq\n"
                        "P1,1,t1,tumor,10,2\nP1,1,t1,tumor,11,2\nP1,x,t2,tumor,-1,2\n", "c.csv")
    with pytest.raises(CohortTableError) as ei:
        load_cycle_table(p)
    got = {(q.line, q.column) for q in ei.value.problems}
    assert got == {(3, "cycle"), (4, "cycle"), (4, "absorbed_dose_Gy")}
    q = write(tmp_path, "patient_id,lesion_id,lesion_ad_Gy,total_uptake_baseline,total_uptake_followup\n"
                        "P1,L1,50,10,5\nP1,L1,60,10,5\nP1,L2,,,\n", "l.csv")
    with pytest.raises(CohortTableError) as ei:
        load_lesion_table(q)
    assert {(x.line, x.column) for x in ei.value.problems} == {(3, "lesion_id"), (4, "total_uptake_baseline")}


def test_package_imports_with_numpy_scipy_only_and_cli_is_cheap():
    code = (
        "import sys; sys.path[:0] = [%r]\n"
        "import LuResponseLib.cli\n"
        "assert 'numpy' not in sys.modules, 'cli import pulled numpy'\n"
        "import LuResponseLib, LuResponseLib.table, LuResponseLib.sigmoid, LuResponseLib.models, "
        "LuResponseLib.analysis, LuResponseLib.survival, LuResponseLib.lesions, LuResponseLib.plots, "
        "LuResponseLib.report, LuResponseLib.synthetic, LuResponseLib.rules, LuResponseLib.descriptive\n"
        "heavy = [m for m in ('sklearn', 'lifelines', 'matplotlib', 'pandas', 'slicer', 'qt', 'vtk') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert LuResponseLib.fit_sigmoid.__module__ == 'LuResponseLib.sigmoid'\n"
    ) % str(ROOT / "LuResponse")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
