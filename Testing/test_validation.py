"""validation.compare_doses: NaN doses and missing VOIs are failures, never hidden."""

import math

import pytest

from LuDosimetryLib.results.truth import compare_doses


def _truth():
    def voi(name, kind, volume, doses):
        return {"name": name, "kind": kind, "volume_ml": volume,
                "cycles": [{"cycle": c, "absorbed_dose_Gy": d} for c, d in enumerate(doses, start=1)]}

    return {"vois": [voi("kidney_left", "kidney", 150.0, [3.0, 4.0]),
                     voi("tumor_a", "tumor", 50.0, [20.0, 25.0]),
                     voi("tumor_small", "tumor", 5.0, [30.0, 30.0]),    # below min_volume_ml
                     voi("liver", "organ", 1500.0, [2.0, 2.0])]}         # kind not requested


def _rows(over=None):
    doses = {("kidney_left", 1): 3.03, ("kidney_left", 2): 4.0, ("tumor_a", 1): 19.0, ("tumor_a", 2): 25.5,
             ("tumor_small", 1): 10.0, ("liver", 1): 9.0}
    doses.update(over or {})
    return [{"voi": v, "cycle": str(c), "absorbed_dose_Gy": str(d), "included": "True"}
            for (v, c), d in doses.items() if d is not None]


def test_complete_results_compared():
    cmp = compare_doses(_rows(), _truth())
    assert [(r["voi"], r["cycle"]) for r in cmp.rows] == [("kidney_left", 1), ("kidney_left", 2), ("tumor_a", 1),
                                                          ("tumor_a", 2)]
    assert cmp.missing == [] and cmp.nan_rows == []
    assert cmp.max_abs_relative_error == pytest.approx(0.05)
    assert cmp.worst()["voi"] == "tumor_a" and cmp.passed(0.06) and not cmp.passed(0.04)
    assert "MISSING" not in cmp.to_text() and "FAILED" not in cmp.to_text()


@pytest.mark.parametrize("bad", ["nan", "", "inf", "n/a"])
def test_nan_dose_is_a_failure_not_hidden_by_max(bad):
    rows = _rows()
    rows[2]["absorbed_dose_Gy"] = bad  # tumor_a cycle 1
    cmp = compare_doses(rows, _truth())
    assert len(cmp.rows) == 4
    assert [(r["voi"], r["cycle"]) for r in cmp.nan_rows] == [("tumor_a", 1)]
    assert cmp.max_abs_relative_error == math.inf
    assert not cmp.passed(0.5)
    assert cmp.worst()["voi"] == "tumor_a" and cmp.worst()["cycle"] == 1
    text = cmp.to_text()
    assert "NaN" in text and "FAILED: 1 dose(s)" in text and "tumor_a cycle 1" in text


def test_nan_float_in_pipeline_rows():
    rows = [dict(r, absorbed_dose_Gy=float(r["absorbed_dose_Gy"]), included=True) for r in _rows()]
    rows[0]["absorbed_dose_Gy"] = float("nan")
    cmp = compare_doses(rows, _truth())
    assert len(cmp.nan_rows) == 1 and cmp.max_abs_relative_error == math.inf


def test_missing_and_excluded_vois_listed():
    rows = _rows({("tumor_a", 2): None})  # no row at all
    rows.append({"voi": "kidney_left", "cycle": "2", "absorbed_dose_Gy": "4.0", "included": "False"})
    rows = [r for r in rows if not (r["voi"] == "kidney_left" and r["cycle"] == "2" and r["included"] == "True")]
    cmp = compare_doses(rows, _truth())
    assert [(m["voi"], m["cycle"], m["reason"]) for m in cmp.missing] == [
        ("kidney_left", 2, "excluded by the pipeline"), ("tumor_a", 2, "no result row")]
    assert len(cmp.rows) == 2 and not cmp.passed(1.0)
    assert cmp.max_abs_relative_error == pytest.approx(0.05)  # of the rows compared; the gaps are in .missing
    text = cmp.to_text()
    assert "MISSING: no result row" in text and "MISSING: excluded by the pipeline" in text
    assert "FAILED: 2 VOI-cycle(s)" in text and "tumor_a cycle 2" in text
    # selection: small tumours and unrequested kinds are never "missing"
    assert compare_doses(rows, _truth(), min_volume_ml=1.0, kinds=("tumor",)).missing[-1]["voi"] == "tumor_small"


def test_cycle_subset():
    rows = [r for r in _rows() if r["cycle"] == "2"]
    assert len(compare_doses(rows, _truth()).missing) == 2
    cmp = compare_doses(rows, _truth(), cycles=[2])
    assert cmp.missing == [] and [r["cycle"] for r in cmp.rows] == [2, 2] and cmp.passed(0.03)


def test_nothing_to_compare_is_nan_and_not_passed():
    cmp = compare_doses([], {"vois": []})
    assert math.isnan(cmp.max_abs_relative_error) and not cmp.passed(0.1)
