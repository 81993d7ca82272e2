"""2D response models of seed 000: logistic regression (Eq. 5) and an RBF-kernel SVM.

Inputs are the per-patient (cAD in Gy, ΔAD/AA in %) — or a single one of them — and the label
responder (CR/PR) vs non-responder (SD/PD).  Every model is a scikit-learn ``Pipeline``
(``StandardScaler`` then the classifier), so in cross-validation the scaler is fitted on the
training folds only (no leakage of the test fold's mean/SD).

* Cross-validation: ``StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)`` ->
  out-of-fold probabilities -> ROC curve and AUC, with a stratified bootstrap percentile 95 % CI
  over patients (:func:`roc.bootstrap_auc_ci`, the out-of-fold probabilities are not refitted).
  :func:`repeated_cv_auc` repeats the CV with other fold splits to show the spread.
* SVM probabilities: ``SVC(kernel="rbf")`` plus explicit Platt scaling (:mod:`.svm`); on a
  training set larger than ``ModelSettings.svm_max_train`` the SVM is trained on a stratified
  random subsample of that size (stated in the results).
* Folds are fitted in parallel threads (``ModelSettings.n_jobs``; libsvm and the NumPy solvers
  release the GIL); results do not depend on ``n_jobs``.
* A trained model is a :class:`ResponseModel`: plain numbers (scaler mean/scale, logistic
  coefficients or SVM support vectors, dual coefficients, intercept, gamma, Platt A/B, training
  ranges) that predict with numpy alone, save to JSON and load back with identical
  predictions.  No pickle.  Predictions outside the training range raise an
  :class:`ExtrapolationWarning`.

scikit-learn is imported inside the functions that need it; :class:`ResponseModel` prediction
needs only numpy.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import AnalysisError, ExtrapolationWarning
from .roc import RocCurve, bootstrap_auc_ci, roc_auc, roc_curve
from .model_schema import MODEL_FORMAT, MODEL_FORMAT_VERSION, MODEL_KINDS, parse_model_json, validate_model_dict  # noqa: F401
from .svm import SVM_MAX_TRAIN, _expit, _platt_svc_class, platt_fit  # noqa: F401  (platt_fit re-exported)

LOGISTIC_PENALTIES = ("none", "l2")


@dataclass(frozen=True)
class ModelSettings:
    """Hyper-parameters of the models.

    logistic_penalty: ``"none"`` (default) fits Eq. 5 by maximum likelihood, as Macsuka et al.
    (J Nucl Med 2026) describe it ("coefficients estimated by minimizing a log-likelihood cost
    function"); ``"l2"`` uses scikit-learn's ridge-penalised fit with inverse strength
    ``logistic_C`` (scikit-learn's default C = 1, on standardised inputs).  When the classes
    are separable the maximum-likelihood estimate does not exist; the analysis then says so and
    uses the penalised fit (:func:`logistic_separation`).  Both are solved with the
    ``newton-cholesky`` solver to ``logistic_tol``.
    svm_C, svm_gamma: ``SVC`` parameters (``"scale"`` = 1 / (n_features · var(X_std)));
    platt_folds: internal CV folds for Platt scaling; svm_max_train: largest training set the SVM
    is fitted on (larger ones are subsampled, stratified; 0 = never); n_jobs: threads for the
    folds of a cross-validation."""

    logistic_C: float = 1.0
    svm_C: float = 1.0
    svm_gamma: float | str = "scale"
    platt_folds: int = 5
    logistic_penalty: str = "none"
    logistic_tol: float = 1e-10
    svm_max_train: int = SVM_MAX_TRAIN
    n_jobs: int = 2

    def __post_init__(self):
        if self.logistic_penalty not in LOGISTIC_PENALTIES:
            raise AnalysisError(f"logistic_penalty must be one of {', '.join(LOGISTIC_PENALTIES)} "
                                f"(got {self.logistic_penalty!r})")

    @property
    def logistic_method(self) -> str:
        """How Eq. 5 is fitted, in words (methods text, ``cohort_results.json``)."""
        if self.logistic_penalty == "none":
            return "maximum likelihood (unpenalised)"
        return f"L2-penalised maximum likelihood, C = {self.logistic_C:g} on standardised predictors"

    def to_dict(self) -> dict:
        return {"logistic_penalty": self.logistic_penalty, "logistic_method": self.logistic_method,
                "logistic_C": self.logistic_C if self.logistic_penalty == "l2" else None,
                "svm_C": self.svm_C, "svm_gamma": self.svm_gamma, "platt_folds": self.platt_folds,
                "svm_max_train": self.svm_max_train, "n_jobs": self.n_jobs}


def logistic_separation(X, y) -> str | None:
    """A message if responders and non-responders are (quasi-)completely separable in ``X``, else None.

    Linear program of Konis (2007, "Linear programming algorithms for detecting separated data
    in binary logistic regression models"): with s_i = ±1 and x_i = (1, standardised X_i),
    maximise sum_i s_i x_i·b subject to s_i x_i·b >= 0 and -1 <= b <= 1.  A positive optimum
    means a hyperplane puts every patient on its class's side (ties allowed): the maximum
    likelihood coefficients are then infinite."""
    from scipy.optimize import linprog

    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    sd = X.std(axis=0)
    Z = np.column_stack([np.ones(X.shape[0]), (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)])
    s = np.where(np.asarray(y).astype(bool), 1.0, -1.0)
    A = s[:, None] * Z
    n, k = A.shape
    # complete separation: a hyperplane with a positive margin t for every patient
    c = linprog(np.r_[np.zeros(k), -1.0], A_ub=np.column_stack([-A, np.ones(n)]), b_ub=np.zeros(n),
                bounds=[(-1, 1)] * k + [(0, 1)], method="highs")
    if c.status == 0 and -c.fun > 1e-9:
        kind = "completely"
    else:  # quasi-complete: every patient on its side or on the line, not all on the line
        r = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(n), bounds=[(-1, 1)] * k, method="highs")
        if r.status != 0 or -r.fun <= 1e-7 * n:
            return None
        kind = f"quasi-completely ({int(np.sum(np.abs(A @ r.x) <= 1e-9))} patient(s) on the boundary)"
    return (f"responders and non-responders are {kind} separated by a straight line in the predictors: "
            "the maximum-likelihood coefficients of Eq. 5 do not exist (they grow without bound)")


def make_pipeline(kind: str, seed: int = 0, settings: ModelSettings | None = None):
    """A fresh ``Pipeline([('scaler', StandardScaler()), ('model', ...)])`` for ``kind``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    settings = settings or ModelSettings()
    if kind == "logistic":
        C = math.inf if settings.logistic_penalty == "none" else settings.logistic_C  # C = inf: no penalty
        model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=1000, tol=settings.logistic_tol)
    elif kind == "svm":
        model = _platt_svc_class()(C=settings.svm_C, gamma=settings.svm_gamma, platt_folds=settings.platt_folds,
                                   random_state=seed, max_train=settings.svm_max_train)
    else:
        raise AnalysisError(f"unknown model kind '{kind}' (expected one of {', '.join(MODEL_KINDS)})")
    return Pipeline([("scaler", StandardScaler()), ("model", model)])


def fit_pipeline(kind: str, X, y, seed: int = 0, settings: ModelSettings | None = None):
    """Fit ``make_pipeline(kind, ...)`` on (X, y); returns (pipeline, note or None).

    An unpenalised logistic fit on separable training data (checked with
    :func:`logistic_separation` when the training set has < 2,000 patients, and by the solver's
    convergence otherwise) is replaced by the L2-penalised fit, and the note says so."""
    settings = settings or ModelSettings()
    note = None
    if kind == "logistic" and settings.logistic_penalty == "none" and len(y) < 2000:
        sep = logistic_separation(X, y)
        if sep:
            settings = replace(settings, logistic_penalty="l2")
            note = sep + f"; the L2-penalised fit (C = {settings.logistic_C:g}) is used instead"
    pipe = make_pipeline(kind, seed, settings).fit(X, y)
    # convergence read from the solver's iteration count (warnings.catch_warnings is not
    # thread-safe and the folds run in threads)
    if kind == "logistic" and _not_converged(pipe):
        if settings.logistic_penalty == "none":
            settings = replace(settings, logistic_penalty="l2")
            pipe = make_pipeline(kind, seed, settings).fit(X, y)
            note = ("the maximum-likelihood fit of Eq. 5 did not converge (separated data?); the L2-penalised fit "
                    f"(C = {settings.logistic_C:g}) is used instead")
        else:
            note = "the penalised logistic fit did not converge"
    return pipe, note


def _not_converged(pipe) -> bool:
    est = pipe.named_steps["model"]
    return int(np.max(est.n_iter_)) >= est.max_iter or not np.all(np.isfinite(est.coef_))


def _parallel(fn, items, settings: ModelSettings | None):
    """[fn(item) for item in items], in ``settings.n_jobs`` threads (order kept)."""
    items = list(items)
    n_jobs = (settings or ModelSettings()).n_jobs
    if n_jobs <= 1 or len(items) < 2:
        return [fn(i) for i in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_jobs) as ex:
        return list(ex.map(fn, items))


def _check_xy(X, y, feature_names=None):
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y)
    if y.dtype != bool:
        y = y.astype(int)
        if not set(np.unique(y).tolist()) <= {0, 1}:
            raise AnalysisError("labels must be 0/1 or boolean")
    y = y.astype(int)
    if X.shape[0] != y.size:
        raise AnalysisError(f"{X.shape[0]} rows of predictors but {y.size} labels")
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        names = feature_names or [f"column {j}" for j in range(X.shape[1])]
        where = ", ".join(f"row {i} {names[j]}" for i, j in bad[:10])
        raise AnalysisError(f"predictors contain missing or non-finite values ({where}); pass complete cases")
    if y.sum() == 0 or y.sum() == y.size:
        raise AnalysisError("the models need both responders and non-responders")
    return X, y


def stratified_folds(y, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y).astype(int)
    n_min = int(min(np.sum(y == 0), np.sum(y == 1)))
    if n_min < n_splits:
        raise AnalysisError(f"{n_splits}-fold stratified CV needs at least {n_splits} patients of each class "
                            f"(the smaller class has {n_min})")
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in skf.split(np.zeros((y.size, 1)), y)]


