"""Probability of response for a new patient, with a bootstrap confidence interval.

At analysis time every model fitted on all patients also gets ``B`` *bootstrap replicates*
(:func:`bootstrap_replicates`): the same pipeline (scaler + classifier, same settings) refitted
on stratified resamples of the patients (responders and non-responders drawn with replacement
separately, class sizes kept). Each replicate is stored as plain numbers (its scaler and
classifier parameters) in the model file's optional ``bootstrap`` field
(:mod:`.model_schema`), so a saved ``models/*_model.json`` answers a new patient's question —
probability *and* its percentile interval over the replicates — without the cohort data and
without scikit-learn (:func:`predict_patient`, ``lu-dosimetry cohort --models DIR --predict``).

The interval is the percentile interval of the replicates' predicted probabilities at the
patient's (cAD, ΔAD/AA): it shows how much the fitted model moves with the sample of patients
(the uncertainty of the *model*, not the chance of a single patient's response). The SVM is
refitted on fewer resamples (:data:`SVM_MAX_REPLICATES`, each fit has an internal Platt
cross-validation and the replicates are stored with their support vectors), and large cohorts
use fewer resamples (:func:`replicate_count`); the number used is recorded in the file and in
the prediction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import AnalysisError

SVM_MAX_REPLICATES = 200
SVM_PATIENT_FITS = 20_000
LOGISTIC_PATIENT_FITS = 2_000_000
FEATURE_KEYS = ("cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent")
MODEL_LABELS = {"logistic": "Logistic regression 2D (Eq. 5)", "svm": "SVM (RBF) 2D",
                "logistic_cAD": "Logistic, cAD only", "logistic_delta": "Logistic, ΔAD/AA only",
                "sigmoid_eq2": "Eq. 2 sigmoid on cAD"}


def replicate_count(kind: str, n_resamples: int, n_patients: int) -> int:
    """Resamples used for the prediction interval: ``n_resamples`` for the logistic model up to
    2,000,000 patient-fits (at least 200 on large cohorts); for the SVM at most
    :data:`SVM_MAX_REPLICATES` and 20,000 patient-fits (at least 10), which bounds both the time
    (an SVM refit grows about quadratically with the patients) and the model file (support vectors)."""
    if kind == "logistic":
        return min(n_resamples, max(200, LOGISTIC_PATIENT_FITS // max(n_patients, 1)))
    return min(n_resamples, SVM_MAX_REPLICATES, max(10, SVM_PATIENT_FITS // max(n_patients, 1)))


def _stratified_resample(rng, y: np.ndarray) -> np.ndarray:
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]


def bootstrap_replicates(kind: str, X, y, n_resamples: int, seed: int = 0, settings=None) -> dict:
    """Refit a ``kind`` pipeline on ``n_resamples`` stratified resamples of (X, y); returns the
    ``bootstrap`` field of a model file: ``{"n_resamples", "seed", "method", "notes",
    "replicates": [{"scaler": {"mean", "scale"}, "params": {...}}, ...]}``.

    A logistic replicate whose unpenalised fit does not converge (a separated resample) is
    refitted with the L2 penalty and counted in ``notes``; the SVM uses at most
    :data:`SVM_MAX_REPLICATES` resamples."""
    from dataclasses import replace

    from .models import (
        ModelSettings,
        _not_converged,
        _parallel,
        make_pipeline,
        model_from_pipeline,
    )

    settings = settings or ModelSettings()
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y).astype(int)
    n = replicate_count(kind, int(n_resamples), y.size)
    if n < 1:
        raise AnalysisError("the prediction bootstrap needs at least 1 resample")
    rng = np.random.default_rng(seed)
    draws = [_stratified_resample(rng, y) for _ in range(n)]

    def one(b):
        idx = draws[b]
        pipe = make_pipeline(kind, seed + b, settings).fit(X[idx], y[idx])
        penalised = False
        if kind == "logistic" and settings.logistic_penalty == "none" and _not_converged(pipe):
            pipe = make_pipeline(kind, seed + b, replace(settings, logistic_penalty="l2")).fit(X[idx], y[idx])
            penalised = True
        m = model_from_pipeline(pipe, kind, [f"x{j}" for j in range(X.shape[1])], X[idx], y[idx], settings, seed + b)
        return {"scaler": {"mean": m.scaler_mean.tolist(), "scale": m.scaler_scale.tolist()},
                "params": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in m.params.items()}}, penalised

    out = _parallel(one, range(n), settings)
    notes = []
    n_pen = sum(p for _, p in out)
    if n_pen:
        notes.append(f"{n_pen} of {n} resamples were separated: L2-penalised fit (C = {settings.logistic_C:g})")
    if n < n_resamples:
        notes.append(f"{n} resamples (not {n_resamples}): " +
                     ("each SVM refit includes the Platt cross-validation and is stored with its support vectors"
                      if kind == "svm" else f"large cohort ({y.size} patients)"))
    return {"n_resamples": n, "seed": int(seed),
            "method": "stratified bootstrap over patients (classes resampled separately), pipeline refitted on each "
                      "resample; percentile interval of the predicted probability",
            "notes": notes, "replicates": [r for r, _ in out]}


def replicate_probabilities(model, X) -> np.ndarray:
    """Probability of PR from every bootstrap replicate of ``model`` (rows: replicates, columns:
    rows of ``X``); an empty (0, n) array when the model has no replicates."""
    from .models import ResponseModel

    X = model._as_matrix(X)
    reps = (model.bootstrap or {}).get("replicates", [])
    out = np.empty((len(reps), X.shape[0]))
    for i, r in enumerate(reps):
        m = ResponseModel(model.kind, model.feature_names, np.asarray(r["scaler"]["mean"], dtype=float),
                          np.asarray(r["scaler"]["scale"], dtype=float), r["params"], model.training_min,
                          model.training_max, model.n_train, model.n_responders)
        out[i] = m.predict_probability(X, warn=False)
    return out


def predict_patient(models: dict, cAD_Gy: float, delta_ad_per_aa_percent: float, sigmoid=None,
                    confidence: float = 0.95) -> dict:
    """One new patient's prediction: ``{"cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent",
    "confidence", "models": {name: {"probability", "ci", "n_resamples", "ci_method", "warnings"}}}``.

    ``ci`` is the percentile interval over the model's bootstrap replicates (None when the model
    file has none, said in ``warnings``); values outside a model's training range are named in
    its ``warnings``. ``sigmoid`` (a :class:`~.sigmoid.SigmoidFit`) adds the Eq. 2 curve with
    no interval (its parameters' profile intervals are in the sigmoid results)."""
    values = {FEATURE_KEYS[0]: float(cAD_Gy), FEATURE_KEYS[1]: float(delta_ad_per_aa_percent)}
    if not all(np.isfinite(v) for v in values.values()):
        raise AnalysisError(f"the new patient's values must be finite numbers (got {cAD_Gy}, {delta_ad_per_aa_percent})")
    a = (1.0 - confidence) / 2.0
    out: dict = {}
    for name, m in models.items():
        missing = [f for f in m.feature_names if f not in values]
        if missing:
            raise AnalysisError(f"model '{name}' needs predictor(s) {', '.join(missing)}; a prediction gives "
                                f"{' and '.join(FEATURE_KEYS)}")
        x = np.array([[values[f] for f in m.feature_names]])
        warn = list(m.out_of_range(x))
        reps = replicate_probabilities(m, x)[:, 0]
        ci = None
        if reps.size:
            ci = [float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))]
        else:
            warn.append("no bootstrap replicates in the model file: no confidence interval")
        out[name] = {"probability": float(m.predict_probability(x, warn=False)[0]), "ci": ci,
                     "n_resamples": int(reps.size),
                     "ci_method": (m.bootstrap or {}).get("method") if reps.size else None, "warnings": warn}
    if sigmoid is not None:
        lo = min(g.min_value for g in sigmoid.groups)
        hi = max(g.max_value for g in sigmoid.groups)
        w = [] if lo <= cAD_Gy <= hi else [f"cumulative_tumor_dose_Gy = {cAD_Gy:g} is outside the fitted range "
                                           f"[{lo:g}, {hi:g}]: extrapolation"]
        out["sigmoid_eq2"] = {"probability": float(sigmoid.predict(cAD_Gy)), "ci": None, "n_resamples": 0,
                              "ci_method": None, "warnings": w + ["Eq. 2 curve: no interval for a single patient"]}
    return {**values, "confidence": confidence, "models": out}


