"""The whole cohort analysis in one call: :func:`run_cohort_analysis`.

Stages (each reads like the issue list; a stage that cannot run on the data — too few events,
a missing column — is skipped with a warning instead of stopping the others):

1. descriptive statistics (responders vs non-responders, subgroups, Spearman cAD vs ΔAD/AA)
   and, with per-cycle data, Table 2 / Fig. 1 statistics;
2. groupwise analysis by ΔAD/AA and by cAD, and the Eq. 2 sigmoid fit on cAD;
3. 2D logistic regression (Eq. 5) and RBF-SVM on (cAD, ΔAD/AA), plus single-metric logistic
   models: stratified 5-fold CV, out-of-fold ROC/AUC with bootstrap CI, repeated CV, final
   models trained on all patients (probability surfaces, new-patient predictions);
4. cut-off rules (seed 000: cAD >= 100 Gy and ΔAD/AA <= −50 %; user cut-offs);
5. survival (PFS/OS) by dose metrics (seed 001 thresholds or cohort medians) and by best
   shrinkage (seed 004), with landmark analyses;
6. lesion level (seed 001 ΔV vs AD and TCP; seed 003 categories and heterogeneity).

Patients missing a value an analysis needs are left out of *that* analysis and listed in the
warnings; nothing is dropped silently.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import __version__
from .cohort import CohortTable, CycleTable, LesionTable, patient_lesion_dose_metrics
from .descriptive import describe_cohort, per_cycle_summary
from .errors import AnalysisError
from .landmark import (
    PAVEL_LANDMARKS_DAYS,
    LandmarkResult,
    dichotomised_shrinkage_groups,
    landmark_analysis,
)
from .lesions import (
    categorize_lesions,
    category_dose_relation,
    heterogeneity_dose_relation,
    regress_volume_change,
    tumor_control_probability,
)
from .models import (
    CVResult,
    ModelSettings,
    RepeatedCV,
    ResponseModel,
    cross_validated_probabilities,
    fit_response_model,
    predict_new_patient,
    repeated_cv_auc,
)
from .pet_lesions import (
    PetLesionTable,
    categorize_pet_lesions,
    first_followup_arrays,
    pet_label,
)
from .readers import CAD, DELTA
from .roc import bootstrap_auc_ci, roc_curve
from .rules import (
    SEED000_CAD_CUTOFF_GY,
    SEED000_DELTA_CUTOFF_PERCENT,
    RuleResult,
    evaluate_cutoff_rule,
)
from .sigmoid import ResponseGroup, SigmoidFit, fit_sigmoid, group_by_metric
from .survival import (
    SEED001_MEAN_LESION_AD_THRESHOLD_GY,
    SEED001_MIN_LESION_AD_THRESHOLD_GY,
    SEED004_SHRINKAGE_CUTOFF_PERCENT,
    SurvivalComparison,
    compare_survival,
    cox_continuous,
)
from .visits import VisitTable

FEATURES_2D = (CAD, DELTA)
MODEL_FEATURES = {
    "logistic": ("logistic", FEATURES_2D),
    "svm": ("svm", FEATURES_2D),
    "logistic_cAD": ("logistic", (CAD,)),
    "logistic_delta": ("logistic", (DELTA,)),
}


@dataclass(frozen=True)
class CohortAnalysisOptions:
    """Settings of :func:`run_cohort_analysis` (defaults follow seed 000 and the issue).

    survival_thresholds: ``"seed"`` (seed 001: 91.36 Gy mean lesion AD = cAD, 52.52 Gy min
    lesion AD) or ``"median"`` (cohort medians).  user_cutoffs: extra (cAD Gy, ΔAD/AA %) rules.
    """

    seed: int = 0
    n_bootstrap: int = 1000
    n_cv_splits: int = 5
    n_cv_repeats: int = 20
    group_size: int = 11
    confidence: float = 0.95
    cad_cutoff_Gy: float = SEED000_CAD_CUTOFF_GY
    delta_cutoff_percent: float = SEED000_DELTA_CUTOFF_PERCENT
    user_cutoffs: tuple[tuple[float, float], ...] = ()
    survival_thresholds: str = "seed"
    shrinkage_cutoff_percent: float = SEED004_SHRINKAGE_CUTOFF_PERCENT
    landmark_days: tuple[float | None, ...] = PAVEL_LANDMARKS_DAYS
    model_settings: ModelSettings = field(default_factory=ModelSettings)

    def to_dict(self) -> dict:
        return {"seed": self.seed, "n_bootstrap": self.n_bootstrap, "n_cv_splits": self.n_cv_splits,
                "n_cv_repeats": self.n_cv_repeats, "group_size": self.group_size, "confidence": self.confidence,
                "cad_cutoff_Gy": self.cad_cutoff_Gy, "delta_cutoff_percent": self.delta_cutoff_percent,
                "user_cutoffs": [list(c) for c in self.user_cutoffs], "survival_thresholds": self.survival_thresholds,
                "shrinkage_cutoff_percent": self.shrinkage_cutoff_percent,
                "landmark_days": list(self.landmark_days), "model_settings": self.model_settings.to_dict()}


@dataclass
class CohortResults:
    """Everything :func:`run_cohort_analysis` computed (plain numbers and result objects)."""

    table: CohortTable
    options: CohortAnalysisOptions
    descriptive: dict = field(default_factory=dict)
    cycles: dict | None = None
    sigmoid: SigmoidFit | None = None
    delta_groups: list[ResponseGroup] = field(default_factory=list)
    response_mask: np.ndarray | None = None
    cv: dict[str, CVResult] = field(default_factory=dict)
    repeated_cv: dict[str, RepeatedCV] = field(default_factory=dict)
    models: dict[str, ResponseModel] = field(default_factory=dict)
    sigmoid_roc: dict | None = None
    rules: list[RuleResult] = field(default_factory=list)
    survival: list[SurvivalComparison] = field(default_factory=list)
    survival_continuous: list[dict] = field(default_factory=list)
    landmark: list[LandmarkResult] = field(default_factory=list)
    landmark_not_run: str | None = None
    shrinkage_groups: dict | None = None
    lesions: dict | None = None
    lesion_fits: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    demo_truth: dict | None = None
    predictions: list[dict] = field(default_factory=list)

    def predict_new_patient(self, cAD_Gy: float, delta_ad_per_aa_percent: float) -> dict:
        """Probability of PR for a new patient from every trained model and the Eq. 2 curve."""
        return predict_new_patient(self.models, cAD_Gy, delta_ad_per_aa_percent, self.sigmoid)

    def add_prediction(self, cAD_Gy: float, delta_ad_per_aa_percent: float) -> dict:
        """Predict a new patient with every model (bootstrap interval, :mod:`.prediction`) and
        keep it for ``cohort_results.json``, the report and the figures; returns the prediction."""
        from .prediction import predict_patient

        p = predict_patient(self.models, cAD_Gy, delta_ad_per_aa_percent, self.sigmoid, self.options.confidence)
        self.predictions.append(p)
        return p

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> None) — the content of ``cohort_results.json``."""
        d: dict = {
            "software": f"LuResponseLib {__version__}",
            "source": self.table.source,
            "n_patients": self.table.n_patients,
            "options": self.options.to_dict(),
            "response_analysis_patient_ids": ([str(p) for p in self.table.patient_ids[self.response_mask]]
                                              if self.response_mask is not None else []),
            "descriptive": self.descriptive,
            "per_cycle": self.cycles,
            "sigmoid": self.sigmoid.to_dict() if self.sigmoid else None,
            "delta_groups": [{"n": g.n, "median_delta_ad_per_aa_percent": g.median_value,
                              "proportion_PR": g.proportion_PR, "n_responders": g.n_responders,
                              "min_delta_ad_per_aa_percent": g.min_value, "max_delta_ad_per_aa_percent": g.max_value}
                             for g in self.delta_groups],
            "models": {},
            "rules": [r.to_dict() for r in self.rules],
            "survival": [s.to_dict(include_curves=False) for s in self.survival],
            "survival_cox_continuous": self.survival_continuous,
            "landmark_analysis": {"method": "Pavel et al., Cancer Med 2025, section 2.3.1",
                                  "not_run": self.landmark_not_run,
                                  "landmarks": [r.to_dict() for r in self.landmark]},
            "shrinkage_groups_itt": self.shrinkage_groups,
            "lesions": self.lesions,
            "warnings": list(self.warnings),
            "timings_s": dict(self.timings_s),
            "predictions": list(self.predictions),
        }
        for name, cv in self.cv.items():
            entry = cv.to_dict(include_curve=True)
            if name in self.repeated_cv:
                entry["repeated_cv"] = self.repeated_cv[name].to_dict()
            if name in self.models:
                m = self.models[name]
                entry["trained_model"] = {k: v for k, v in m.to_dict().items() if k in ("features", "scaler",
                                                                                       "coefficients_original_units",
                                                                                       "training", "settings")}
            d["models"][name] = entry
        if self.sigmoid_roc:
            d["models"]["sigmoid_eq2"] = self.sigmoid_roc
        if self.demo_truth:
            d["demo_truth"] = {k: v for k, v in self.demo_truth.items() if k != "true_probability"}
        return _clean(d)