@dataclass
class CVResult:
    """Cross-validated performance of one model.

    ``oof_probability[i]`` is patient i's probability of PR from the model trained on the folds
    not containing i; ``fold_of_patient[i]`` its test fold; ``auc`` = ROC AUC of those
    probabilities; ``auc_ci95`` the stratified-bootstrap percentile interval."""

    kind: str
    feature_names: list[str]
    oof_probability: np.ndarray
    fold_of_patient: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    auc: float
    auc_ci95: tuple[float, float]
    roc: RocCurve
    n_splits: int
    seed: int
    n_bootstrap: int
    confidence: float
    fold_models: list | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self, include_curve: bool = True) -> dict:
        d = {"kind": self.kind, "features": list(self.feature_names), "auc": self.auc, "notes": list(self.notes),
             "auc_ci95": list(self.auc_ci95), "n_splits": self.n_splits, "seed": self.seed,
             "n_bootstrap": self.n_bootstrap, "confidence": self.confidence,
             "ci_method": "stratified bootstrap percentile over patients of the out-of-fold probabilities",
             "cv_method": f"StratifiedKFold(n_splits={self.n_splits}, shuffle=True, random_state={self.seed}); "
                          "StandardScaler fitted inside each training fold (Pipeline)"}
        if include_curve:
            d["roc"] = {"fpr": self.roc.fpr.tolist(), "tpr": self.roc.tpr.tolist()}
            d["oof_probability"] = self.oof_probability.tolist()
            d["fold_of_patient"] = self.fold_of_patient.tolist()
        return d