def find_model_files(directory) -> list[Path]:
    """The ``*_model.json`` files of a cohort result folder or of its ``models/`` folder; a clear
    error naming the folder when there are none."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"--models: folder not found: {d}")
    sub = d / "models"
    files = sorted(sub.glob("*_model.json")) if sub.is_dir() else []
    files = files or sorted(d.glob("*_model.json"))
    if not files:
        raise AnalysisError(f"--models: no model files (*_model.json) in {d} or {sub}; give the output folder "
                            "of an earlier 'lu-dosimetry cohort' run or its models/ folder")
    return files


def load_models(directory) -> dict:
    """{model name: ResponseModel} of every ``*_model.json`` in a result or ``models/`` folder."""
    from .models import ResponseModel

    models = {p.name[: -len("_model.json")]: ResponseModel.load_json(p) for p in find_model_files(directory)}
    order = list(MODEL_LABELS)
    return dict(sorted(models.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def load_training_points(directory):
    """(cAD Gy, ΔAD/AA %, responder) of the cohort the models were trained on, when the result
    folder holds its table (``demo_cohort.csv`` or ``cohort_table.csv``, or the ``source`` named in
    its ``cohort_results.json`` if that file still exists); None otherwise."""
    d = Path(directory)
    root = d.parent if d.name == "models" and not (d / "cohort_results.json").is_file() else d
    candidates = [root / "demo_cohort.csv", root / "cohort_table.csv"]
    res = root / "cohort_results.json"
    if res.is_file():
        try:
            src = json.loads(res.read_text(encoding="utf-8")).get("source")
            if isinstance(src, str) and src.lower().endswith(".csv"):
                candidates.append(Path(src))
        except (OSError, ValueError, AttributeError):
            pass
    for c in candidates:
        if c.is_file():
            from .cohort import load_cohort_table
            from .readers import CAD, DELTA

            t = load_cohort_table(c)
            ok = t.complete(CAD, DELTA, "response")
            return (t.cumulative_tumor_dose_Gy[ok], t.delta_ad_per_aa_percent[ok], t.response[ok],
                    t.responder[ok], str(c))
    return None


def prediction_rows(prediction: dict) -> list[list[str]]:
    """Report rows (model, probability, interval, notes) of one :func:`predict_patient` result."""
    rows = []
    conf = int(round(100 * prediction.get("confidence", 0.95)))
    for name, e in prediction["models"].items():
        ci = "–" if not e["ci"] else f"{100 * e['ci'][0]:.0f}–{100 * e['ci'][1]:.0f} % ({conf} %, {e['n_resamples']} resamples)"
        rows.append([MODEL_LABELS.get(name, name), f"{100 * e['probability']:.0f} %", ci, "; ".join(e["warnings"]) or "–"])
    return rows