def _prediction_bootstrap(model: ResponseModel, X, y, opt: CohortAnalysisOptions) -> dict:
    """Bootstrap refits of ``model`` for prediction intervals (:mod:`.prediction`), with the
    settings the model was fitted with (L2 when its maximum-likelihood fit fell back to it)."""
    from dataclasses import replace

    from .prediction import bootstrap_replicates

    settings = opt.model_settings
    if model.kind == "logistic" and model.settings.get("logistic_penalty") == "l2":
        settings = replace(settings, logistic_penalty="l2")
    return bootstrap_replicates(model.kind, X, y, opt.n_bootstrap, opt.seed, settings)


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if math.isfinite(f) else None
    return o


def _augment_with_lesion_metrics(table: CohortTable, lesions: LesionTable, warnings: list[str]) -> CohortTable:
    if not lesions.has("lesion_ad_Gy"):
        return table
    metrics = patient_lesion_dose_metrics(lesions.column("patient_id"), lesions.column("lesion_ad_Gy"))
    cols = dict(table.columns)
    added = []
    for name in ("mean_lesion_ad_Gy", "min_lesion_ad_Gy", "max_lesion_ad_Gy"):
        if table.has(name):
            continue
        cols[name] = np.array([metrics.get(str(p), {}).get(name, np.nan) for p in table.patient_ids], dtype=float)
        added.append(name)
    if added:
        warnings.append(f"{', '.join(added)} computed from the lesion table {lesions.source}")
    return CohortTable(cols, table.source, table.lines, table.missing, table.notes)


