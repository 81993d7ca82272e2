"""What the Slicer module shows, computed without Slicer: the analyses without scikit-learn,
the prediction for the current patient from stored fits, the cohort table after adding one
patient, and the columns of the plot tables (scatter, sigmoid, ROC).

Columns are returned as {name: list} with ``None`` where a column is shorter than the longest
(plot tables need equal lengths); the Slicer layer only copies them into table nodes.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import AnalysisError
from .sigmoid import ResponseGroup, SigmoidFit

CAD = "cumulative_tumor_dose_Gy"
DELTA = "delta_ad_per_aa_percent"
TEXT_COLUMNS = ("patient_id", "response")


def _padded(columns: dict, minimum: int = 0) -> dict:
    """Pad every column with None to the length of the longest (at least ``minimum``)."""
    n = max([minimum] + [len(v) for v in columns.values()])
    return {k: list(v) + [None] * (n - len(v)) for k, v in columns.items()}


def basic_analysis(cohort, group_size: int = 11) -> dict:
    """The analyses that need neither scikit-learn nor lifelines: the Eq. 2 sigmoid of the grouped
    proportion of responders (:func:`LuResponseLib.sigmoid.fit_sigmoid`), ROC curves of cAD and of
    -delta AD/AA (:func:`LuResponseLib.roc.roc_curve`) and the two-cut-off rule
    (:func:`LuResponseLib.rules.evaluate_cutoff_rule`), on the patients with all three values.

    Returns {"sigmoid": SigmoidFit or None, "rocs": {label: RocCurve}, "rules": [RuleResult],
    "lines": [text], "warnings": [text]}; an analysis that cannot be made is a warning.
    """
    from .roc import roc_curve
    from .rules import evaluate_cutoff_rule
    from .sigmoid import fit_sigmoid

    complete = cohort.complete(CAD, DELTA, "response")
    cad, delta, responder = cohort.column(CAD)[complete], cohort.column(DELTA)[complete], cohort.responder[complete]
    warnings = list(cohort.notes) + ["scikit-learn is not installed: responder models not trained"]
    lines, rocs = [], {}
    try:
        sigmoid = fit_sigmoid(cad, responder, group_size=group_size, patient_ids=cohort.patient_ids[complete])
    except AnalysisError as exc:
        sigmoid = None
        warnings.append(f"sigmoid not fitted: {exc}")
    for label, score in (("cAD", cad), ("delta AD/AA (lower is better)", -delta)):
        try:
            rocs[label] = roc_curve(responder, score)
            lines.append(f"ROC {label}: AUC {rocs[label].auc:.2f}")
        except AnalysisError as exc:
            warnings.append(f"ROC {label}: {exc}")
    rules = [evaluate_cutoff_rule(cad, delta, responder)] if cad.size else []
    return {"sigmoid": sigmoid, "rocs": rocs, "rules": rules, "lines": lines, "warnings": warnings}


def sigmoid_from_dict(d: dict) -> SigmoidFit:
    """A SigmoidFit from :meth:`SigmoidFit.to_dict` (enough to predict and to know the fitted range)."""
    def ci(key):
        lo, hi = (d.get(key) or [None, None])[:2]
        return (math.nan if lo is None else float(lo), math.nan if hi is None else float(hi))

    groups = [ResponseGroup(index=i, n=int(g["n"]), n_responders=int(g.get("n_responders", 0)),
                            proportion_PR=float(g["proportion_PR"]), median_value=float(g["median_cAD_Gy"]),
                            min_value=float(g["min_cAD_Gy"]), max_value=float(g["max_cAD_Gy"]))
              for i, g in enumerate(d.get("groups") or [])]
    limited = {k: tuple(v) for k, v in (d.get("ci_limited_by_search_box") or {}).items()}
    return SigmoidFit(D_half_Gy=float(d["D_half_Gy"]), k_Gy=float(d["k_Gy"]), P_max=float(d["P_max"]),
                      D_half_ci95_Gy=ci("D_half_ci95_Gy"), k_ci95_Gy=ci("k_ci95_Gy"), P_max_ci95=ci("P_max_ci95"),
                      ci_limited=limited, r2=float(d.get("r2", math.nan)), rmse=float(d.get("rmse", math.nan)),
                      auc=float(d.get("auc", math.nan)), sse=float(d.get("sse", math.nan)),
                      n_patients=int(d.get("n_patients", sum(g.n for g in groups))), groups=groups,
                      notes=list(d.get("notes") or []))


def predict_current_patient(models: dict, sigmoid: dict | SigmoidFit | None, cad_Gy: float,
                            delta_percent: float) -> dict:
    """{name: {probability, warnings}} of one patient from every model and the Eq. 2 sigmoid
    (given as a SigmoidFit or its dict): :func:`LuResponseLib.models.predict_new_patient`.
    Raises AnalysisError when there is neither a model nor a sigmoid."""
    from .models import predict_new_patient

    if isinstance(sigmoid, dict):
        sigmoid = sigmoid_from_dict(sigmoid)
    if not models and sigmoid is None:
        raise AnalysisError("no trained model and no sigmoid: run the analyses (or load a model) first")
    return predict_new_patient(models or {}, cad_Gy, delta_percent, sigmoid=sigmoid)


def _number(value):
    try:
        x = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def merge_patient_record(rows: list[dict], columns: list[str], record: dict) -> dict:
    """Cohort table columns after adding ``record`` (replacing the row of the same patient_id).

    ``rows``: the table's rows as {column: cell text}; ``columns``: its column names. Columns named
    in the record or required by contract 3 are added. A column is text if any of its cells is
    non-numeric text (patient_id and response always are); other cells become numbers or None.
    Returns {column: list of values}, rows in table order with the record last.
    """
    columns = list(columns)
    for name in ["patient_id", CAD, DELTA, "response"] + list(record):
        if name not in columns:
            columns.append(name)
    pid = record.get("patient_id")
    rows = [r for r in rows if r.get("patient_id") != pid] + [dict(record)]

    def is_text(value):  # "nan" / "inf" are numbers (missing), not text
        if not isinstance(value, str) or not value.strip():
            return False
        try:
            float(value)
        except ValueError:
            return True
        return False

    text = set(TEXT_COLUMNS) | {c for c in columns if any(is_text(r.get(c)) for r in rows)}
    return {c: [("" if r.get(c) is None else str(r.get(c))) if c in text else _number(r.get(c)) for r in rows]
            for c in columns}


def scatter_columns(cohort, rule=None, codes=("CR", "PR", "SD", "PD")) -> dict:
    """cAD and delta AD/AA per response code ("<code> cAD", "<code> delta") and the cut-off lines of
    ``rule`` ("cAD cut-off x/y", "delta cut-off x/y", spanning the data), padded to equal length."""
    cad, delta = cohort.column(CAD), cohort.column(DELTA)
    both = cohort.complete(CAD, DELTA)
    columns = {}
    for code in codes:
        mask = both & (cohort.response == code)
        columns[f"{code} cAD"] = [float(v) for v in cad[mask]]
        columns[f"{code} delta"] = [float(v) for v in delta[mask]]
    xs, ys = cad[np.isfinite(cad)], delta[np.isfinite(delta)]
    has_rule = rule is not None and rule.cad_cutoff_Gy is not None and rule.delta_cutoff_percent is not None
    columns["cAD cut-off x"] = [float(rule.cad_cutoff_Gy)] * 2 if has_rule else [None, None]
    columns["cAD cut-off y"] = [float(ys.min()), float(ys.max())] if ys.size else [None, None]
    columns["delta cut-off x"] = [float(xs.min()), float(xs.max())] if xs.size else [None, None]
    columns["delta cut-off y"] = [float(rule.delta_cutoff_percent)] * 2 if has_rule else [None, None]
    return _padded(columns, 2)


def sigmoid_columns(sigmoid: SigmoidFit, n: int = 200) -> tuple[dict, dict]:
    """(group points {"median cAD", "proportion PR"}, fitted curve {"cAD", "P"} on n points from 0
    to 1.1 x the largest cAD of the groups)."""
    groups = {"median cAD": [g.median_value for g in sigmoid.groups],
              "proportion PR": [g.proportion_PR for g in sigmoid.groups]}
    grid = np.linspace(0.0, 1.1 * max(g.max_value for g in sigmoid.groups), n)
    return groups, {"cAD": [float(x) for x in grid], "P": [float(p) for p in sigmoid.predict(grid)]}


def roc_columns(rocs: dict) -> dict:
    """"<label> fpr" / "<label> tpr" per ROC curve (objects with fpr, tpr, or dicts with those keys)
    plus the chance diagonal ("chance x", "chance y"), padded to equal length."""
    columns = {"chance x": [0.0, 1.0], "chance y": [0.0, 1.0]}
    for label, roc in rocs.items():
        fpr, tpr = (roc["fpr"], roc["tpr"]) if isinstance(roc, dict) else (roc.fpr, roc.tpr)
        columns[f"{label} fpr"] = [float(v) for v in fpr]
        columns[f"{label} tpr"] = [float(v) for v in tpr]
    return _padded(columns, 2)
