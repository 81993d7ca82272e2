"""Survival analyses (PFS, OS) by dose metrics and by tumour shrinkage (lifelines).

* :func:`compare_survival` — Kaplan–Meier curves of two groups, log-rank test, and the Cox
  proportional-hazards ratio (group 'high' vs 'low') with its 95 % Wald CI.
* :func:`cox_efron` — the one-covariate Cox fit used everywhere here (vectorised Efron partial
  likelihood, checked against lifelines' ``CoxPHFitter``).
* :func:`cox_continuous` — Cox hazard ratio per unit of a continuous covariate.
* :func:`landmark` — the time part of a landmark selection: only patients still event-free and
  under follow-up *after* the landmark time (time > landmark) are kept, and time is re-zeroed at
  the landmark (time − landmark).  The full landmark analysis of Pavel et al. (Cancer Med 2025),
  with shrinkage measured *up to* the landmark from the visit table, is :mod:`.landmark`.

Hebert et al. (J Nucl Med 2024) dichotomised the patient-mean total lesion AD at 91.36 Gy and
the lowest lesion AD at 52.52 Gy (the medians of that cohort; "more than" = high group); Pavel
et al. compared best tumour shrinkage >= 30 % (best change of the sum of diameters <= −30 %)
with < 30 % (intention to treat, :func:`.landmark.dichotomised_shrinkage_groups`).

lifelines (and through it pandas) is imported inside the functions; inputs and outputs are
numpy arrays and plain dicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .errors import AnalysisError

SEED001_MEAN_LESION_AD_THRESHOLD_GY = 91.36
SEED001_MIN_LESION_AD_THRESHOLD_GY = 52.52
SEED004_SHRINKAGE_CUTOFF_PERCENT = -30.0


def _finite(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


@dataclass
class KMCurve:
    """Kaplan–Meier estimate of one group (times in months)."""

    label: str
    n: int
    n_events: int
    timeline_months: np.ndarray
    survival: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    median_months: float | None
    median_ci95_months: tuple[float | None, float | None]
    durations_months: np.ndarray | None = None  # each patient's follow-up time (for the numbers at risk)

    def n_at_risk(self, times_months) -> list[int]:
        """Patients still at risk (time >= t: no event and not censored before t) at each time
        (the number-at-risk row under a Kaplan–Meier plot; lifelines' ``event_table.at_risk``
        convention)."""
        d = np.asarray(self.durations_months if self.durations_months is not None else [], dtype=float)
        return [int(np.sum(d >= t)) for t in np.atleast_1d(np.asarray(times_months, dtype=float))]

    def to_dict(self) -> dict:
        return {"label": self.label, "n": self.n, "n_events": self.n_events, "time_unit": "months",
                "median_months": self.median_months, "median_ci95_months": list(self.median_ci95_months),
                "timeline_months": self.timeline_months.tolist(), "survival": self.survival.tolist(),
                "ci_lower": self.ci_lower.tolist(), "ci_upper": self.ci_upper.tolist()}


def kaplan_meier(time_months, event, label: str = "all") -> KMCurve:
    """Kaplan–Meier curve with log-log 95 % band and the median with its CI (None = not reached)."""
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    t = np.asarray(time_months, dtype=float)
    e = np.asarray(event, dtype=bool)
    if t.size == 0:
        raise AnalysisError(f"group '{label}' is empty")
    kmf = KaplanMeierFitter(label=label).fit(t, e)
    sf = kmf.survival_function_.iloc[:, 0].to_numpy()
    ci = kmf.confidence_interval_survival_function_
    med = _finite(kmf.median_survival_time_)
    try:
        mci = median_survival_times(kmf.confidence_interval_).to_numpy().ravel()
        mci = (_finite(mci[0]), _finite(mci[1]))
    except Exception:  # pragma: no cover - lifelines edge cases
        mci = (None, None)
    return KMCurve(label, int(t.size), int(e.sum()), kmf.survival_function_.index.to_numpy(dtype=float), sf,
                   ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy(), med, mci, t.copy())


def _efron_terms(t, e, x):
    """Sorted data and the index arrays of the Efron partial likelihood (see :func:`cox_efron`)."""
    order = np.argsort(t, kind="mergesort")
    t, e, x = t[order], e[order], x[order]
    uniq, first = np.unique(t, return_index=True)          # risk set of time u: rows first[u]..end
    grp = np.searchsorted(uniq, t)
    d = np.bincount(grp, weights=e, minlength=uniq.size)   # events per distinct time
    ev_t = np.flatnonzero(d > 0)
    dj = d[ev_t].astype(int)
    rep = np.repeat(np.arange(ev_t.size), dj)              # one Efron term per event
    frac = np.arange(rep.size) - np.repeat(np.cumsum(dj) - dj, dj)
    frac = frac / np.repeat(dj, dj)                        # l / d_j, l = 0 .. d_j - 1
    return t, e, x, first, grp, ev_t, rep, frac


def cox_efron(time, event, covariate, max_iter: int = 60) -> dict:
    """Cox proportional-hazards fit of one covariate, Efron's method for tied times.

    Maximum partial likelihood by Newton–Raphson with step halving, vectorised with cumulative
    sums over the time-sorted data (O(n log n) per fit; lifelines' Efron loop is O(n) in Python
    per iteration and takes seconds on 10,000 patients).  Same estimator as
    ``lifelines.CoxPHFitter`` (Testing/test_response_landmark.py checks coefficient and SE to
    1e-6).  Returns {coef, se, hazard_ratio, ci95 (Wald, 95 %), p (Wald), converged, notes}; a
    covariate that separates the events (monotone likelihood, e.g. a group without events)
    gives converged False and NaN estimates."""
    t = np.asarray(time, float)
    e = np.asarray(event, float)
    x = np.asarray(covariate, float)
    x = x - x.mean()
    t, e, x, first, grp, ev_t, rep, frac = _efron_terms(t, e, x)
    n_ev = float(e.sum())
    xe_sum = float(np.sum(x * e))

    def parts(beta):
        eta = beta * x
        w = np.exp(eta - eta.max())
        rs = lambda v: np.cumsum(v[::-1])[::-1]  # noqa: E731  (sum over rows at or after each row)
        s0, s1, s2 = rs(w)[first], rs(w * x)[first], rs(w * x * x)[first]
        d0 = np.bincount(grp, weights=w * e, minlength=first.size)
        d1 = np.bincount(grp, weights=w * x * e, minlength=first.size)
        d2 = np.bincount(grp, weights=w * x * x * e, minlength=first.size)
        a0 = s0[ev_t][rep] - frac * d0[ev_t][rep]
        a1 = s1[ev_t][rep] - frac * d1[ev_t][rep]
        a2 = s2[ev_t][rep] - frac * d2[ev_t][rep]
        ll = beta * xe_sum - float(np.sum(np.log(a0))) - n_ev * float(eta.max())
        grad = xe_sum - float(np.sum(a1 / a0))
        info = float(np.sum(a2 / a0 - (a1 / a0) ** 2))
        return ll, grad, info

    beta, notes, converged = 0.0, [], False
    ll, grad, info = parts(beta)
    sd = float(np.std(x)) or 1.0
    for _ in range(max_iter):
        if info <= 0:
            break
        step = grad / info
        while True:
            nb = beta + step
            nll, ngrad, ninfo = parts(nb)
            if np.isfinite(nll) and nll >= ll - 1e-12 * abs(ll):
                break
            step /= 2
            if abs(step) < 1e-14:
                break
        beta, ll, grad, info = nb, nll, ngrad, ninfo
        if abs(step) < 1e-10 * (1 + abs(beta)):
            converged = True
            break
        if abs(beta) * sd > 40:
            break
    if not converged or info <= 0:
        notes.append("Cox fit did not converge: the covariate separates the events (monotone likelihood, e.g. a "
                     "group without events); the hazard ratio is not estimable")
        return {"coef": math.nan, "se": math.nan, "hazard_ratio": math.nan, "ci95": (math.nan, math.nan),
                "p": math.nan, "converged": False, "notes": notes}
    se = 1.0 / math.sqrt(info)
    z = 1.959963984540054
    return {"coef": beta, "se": se, "hazard_ratio": math.exp(beta),
            "ci95": (math.exp(beta - z * se), math.exp(beta + z * se)),
            "p": float(2 * stats.norm.sf(abs(beta / se))), "converged": True, "notes": notes}


def _cox(time, event, covariate) -> tuple[float, tuple[float, float], float, list[str]]:
    """(HR per unit, 95 % Wald CI, Wald p, notes) of :func:`cox_efron`."""
    r = cox_efron(time, event, covariate)
    return r["hazard_ratio"], r["ci95"], r["p"], r["notes"]


@dataclass
class SurvivalComparison:
    """Two-group survival comparison (see :func:`compare_survival`)."""

    endpoint: str
    variable: str
    rule: str
    groups: list[KMCurve]
    logrank_statistic: float
    logrank_p: float
    hazard_ratio: float
    hazard_ratio_ci95: tuple[float, float]
    hazard_ratio_p: float
    n_used: int
    excluded_patient_ids: list[str] = field(default_factory=list)
    landmark_months: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self, include_curves: bool = True) -> dict:
        d = {"endpoint": self.endpoint, "variable": self.variable, "rule": self.rule, "time_unit": "months",
             "logrank_statistic": _finite(self.logrank_statistic), "logrank_p": _finite(self.logrank_p),
             "hazard_ratio": _finite(self.hazard_ratio),
             "hazard_ratio_ci95": [_finite(v) for v in self.hazard_ratio_ci95],
             "hazard_ratio_p": _finite(self.hazard_ratio_p),
             "hazard_ratio_meaning": f"{self.groups[1].label} vs {self.groups[0].label} (Cox PH, Wald CI)",
             "n_used": self.n_used, "excluded_patient_ids": list(self.excluded_patient_ids),
             "landmark_months": self.landmark_months, "notes": list(self.notes),
             "groups": [g.to_dict() if include_curves else
                        {k: v for k, v in g.to_dict().items() if k not in ("timeline_months", "survival", "ci_lower",
                                                                           "ci_upper")} for g in self.groups]}
        return d


def compare_survival(time_months, event, in_high_group, endpoint: str, variable: str, rule: str,
                     labels: tuple[str, str] = ("low", "high"), patient_ids=None,
                     landmark_months: float | None = None) -> SurvivalComparison:
    """KM per group, log-rank test and Cox HR of group ``labels[1]`` (``in_high_group`` True) vs
    ``labels[0]``.  Rows with a missing time, event or group are left out and listed."""
    from lifelines.statistics import logrank_test

    t = np.asarray(time_months, dtype=float)
    e = np.asarray(event, dtype=float)
    g = np.asarray(in_high_group, dtype=float)
    ids = np.asarray(patient_ids if patient_ids is not None else [str(i) for i in range(t.size)], dtype=object)
    ok = ~(np.isnan(t) | np.isnan(e) | np.isnan(g))
    excluded = [str(p) for p in ids[~ok]]
    t, e, g = t[ok], e[ok].astype(bool), g[ok].astype(bool)
    notes: list[str] = []
    if g.all() or (~g).all():
        raise AnalysisError(f"{endpoint} by {variable}: all {t.size} patients fall in one group ({rule})")
    low = kaplan_meier(t[~g], e[~g], labels[0])
    high = kaplan_meier(t[g], e[g], labels[1])
    if e.sum() == 0:
        notes.append("no events: log-rank and Cox not defined")
        stat = p = float("nan")
        hr, hr_ci, hr_p = float("nan"), (float("nan"), float("nan")), float("nan")
    else:
        lr = logrank_test(t[g], t[~g], e[g], e[~g])
        stat, p = float(lr.test_statistic), float(lr.p_value)
        hr, hr_ci, hr_p, cox_notes = _cox(t, e, g.astype(float))
        notes += cox_notes
        if e[g].sum() == 0 or e[~g].sum() == 0:
            notes.append("one group has no events: the hazard ratio is not estimable (infinite)")
    return SurvivalComparison(endpoint, variable, rule, [low, high], stat, p, hr, hr_ci, hr_p, int(t.size), excluded,
                              landmark_months, notes)


def cox_continuous(time_months, event, covariate, name: str, unit: str = "") -> dict:
    """Cox hazard ratio per one unit of ``covariate`` (rows with NaN left out)."""
    t = np.asarray(time_months, dtype=float)
    e = np.asarray(event, dtype=float)
    x = np.asarray(covariate, dtype=float)
    ok = ~(np.isnan(t) | np.isnan(e) | np.isnan(x))
    if ok.sum() < 3 or e[ok].sum() == 0:
        return {"covariate": name, "n_used": int(ok.sum()), "hazard_ratio_per_unit": None, "ci95": [None, None],
                "p": None, "notes": ["too few patients or no events"]}
    hr, ci, p, notes = _cox(t[ok], e[ok], x[ok])
    return {"covariate": name, "unit": unit, "n_used": int(ok.sum()), "hazard_ratio_per_unit": _finite(hr),
            "ci95": [_finite(ci[0]), _finite(ci[1])], "p": _finite(p), "notes": notes}


def landmark(time_months, event, landmark_months: float) -> tuple[np.ndarray, np.ndarray]:
    """(kept mask, time re-zeroed at the landmark) for a landmark analysis (seed 004).

    Kept: patients with time > landmark, i.e. event-free and still followed at the landmark
    (an event or censoring at or before the landmark excludes the patient)."""
    t = np.asarray(time_months, dtype=float)
    if landmark_months < 0:
        raise AnalysisError("the landmark time must be >= 0 months")
    keep = ~np.isnan(t) & (t > landmark_months)
    return keep, np.where(keep, t - landmark_months, np.nan)