def run_cohort_analysis(table: CohortTable, options: CohortAnalysisOptions | None = None,
                        cycles: CycleTable | None = None, lesions: LesionTable | None = None,
                        progress: Callable[[float, str], None] | None = None,
                        visits: VisitTable | None = None,
                        pet_lesions: PetLesionTable | None = None) -> CohortResults:
    """Run every analysis the data allow (see module doc) and return a :class:`CohortResults`.

    ``visits``: the visit-level tumour measurements (:mod:`.visits`); without them the landmark
    analysis of Pavel et al. is not run (and the results say why).  ``pet_lesions``: lesion
    uptake per PET scan (:mod:`.pet_lesions`) for the Santoro-Fernandes et al. categories."""
    opt = options or CohortAnalysisOptions()
    res = CohortResults(table=table, options=opt)
    warn = res.warnings
    warn.extend(table.notes)
    if lesions is not None:
        table = _augment_with_lesion_metrics(table, lesions, warn)
        res.table = table
    steps = 7

    def stage(i: int, name: str):
        if progress:
            progress(i / steps, name)
        return time.perf_counter()

    # 1. descriptive -------------------------------------------------------------------------
    t0 = stage(0, "descriptive statistics")
    res.descriptive = describe_cohort(table)
    if cycles is not None:
        res.cycles = per_cycle_summary(cycles, opt.n_bootstrap, opt.seed)
    res.timings_s["descriptive"] = time.perf_counter() - t0

    # 2. groups and sigmoid ---------------------------------------------------------------------
    t0 = stage(1, "groupwise analysis and sigmoid fit")
    ok = table.complete(CAD, DELTA, "response")
    res.response_mask = ok
    excluded = table.excluded_ids(CAD, DELTA, "response")
    if excluded:
        warn.append(f"{len(excluded)} patient(s) without cAD, dAD/AA or response are left out of the response "
                    f"analyses: {', '.join(excluded)}")
    cad = table.cumulative_tumor_dose_Gy[ok]
    delta = table.delta_ad_per_aa_percent[ok]
    y = table.responder[ok]
    ids = table.patient_ids[ok]
    if delta.size:
        res.delta_groups = group_by_metric(delta, y, opt.group_size, ids)
    try:
        res.sigmoid = fit_sigmoid(cad, y, opt.group_size, opt.confidence, ids)
        warn.extend(f"sigmoid: {n}" for n in res.sigmoid.notes)
    except AnalysisError as e:
        warn.append(f"sigmoid fit skipped: {e}")
    if res.sigmoid is not None and 0 < y.sum() < y.size:
        p = res.sigmoid.predict(cad)
        lo, hi, _ = bootstrap_auc_ci(y, p, opt.n_bootstrap, opt.seed, opt.confidence)
        rc = roc_curve(y, p)
        res.sigmoid_roc = {"auc": res.sigmoid.auc, "auc_ci95": [lo, hi], "fpr": rc.fpr.tolist(), "tpr": rc.tpr.tolist(),
                           "note": "in-sample: Eq. 2 fitted to all patients' groups (not cross-validated)"}
    res.timings_s["sigmoid"] = time.perf_counter() - t0

    # 3. models ------------------------------------------------------------------------------
    t0 = stage(2, "cross-validated logistic and SVM models")
    X = np.column_stack([cad, delta])
    for k, (name, (kind, feats)) in enumerate(MODEL_FEATURES.items()):
        cols = [FEATURES_2D.index(f) for f in feats]
        if progress and k:
            progress((2 + k / len(MODEL_FEATURES)) / steps, f"cross-validated models: {name} ({y.size} patients)")
        try:
            res.cv[name] = cross_validated_probabilities(X[:, cols], y, kind, opt.n_cv_splits, opt.seed, opt.n_bootstrap,
                                                         opt.confidence, opt.model_settings, list(feats))
            if opt.n_cv_repeats > 0:
                n_rep, note = _repeats(kind, y.size, opt)
                rcv = repeated_cv_auc(X[:, cols], y, kind, n_rep, opt.n_cv_splits, opt.seed, opt.model_settings)
                rcv.n_repeats_requested, rcv.note = opt.n_cv_repeats, note
                res.repeated_cv[name] = rcv
                if note:
                    warn.append(f"model '{name}': {note}")
            res.models[name] = fit_response_model(X[:, cols], y, kind, list(feats), opt.seed, opt.model_settings)
            res.models[name].bootstrap = _prediction_bootstrap(res.models[name], X[:, cols], y, opt)
            warn.extend(f"model '{name}' prediction interval: {n}" for n in res.models[name].bootstrap["notes"])
            if res.models[name].settings.get("svm_trained_on"):
                warn.append(f"model '{name}' (all patients): SVM trained on {res.models[name].settings['svm_trained_on']}")
            warn.extend(f"model '{name}' cross-validation: {n}" for n in res.cv[name].notes)
            if res.models[name].settings.get("fit_note"):
                warn.append(f"model '{name}' (all patients): {res.models[name].settings['fit_note']}")
        except AnalysisError as e:
            warn.append(f"model '{name}' skipped: {e}")
    res.timings_s["models"] = time.perf_counter() - t0

    # 4. rules -------------------------------------------------------------------------------
    t0 = stage(3, "cut-off rules")
    if cad.size:
        rules = [(opt.cad_cutoff_Gy, opt.delta_cutoff_percent), (opt.cad_cutoff_Gy, None), (None, opt.delta_cutoff_percent)]
        rules += [tuple(c) for c in opt.user_cutoffs]
        for c, d in rules:
            res.rules.append(evaluate_cutoff_rule(cad, delta, y, c, d, opt.confidence))
    res.timings_s["rules"] = time.perf_counter() - t0

    # 5. survival ------------------------------------------------------------------------------
    t0 = stage(4, "survival analyses")
    if visits is not None:
        warn.extend(f"visit table: {n}" for n in visits.notes)
        table = _best_shrinkage_from_visits(table, visits, warn)
        res.table = table
    _survival(table, opt, res, visits)
    res.timings_s["survival"] = time.perf_counter() - t0

    # 6. lesions -------------------------------------------------------------------------------
    t0 = stage(5, "lesion-level analyses")
    if lesions is not None or pet_lesions is not None:
        _lesion_analyses(table, lesions, res, pet_lesions)
    res.timings_s["lesions"] = time.perf_counter() - t0
    if progress:
        progress(6 / steps, "analysis done")
    return res