def cross_validated_probabilities(X, y, kind: str = "logistic", n_splits: int = 5, seed: int = 0,
                                  n_bootstrap: int = 1000, confidence: float = 0.95,
                                  settings: ModelSettings | None = None, feature_names=None,
                                  keep_models: bool = False) -> CVResult:
    """Out-of-fold probabilities, ROC and AUC (bootstrap CI) of a ``kind`` model (see module doc).

    ``X``: (n, n_features) predictors in their units, ``y``: responder (bool or 0/1).
    ``keep_models=True`` keeps the fitted fold pipelines (to inspect e.g. the fold scalers)."""
    X, y = _check_xy(X, y, feature_names)
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])]
    folds = stratified_folds(y, n_splits, seed)
    oof = np.full(y.size, np.nan)
    fold_of = np.full(y.size, -1, dtype=int)
    models = []
    notes: list[str] = []

    def one(fi):
        tr, te = folds[fi]
        pipe, note = fit_pipeline(kind, X[tr], y[tr], seed + fi, settings)
        return pipe, note, pipe.predict_proba(X[te])[:, 1]

    for fi, (pipe, note, p) in enumerate(_parallel(one, range(len(folds)), settings)):
        te = folds[fi][1]
        if note:
            notes.append(f"fold {fi + 1}: {note}")
        oof[te] = p
        fold_of[te] = fi
        if keep_models:
            models.append(pipe)
    if kind == "svm":
        est = pipe.named_steps["model"]
        if est.n_train_used_ < est.n_train_total_:
            notes.append(f"SVM trained on a stratified random subsample of {est.n_train_used_} of the "
                         f"{est.n_train_total_} training patients of each fold (large cohort)")
    auc = roc_auc(y, oof)
    lo, hi, _ = bootstrap_auc_ci(y, oof, n_bootstrap, seed, confidence)
    return CVResult(kind, names, oof, fold_of, folds, auc, (lo, hi), roc_curve(y, oof), n_splits, seed,
                    n_bootstrap, confidence, models if keep_models else None, notes)


