"""What LuResponse shows (LuResponseLib.views), checked against the Lib's own functions and by hand."""

import json

import numpy as np
import pytest

from LuResponseLib.errors import AnalysisError
from LuResponseLib.rules import RuleResult
from LuResponseLib.sigmoid import fit_sigmoid, sigmoid_probability
from LuResponseLib.synthetic import make_demo_cohort
from LuResponseLib.views import (
    basic_analysis,
    merge_patient_record,
    predict_current_patient,
    roc_columns,
    scatter_columns,
    sigmoid_columns,
    sigmoid_from_dict,
)

CAD, DELTA = "cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent"


@pytest.fixture(scope="module")
def cohort():
    return make_demo_cohort(0).table


def test_basic_analysis_is_the_libs_sigmoid_and_roc(cohort):
    out = basic_analysis(cohort, group_size=11)
    complete = cohort.complete(CAD, DELTA, "response")
    direct = fit_sigmoid(cohort.column(CAD)[complete], cohort.responder[complete], group_size=11)
    assert out["sigmoid"].D_half_Gy == pytest.approx(direct.D_half_Gy, rel=1e-12)
    assert set(out["rocs"]) == {"cAD", "delta AD/AA (lower is better)"}
    from sklearn.metrics import roc_auc_score  # independent AUC
    assert out["rocs"]["cAD"].auc == pytest.approx(roc_auc_score(cohort.responder[complete],
                                                                 cohort.column(CAD)[complete]), abs=1e-12)
    assert len(out["rules"]) == 1 and any("scikit-learn" in w for w in out["warnings"])


def test_prediction_from_stored_sigmoid_extrapolation_flagged(cohort):
    fit = basic_analysis(cohort)["sigmoid"]
    stored = json.loads(json.dumps(fit.to_dict()))
    again = sigmoid_from_dict(stored)
    assert again.predict(150.0) == pytest.approx(fit.predict(150.0), rel=1e-12)
    p = predict_current_patient({}, stored, 150.0, -40.0)
    assert p["sigmoid_eq2"]["probability"] == pytest.approx(
        float(sigmoid_probability(150.0, fit.D_half_Gy, fit.k_Gy, fit.P_max)), rel=1e-12)
    assert p["sigmoid_eq2"]["warnings"] == []
    far = predict_current_patient({}, stored, 10 * max(g.max_value for g in fit.groups), 0.0)
    assert "extrapolation" in far["sigmoid_eq2"]["warnings"][0]
    with pytest.raises(AnalysisError, match="run the analyses"):
        predict_current_patient({}, None, 100.0, 0.0)


def test_merge_patient_record_replaces_same_patient():
    rows = [{"patient_id": "A", CAD: "100", DELTA: "-10", "response": "PR", "site": "x"},
            {"patient_id": "B", CAD: "nan", DELTA: "", "response": "", "site": "y"}]
    columns = ["patient_id", CAD, DELTA, "response", "site"]
    record = {"patient_id": "A", CAD: 120.0, DELTA: -35.0, "response": "", "kidney_bed_Gy": 14.2}
    out = merge_patient_record(rows, columns, record)
    assert list(out) == columns + ["kidney_bed_Gy"]
    assert out["patient_id"] == ["B", "A"]
    assert out[CAD] == [None, 120.0] and out[DELTA] == [None, -35.0]
    assert out["site"] == ["y", ""] and out["kidney_bed_Gy"] == [None, 14.2] and out["response"] == ["", ""]


def test_plot_columns(cohort):
    rule = RuleResult.__new__(RuleResult)
    rule.cad_cutoff_Gy, rule.delta_cutoff_percent = 135.0, -30.0
    cols = scatter_columns(cohort, rule)
    lengths = {len(v) for v in cols.values()}
    assert len(lengths) == 1
    n_pr = int((cohort.complete(CAD, DELTA) & (cohort.response == "PR")).sum())
    assert sum(v is not None for v in cols["PR cAD"]) == n_pr
    assert cols["cAD cut-off x"][:2] == [135.0, 135.0] and cols["delta cut-off y"][:2] == [-30.0, -30.0]
    cad = cohort.column(CAD)
    assert cols["delta cut-off x"][:2] == [float(np.nanmin(cad)), float(np.nanmax(cad))]
    assert scatter_columns(cohort, None)["cAD cut-off x"][:2] == [None, None]
    fit = basic_analysis(cohort)["sigmoid"]
    groups, curve = sigmoid_columns(fit, n=11)
    assert groups["proportion PR"] == [g.proportion_PR for g in fit.groups]
    assert curve["P"] == pytest.approx(list(fit.predict(np.array(curve["cAD"]))))
    roc = roc_columns({"a": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1]}})
    assert roc["a fpr"] == [0.0, 0.5, 1.0] and roc["chance x"] == [0.0, 1.0, None]