def _repeats(kind: str, n: int, opt: CohortAnalysisOptions) -> tuple[int, str | None]:
    """Repeated-CV splits for a model: all requested ones, except for the SVM on a cohort larger
    than its training cap, where they are reduced in proportion (at least 5): the spread of the
    AUC over splits shrinks as the cohort grows, and each SVM split costs ~30 fits."""
    cap = opt.model_settings.svm_max_train
    if kind != "svm" or not cap or n <= cap or opt.n_cv_repeats <= 5:
        return opt.n_cv_repeats, None
    k = min(opt.n_cv_repeats, max(5, math.ceil(opt.n_cv_repeats * cap / n)))
    return k, (f"repeated cross-validation reduced to {k} of {opt.n_cv_repeats} splits for the SVM on {n} patients "
               f"(> {cap}; the spread over splits shrinks with the cohort size)")


def _best_shrinkage_from_visits(table: CohortTable, visits: VisitTable, warnings: list[str]) -> CohortTable:
    """Fill missing ``best_shrinkage_percent`` values (whole follow-up, before progression)
    from the visit table; say how many and whether given values disagree."""
    best = visits.best_percent_change(None)
    ids = [str(p) for p in table.patient_ids]
    col = (table.column("best_shrinkage_percent").copy() if "best_shrinkage_percent" in table.columns
           else np.full(len(ids), np.nan))
    filled, differ = [], []
    for i, p in enumerate(ids):
        b = best.get(p, np.nan)
        if np.isnan(b):
            continue
        if np.isnan(col[i]):
            col[i] = b
            filled.append(p)
        elif abs(col[i] - b) > 0.5:
            differ.append(f"{p} ({col[i]:g} vs {b:.4g})")
    if differ:
        warnings.append(f"best_shrinkage_percent of the cohort table differs from the visit table for {len(differ)} "
                        f"patient(s): {', '.join(differ[:20])}{' ...' if len(differ) > 20 else ''}; the visit table is "
                        "used for the shrinkage analyses")
    if not filled:
        return table
    warnings.append(f"best_shrinkage_percent computed from the visit table {visits.source} for {len(filled)} patient(s)")
    cols = dict(table.columns)
    cols["best_shrinkage_percent"] = col
    return CohortTable(cols, table.source, table.lines, table.missing, table.notes)