@dataclass
class RepeatedCV:
    """AUCs of the same model over ``n_repeats`` different stratified fold splits."""

    kind: str
    aucs: np.ndarray
    seeds: list[int]
    n_repeats_requested: int | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        q = np.percentile(self.aucs, [2.5, 50, 97.5])
        return {"kind": self.kind, "n_repeats": int(self.aucs.size), "aucs": self.aucs.tolist(),
                "n_repeats_requested": self.n_repeats_requested or int(self.aucs.size), "note": self.note,
                "median_auc": float(q[1]), "auc_p2_5": float(q[0]), "auc_p97_5": float(q[2]),
                "min_auc": float(self.aucs.min()), "max_auc": float(self.aucs.max()), "seeds": self.seeds}


def repeated_cv_auc(X, y, kind: str = "logistic", n_repeats: int = 20, n_splits: int = 5, seed: int = 0,
                    settings: ModelSettings | None = None) -> RepeatedCV:
    """CV AUC for fold seeds ``seed, seed+1, …`` (no bootstrap): the spread due to the split."""
    X, y = _check_xy(X, y)
    seeds = [seed + r for r in range(n_repeats)]
    jobs = [(s, fi, tr, te) for s in seeds for fi, (tr, te) in enumerate(stratified_folds(y, n_splits, s))]

    def one(job):
        s, fi, tr, te = job
        return fit_pipeline(kind, X[tr], y[tr], s + fi, settings)[0].predict_proba(X[te])[:, 1]

    oof = {s: np.empty(y.size) for s in seeds}
    for (s, _fi, _tr, te), p in zip(jobs, _parallel(one, jobs, settings)):
        oof[s][te] = p
    return RepeatedCV(kind, np.array([roc_auc(y, oof[s]) for s in seeds]), seeds)


# --------------------------------------------------------------------------------------------
# trained model as plain numbers
# --------------------------------------------------------------------------------------------

def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