def _survival(table: CohortTable, opt: CohortAnalysisOptions, res: CohortResults,
              visits: VisitTable | None = None) -> None:
    warn = res.warnings
    endpoints = [(ep, f"{ep.lower()}_months", f"{ep.lower()}_event") for ep in ("PFS", "OS")]
    endpoints = [e for e in endpoints if table.has(e[1]) and table.has(e[2])]
    if not endpoints:
        res.landmark_not_run = "no PFS columns (pfs_months, pfs_event) in the cohort table"
        return
    ids = table.patient_ids
    seed_thr = opt.survival_thresholds == "seed"

    def threshold(name: str, seed_value: float | None):
        v = table.column(name)
        if seed_thr and seed_value is not None:
            return seed_value, f"Hebert et al. threshold {seed_value:g}"
        return float(np.nanmedian(v)), "cohort median"

    splits = []
    if table.has(CAD):
        thr, src = threshold(CAD, SEED001_MEAN_LESION_AD_THRESHOLD_GY)
        splits.append((CAD, table.column(CAD) > thr, f"cAD (mean lesion AD) > {thr:.4g} Gy ({src})",
                       (f"cAD <= {thr:.4g} Gy", f"cAD > {thr:.4g} Gy"), table.column(CAD)))
    if table.has("min_lesion_ad_Gy"):
        thr, src = threshold("min_lesion_ad_Gy", SEED001_MIN_LESION_AD_THRESHOLD_GY)
        splits.append(("min_lesion_ad_Gy", table.column("min_lesion_ad_Gy") > thr,
                       f"min lesion AD > {thr:.4g} Gy ({src})",
                       (f"min AD <= {thr:.4g} Gy", f"min AD > {thr:.4g} Gy"), table.column("min_lesion_ad_Gy")))
    if table.has(DELTA):
        thr = float(np.nanmedian(table.column(DELTA)))
        splits.append((DELTA, table.column(DELTA) <= thr, f"dAD/AA <= {thr:.3g} % (cohort median)",
                       (f"dAD/AA > {thr:.3g} %", f"dAD/AA <= {thr:.3g} %"), table.column(DELTA)))
    if visits is not None or table.has("best_shrinkage_percent"):
        sc = opt.shrinkage_cutoff_percent
        groups = dichotomised_shrinkage_groups(table, visits, sc)
        res.shrinkage_groups = groups.to_dict()
        if groups.n_itt_no_post_baseline:
            warn.append(f"shrinkage groups (intention to treat): {len(groups.n_itt_no_post_baseline)} patient(s) "
                        "with a baseline but no post-baseline measurement are in the "
                        f"'< {-sc:g} %' group: {', '.join(groups.n_itt_no_post_baseline[:20])}")
        for k, v in groups.not_in_population.items():
            if v:
                warn.append(f"shrinkage groups: {len(v)} patient(s) left out ({k.replace('_', ' ')}): "
                            f"{', '.join(v[:20])}{' ...' if len(v) > 20 else ''}")
        splits.append(("best_shrinkage_percent", groups.group == 1,
                       f"best shrinkage >= {-sc:g} % (change <= {sc:g} %) over the whole follow-up, intention to "
                       f"treat (Pavel et al.; {groups.source})",
                       (f"shrinkage < {-sc:g} %", f"shrinkage >= {-sc:g} %"), groups.group))

    for ep, tcol, ecol in endpoints:
        t = table.column(tcol)
        e = table.column(ecol)
        for var, mask, rule, labels, values in splits:
            group = np.where(np.isnan(values), np.nan, mask.astype(float))
            try:
                res.survival.append(compare_survival(t, e, group, ep, var, rule, labels, ids))
            except AnalysisError as exc:
                warn.append(f"survival {ep} by {var} skipped: {exc}")
        for var in (CAD, DELTA):
            if table.has(var):
                c = cox_continuous(t, e, table.column(var), var, "per Gy" if var == CAD else "per 1 %")
                c.update(endpoint=ep, landmark_days=None)
                res.survival_continuous.append(c)

    if visits is None:
        res.landmark_not_run = ("no visit-level table (patient_id, days_from_start, sum_of_diameters_mm or "
                                "percent_change, progression): the landmark analysis of Pavel et al. needs the best "
                                "shrinkage up to each landmark and is not run (the whole-follow-up "
                                "best_shrinkage_percent would give look-ahead bias)")
        warn.append(f"landmark analysis not run: {res.landmark_not_run}")
    elif not table.has("pfs_months"):
        res.landmark_not_run = "no PFS columns (pfs_months, pfs_event) in the cohort table"
    else:
        try:
            res.landmark = landmark_analysis(table, visits, tuple(opt.landmark_days), "PFS")
        except AnalysisError as exc:
            res.landmark_not_run = str(exc)
            warn.append(f"landmark analysis not run: {exc}")
        for r in res.landmark:
            warn.extend(f"landmark {r.label}: {n}" for n in r.notes if not n.startswith("no limit"))


def _heterogeneity_vs_dose(table: CohortTable, het: dict[str, bool]) -> list[dict]:
    out = []
    for name in (CAD, "min_lesion_ad_Gy", "mean_lesion_ad_Gy"):
        if table.has(name):
            dose = dict(zip(map(str, table.patient_ids), table.column(name)))
            r = heterogeneity_dose_relation(het, dose, name)
            if r is not None:
                out.append(r)
    return out


def _by_response(table: CohortTable, het: dict[str, bool]) -> dict[str, dict[str, int]]:
    resp = dict(zip(map(str, table.patient_ids), table.response))
    by: dict[str, dict[str, int]] = {}
    for p, h in het.items():
        e = by.setdefault(resp.get(p) or "missing", {"n": 0, "n_heterogeneous": 0})
        e["n"] += 1
        e["n_heterogeneous"] += int(h)
    return by


def _lesion_analyses(table: CohortTable, lesions: LesionTable | None, res: CohortResults,
                     pet: PetLesionTable | None = None) -> None:
    out: dict = {"source": lesions.source if lesions is not None else None,
                 "n_lesions": len(lesions) if lesions is not None else 0}
    warn = res.warnings
    if lesions is not None and lesions.has("lesion_ad_Gy") and lesions.has("delta_volume_percent"):
        ad, dv = lesions.column("lesion_ad_Gy"), lesions.column("delta_volume_percent")
        res.lesion_fits["data"] = (ad, dv)
        try:
            lin = regress_volume_change(ad, dv, res.options.confidence)
            res.lesion_fits["volume_regression"] = lin
            out["volume_change_vs_ad"] = lin.to_dict()
        except AnalysisError as e:
            warn.append(f"lesion volume regression skipped: {e}")
        try:
            tcp = tumor_control_probability(ad, dv, confidence=res.options.confidence)
            res.lesion_fits["tcp"] = tcp
            out["tcp"] = tcp.to_dict()
            warn.extend(f"TCP: {n}" for n in tcp.notes)
        except AnalysisError as e:
            warn.append(f"TCP fit skipped: {e}")
    cohort_ids = set(map(str, table.patient_ids))
    if lesions is not None and "total_uptake_baseline" in lesions.columns and "total_uptake_followup" in lesions.columns:
        b, f = lesions.column("total_uptake_baseline"), lesions.column("total_uptake_followup")
        cats = categorize_lesions(lesions.column("patient_id"), b, f)
        mods = {str(m).strip() for m in lesions.columns.get("uptake_modality", []) if m}
        modality = mods.pop() if len(mods) == 1 else ("PET" if not mods else "mixed")
        label = pet_label(modality)
        if not lesions.has("uptake_modality"):
            warn.append("lesion table: uptake_modality not given; the total uptake columns are read as baseline vs "
                        "follow-up PET (Santoro-Fernandes et al.); give uptake_modality = SPECT for therapy-SPECT "
                        "uptake between cycles (then labelled a dosimetry analogue)")
        counts = {c: cats["categories"].count(c) for c in ("disappearing", "decreasing", "stable", "increasing", "new")}
        het = {p: v["heterogeneous"] for p, v in cats["patients"].items()}
        not_in_cohort = [p for p in cats["patients"] if p not in cohort_ids]
        if not_in_cohort:
            warn.append(f"lesion table patients not in the cohort table: {', '.join(not_in_cohort)}")
        change = np.where((b > 0) & (f > 0), 100.0 * (f / np.where(b > 0, b, 1.0) - 1.0), np.nan)
        dose = (category_dose_relation(cats["categories"], lesions.column("lesion_ad_Gy"), change)
                if lesions.has("lesion_ad_Gy") else None)
        units = sorted({str(u) for u in lesions.columns.get("uptake_unit", []) if u})
        out["categories"] = {"label": label, "modality": modality, "unit": ", ".join(units) or "not stated",
                             "lesion_counts": counts, "patients": cats["patients"],
                             "n_heterogeneous": cats["n_heterogeneous"], "n_patients": cats["n_patients"],
                             "heterogeneity_by_response": _by_response(table, het), "definition": cats["definition"],
                             "dose_relation": dose, "heterogeneity_vs_dose": _heterogeneity_vs_dose(table, het),
                             "lesion_categories": [{"patient_id": str(p), "lesion_id": str(q), "category": c}
                                                   for p, q, c in zip(lesions.column("patient_id"),
                                                                      lesions.column("lesion_id"), cats["categories"])]}
    if pet is not None:
        pr = categorize_pet_lesions(pet)
        warn.extend(f"PET lesion table: {n}" for n in pr.notes)
        d = pr.to_dict()
        het = {p: v["followups"][0]["heterogeneous"] for p, v in pr.patients.items() if v["followups"]}
        pid, lid, cat, ch = first_followup_arrays(pr)
        if lesions is not None and lesions.has("lesion_ad_Gy"):
            lad = dict(zip(zip(map(str, lesions.column("patient_id")), map(str, lesions.column("lesion_id"))),
                           lesions.column("lesion_ad_Gy")))
            ad = np.array([lad.get((str(p), str(q)), np.nan) for p, q in zip(pid, lid)], dtype=float)
            d["dose_relation_first_followup"] = category_dose_relation(cat, ad, ch)
            d["dose_relation_first_followup"]["join"] = "lesion_ad_Gy of the lesion table, on (patient_id, lesion_id)"
        d["heterogeneity_first_followup_vs_dose"] = _heterogeneity_vs_dose(table, het)
        d["heterogeneity_first_followup_by_response"] = _by_response(table, het)
        outside = [p for p in pr.patients if p not in cohort_ids]
        if outside:
            warn.append(f"PET lesion table patients not in the cohort table: {', '.join(outside)}")
        out["pet_response"] = d
    res.lesions = out