@dataclass
class ResponseModel:
    """A trained response model that predicts with numpy alone (see module doc).

    ``params`` for ``logistic``: ``coef`` (per standardised feature), ``intercept``;
    for ``svm``: ``support_vectors`` (standardised units), ``dual_coef``, ``intercept``,
    ``gamma``, ``platt_A``, ``platt_B``."""

    kind: str
    feature_names: list[str]
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    params: dict
    training_min: np.ndarray
    training_max: np.ndarray
    n_train: int
    n_responders: int
    settings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    bootstrap: dict | None = None  # refits on resamples, for prediction intervals (:mod:`.prediction`)

    # -- prediction --------------------------------------------------------------------------
    def _as_matrix(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[None, :] if X.size == len(self.feature_names) else X[:, None]
        if X.shape[1] != len(self.feature_names):
            raise AnalysisError(f"the model expects {len(self.feature_names)} predictor(s) "
                                f"({', '.join(self.feature_names)}), got {X.shape[1]}")
        if not np.all(np.isfinite(X)):
            raise AnalysisError("predictors contain missing or non-finite values")
        return X

    def out_of_range(self, X) -> list[str]:
        """Messages for every value outside the training range of its feature."""
        X = self._as_matrix(X)
        msgs = []
        for j, name in enumerate(self.feature_names):
            lo, hi = self.training_min[j], self.training_max[j]
            for i in np.flatnonzero((X[:, j] < lo) | (X[:, j] > hi)):
                msgs.append(f"{name} = {X[i, j]:g} is outside the training range [{lo:g}, {hi:g}] "
                            f"(row {i}): extrapolation")
        return msgs

    def decision_function(self, X) -> np.ndarray:
        """Linear predictor (logistic) or SVM decision value (positive -> responder)."""
        z = (self._as_matrix(X) - self.scaler_mean) / self.scaler_scale
        p = self.params
        if self.kind == "logistic":
            return z @ np.asarray(p["coef"], dtype=float) + float(p["intercept"])
        sv = np.asarray(p["support_vectors"], dtype=float)
        dual = np.asarray(p["dual_coef"], dtype=float)
        out = np.empty(z.shape[0])
        step = max(1, 2_000_000 // max(1, sv.shape[0]))  # rows per chunk: ~16 MB of kernel values
        for a in range(0, z.shape[0], step):
            zc = z[a:a + step]
            d2 = np.maximum(np.sum(zc ** 2, 1)[:, None] + np.sum(sv ** 2, 1)[None, :] - 2.0 * zc @ sv.T, 0.0)
            out[a:a + step] = np.exp(-float(p["gamma"]) * d2) @ dual
        return out + float(p["intercept"])

    def predict_probability(self, X, warn: bool = True) -> np.ndarray:
        """Probability of PR (CR/PR) for each row of ``X`` (columns = ``feature_names``).

        Values outside the training range give an :class:`ExtrapolationWarning` (``warn``)."""
        if warn:
            for m in self.out_of_range(X):
                warnings.warn(m, ExtrapolationWarning, stacklevel=2)
        f = self.decision_function(X)
        if self.kind == "logistic":
            return _expit(f)
        return _expit(-(float(self.params["platt_A"]) * f + float(self.params["platt_B"])))

    def coefficients_original_units(self) -> dict:
        """Eq. 5 coefficients in the original units (logistic only): beta0 and one per feature."""
        if self.kind != "logistic":
            raise AnalysisError("only the logistic model has coefficients")
        coef = np.asarray(self.params["coef"], dtype=float) / self.scaler_scale
        b0 = float(self.params["intercept"]) - float(np.sum(coef * self.scaler_mean))
        return {"beta0": b0, **{f"beta_{n}": float(c) for n, c in zip(self.feature_names, coef)}}

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "kind": self.kind,
             "features": list(self.feature_names),
             "scaler": {"mean": self.scaler_mean.tolist(), "scale": self.scaler_scale.tolist()},
             "params": {k: _jsonable(v) for k, v in self.params.items()},
             "training": {"n": self.n_train, "n_responders": self.n_responders,
                          "min": self.training_min.tolist(), "max": self.training_max.tolist()},
             "settings": {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in self.settings.items()},
             "provenance": dict(self.provenance),
             "probability": ("1 / (1 + exp(-(coef . z + intercept)))" if self.kind == "logistic" else
                             "1 / (1 + exp(platt_A * f + platt_B)), f = sum(dual_coef * exp(-gamma |z - sv|^2)) "
                             "+ intercept"),
             "standardisation": "z = (x - scaler.mean) / scaler.scale"}
        if self.kind == "logistic":
            d["coefficients_original_units"] = self.coefficients_original_units()
        if self.bootstrap:
            d["bootstrap"] = self.bootstrap
        return d

    @classmethod
    def from_dict(cls, d: dict, source="model") -> "ResponseModel":
        """A model from its dict; checked first against :mod:`.model_schema` (every problem listed
        in one :class:`~.model_schema.ModelFileError` naming the field)."""
        validate_model_dict(d, source)
        return cls(kind=d["kind"], feature_names=list(d["features"]),
                   scaler_mean=np.asarray(d["scaler"]["mean"], dtype=float),
                   scaler_scale=np.asarray(d["scaler"]["scale"], dtype=float),
                   params=dict(d["params"]),
                   training_min=np.asarray(d["training"]["min"], dtype=float),
                   training_max=np.asarray(d["training"]["max"], dtype=float),
                   n_train=int(d["training"]["n"]), n_responders=int(d["training"]["n_responders"]),
                   settings=dict(d.get("settings", {})), provenance=dict(d.get("provenance", {})),
                   bootstrap=d.get("bootstrap"))

    def save_json(self, path: str | Path) -> Path:
        """Write the model as JSON (floats written with full precision: exact round trip)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> "ResponseModel":
        """Read a model file (UTF-8 JSON, checked against :mod:`.model_schema`)."""
        from .model_schema import ModelFileError

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found or not a regular file: {path}")
        raw = path.read_bytes()
        if len(raw) > 64 * 1024 * 1024:
            raise ModelFileError(path, [("<file>", f"{len(raw)} bytes: far too large for a model file")])
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ModelFileError(path, [("<file>", f"not UTF-8 text (byte {exc.start})")]) from None
        return cls.from_dict(parse_model_json(text, path), path)


def model_from_pipeline(pipe, kind: str, feature_names, X, y, settings: ModelSettings | None = None,
                        seed: int = 0) -> ResponseModel:
    """Extract the numbers of a fitted pipeline into a :class:`ResponseModel`."""
    import sklearn

    scaler = pipe.named_steps["scaler"]
    est = pipe.named_steps["model"]
    if kind == "logistic":
        params = {"coef": est.coef_.ravel().astype(float), "intercept": float(est.intercept_[0])}
    else:
        svc = est.svc_
        params = {"support_vectors": svc.support_vectors_.astype(float), "dual_coef": svc.dual_coef_.ravel().astype(float),
                  "intercept": float(svc.intercept_[0]), "gamma": float(svc._gamma),
                  "platt_A": float(est.platt_A_), "platt_B": float(est.platt_B_)}
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    s = (settings or ModelSettings()).to_dict()
    return ResponseModel(kind, list(feature_names), scaler.mean_.astype(float), scaler.scale_.astype(float), params,
                         X.min(axis=0), X.max(axis=0), int(len(y)), int(np.sum(y)), s,
                         {"library": f"scikit-learn {sklearn.__version__}", "seed": seed})


def fit_response_model(X, y, kind: str = "logistic", feature_names=None, seed: int = 0,
                       settings: ModelSettings | None = None) -> ResponseModel:
    """Train a ``kind`` model on all patients (for the probability surface and for predicting
    new patients) and return it as a :class:`ResponseModel`."""
    X, y = _check_xy(X, y, feature_names)
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])]
    pipe, note = fit_pipeline(kind, X, y, seed, settings)
    model = model_from_pipeline(pipe, kind, names, X, y, settings, seed)
    if kind == "svm":
        est = pipe.named_steps["model"]
        if est.n_train_used_ < est.n_train_total_:
            model.settings["svm_trained_on"] = (f"a stratified random subsample of {est.n_train_used_} of the "
                                                f"{est.n_train_total_} patients (seed {seed})")
    if kind == "logistic":
        model.settings["fit_method"] = ("L2-penalised (the data are separated or the maximum-likelihood fit did not "
                                        "converge)" if note else (settings or ModelSettings()).logistic_method)
        if note:
            model.settings.update(logistic_penalty="l2", logistic_C=(settings or ModelSettings()).logistic_C,
                                  fit_note=note)
    return model


def probability_surface(model: ResponseModel, x_range, y_range, n: int = 121):
    """Probability of PR on an n × n grid over ``x_range`` (first feature) × ``y_range``
    (second).  Returns (x_values, y_values, P) with P[i, j] at (x_values[j], y_values[i])."""
    if len(model.feature_names) != 2:
        raise AnalysisError("a probability surface needs a model of two features")
    xs = np.linspace(float(x_range[0]), float(x_range[1]), n)
    ys = np.linspace(float(y_range[0]), float(y_range[1]), n)
    gx, gy = np.meshgrid(xs, ys)
    p = model.predict_probability(np.column_stack([gx.ravel(), gy.ravel()]), warn=False).reshape(gx.shape)
    return xs, ys, p


def predict_new_patient(models: dict[str, ResponseModel], cAD_Gy: float, delta_ad_per_aa_percent: float,
                        sigmoid=None) -> dict:
    """Probability of PR for one new patient from every model (and the Eq. 2 curve if given).

    Returns {model name: {probability, warnings}}; a value outside a model's training range is
    named in that model's warnings (no Python warning is raised here)."""
    out = {}
    values = {"cumulative_tumor_dose_Gy": float(cAD_Gy), "delta_ad_per_aa_percent": float(delta_ad_per_aa_percent)}
    for name, m in models.items():
        x = np.array([[values[f] for f in m.feature_names]])
        out[name] = {"probability": float(m.predict_probability(x, warn=False)[0]), "warnings": m.out_of_range(x)}
    if sigmoid is not None:
        lo = min(g.min_value for g in sigmoid.groups)
        hi = max(g.max_value for g in sigmoid.groups)
        w = [] if lo <= cAD_Gy <= hi else [f"cumulative_tumor_dose_Gy = {cAD_Gy:g} is outside the fitted range "
                                           f"[{lo:g}, {hi:g}]: extrapolation"]
        out["sigmoid_eq2"] = {"probability": float(sigmoid.predict(cAD_Gy)), "warnings": w}
    return out
