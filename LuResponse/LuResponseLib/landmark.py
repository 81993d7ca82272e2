"""Best tumour shrinkage and survival as in Pavel et al. (Cancer Med 2025, NETTER-1 ad hoc analysis).

Two analyses, both needing the *visit-level* table (:mod:`.visits`) for faithful numbers:

* :func:`landmark_analysis` (§2.3.1).  For each landmark (150 d, 180 d, 36, 48, 72 weeks and
  "no limit" by default): best shrinkage = best (lowest) percent change from baseline of the
  sum of target-lesion diameters (PCHG) *up to the landmark*, on or before first progression.
  Excluded, and counted by reason: best overall response PD; patients no longer at risk at the
  landmark (progressed or died, or censored = discontinued, on or before it); patients without
  a post-baseline measurement before it.  PFS restarts at the landmark (except "no limit":
  from the start of therapy), and a Cox model with the best PCHG as a *continuous* covariate
  gives the hazard ratio per 1 % change (lifelines, Wald 95 % CI).
  Grouping patients by shrinkage measured over the whole follow-up and counting PFS from the
  start instead has look-ahead (immortal-time) bias: patients who stay free of progression
  longer have more scans in which to reach a deep shrinkage.  The "no limit" time point of the
  paper is of that kind and is labelled so.
* :func:`dichotomised_shrinkage_groups` (§2.3.2): >= 30 % vs < 30 % best shrinkage over the
  whole follow-up, intention to treat — a patient with a baseline measurement but no
  post-baseline one is in the "< 30 %" group (not dropped).  KM, log-rank and Cox of PFS and OS
  are then :func:`.survival.compare_survival`.

Time units: the cohort table gives PFS in months, the visit table days; one month is
365.25 / 12 = 30.4375 days (:data:`DAYS_PER_MONTH`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .cohort import CohortTable
from .errors import AnalysisError
from .survival import _cox, _finite
from .visits import VisitTable

DAYS_PER_MONTH = 365.25 / 12.0
PAVEL_LANDMARKS_DAYS: tuple[float | None, ...] = (150.0, 180.0, 36 * 7.0, 48 * 7.0, 72 * 7.0, None)
PAVEL_SHRINKAGE_CUTOFF_PERCENT = -30.0
EXCLUSION_REASONS = {
    "no_pfs": "no PFS time or event",
    "best_response_pd": "best overall response PD",
    "progressed_or_died_before": "progressed or died on or before the landmark",
    "censored_before": "censored (discontinued or lost) on or before the landmark",
    "no_visits": "not in the visit table",
    "no_baseline": "no baseline measurement",
    "no_post_baseline_measurement": "no post-baseline measurement before the landmark (and before progression)",
}
MIN_PATIENTS = 5


def landmark_label(landmark_days: float | None) -> str:
    """'150 days', '36 weeks', ... or 'no limit'."""
    if landmark_days is None:
        return "no limit"
    if landmark_days % 7 == 0 and landmark_days not in (150.0, 180.0):
        return f"{landmark_days / 7:g} weeks"
    return f"{landmark_days:g} days"


@dataclass
class LandmarkResult:
    """One landmark of :func:`landmark_analysis` (times in days; HR per 1 % change of PCHG)."""

    endpoint: str
    landmark_days: float | None
    n_eligible: int
    n_events: int
    exclusions: dict[str, list[str]]
    hazard_ratio_per_percent: float
    hazard_ratio_ci95: tuple[float, float]
    p: float
    coef_per_percent: float
    coef_se: float
    best_pchg_median: float | None
    best_pchg_range: tuple[float | None, float | None]
    patient_ids: list[str] = field(default_factory=list)
    best_pchg: np.ndarray | None = None
    time_from_landmark_months: np.ndarray | None = None
    event: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return landmark_label(self.landmark_days)

    def to_dict(self) -> dict:
        return {"endpoint": self.endpoint, "landmark": self.label, "landmark_days": self.landmark_days,
                "n_eligible": self.n_eligible, "n_events": self.n_events,
                "excluded_counts": {k: len(v) for k, v in self.exclusions.items()},
                "excluded_patient_ids": {k: list(v) for k, v in self.exclusions.items() if v},
                "exclusion_reasons": {k: EXCLUSION_REASONS[k] for k in self.exclusions},
                "hazard_ratio_per_1_percent_change": _finite(self.hazard_ratio_per_percent),
                "hazard_ratio_ci95": [_finite(v) for v in self.hazard_ratio_ci95], "p": _finite(self.p),
                "coef_per_percent": _finite(self.coef_per_percent), "coef_se": _finite(self.coef_se),
                "best_pchg_median_percent": self.best_pchg_median,
                "best_pchg_range_percent": list(self.best_pchg_range),
                "time_origin": "start of therapy" if self.landmark_days is None else "landmark",
                "method": "Cox PH (lifelines), best PCHG up to the landmark as a continuous covariate, Wald CI",
                "notes": list(self.notes)}


def _best_response_pd(table: CohortTable, visits: VisitTable) -> dict[str, tuple[bool, bool]]:
    """{patient: (best response PD, derived from the scans)}: the cohort's RECIST response when
    present, else the first post-baseline scan shows progression."""
    out = {}
    resp = dict(zip(map(str, table.patient_ids), table.response)) if "response" in table.columns else {}
    for p in map(str, table.patient_ids):
        r = resp.get(p)
        if r is not None:
            out[p] = (r == "PD", False)
        elif p in visits.patients:
            out[p] = (visits.patients[p].progressed_at_first_assessment(), True)
        else:
            out[p] = (False, True)
    return out


def landmark_eligibility(table: CohortTable, visits: VisitTable, landmark_days: float | None,
                         endpoint: str = "PFS"):
    """(eligible ids, best PCHG, time in months from the landmark, event, exclusions by reason).

    Every cohort patient is either eligible or counted under the first reason that applies,
    in the order of :data:`EXCLUSION_REASONS`."""
    tcol, ecol = f"{endpoint.lower()}_months", f"{endpoint.lower()}_event"
    if not (table.has(tcol) and table.has(ecol)):
        raise AnalysisError(f"the landmark analysis needs the columns {tcol} and {ecol}")
    t_m, ev = table.column(tcol), table.column(ecol)
    pd = _best_response_pd(table, visits)
    excl: dict[str, list[str]] = {k: [] for k in EXCLUSION_REASONS}
    ids, best, t_out, e_out = [], [], [], []
    L_m = 0.0 if landmark_days is None else landmark_days / DAYS_PER_MONTH
    for i, p in enumerate(map(str, table.patient_ids)):
        if np.isnan(t_m[i]) or np.isnan(ev[i]):
            excl["no_pfs"].append(p)
            continue
        if pd[p][0]:
            excl["best_response_pd"].append(p)
            continue
        if landmark_days is not None and t_m[i] * DAYS_PER_MONTH <= landmark_days:
            excl["progressed_or_died_before" if ev[i] else "censored_before"].append(p)
            continue
        v = visits.patients.get(p)
        if v is None:
            excl["no_visits"].append(p)
            continue
        if not v.has_baseline:
            excl["no_baseline"].append(p)
            continue
        b = v.best_percent_change(landmark_days)
        if math.isnan(b):
            excl["no_post_baseline_measurement"].append(p)
            continue
        ids.append(p)
        best.append(b)
        t_out.append(t_m[i] - L_m)
        e_out.append(ev[i])
    return ids, np.array(best, float), np.array(t_out, float), np.array(e_out, float), excl


def landmark_analysis(table: CohortTable, visits: VisitTable,
                      landmarks_days: tuple[float | None, ...] = PAVEL_LANDMARKS_DAYS,
                      endpoint: str = "PFS") -> list[LandmarkResult]:
    """The landmark analysis of Pavel et al. §2.3.1 at every landmark (see module doc)."""
    out = []
    for L in landmarks_days:
        if L is not None and L <= 0:
            raise AnalysisError(f"landmark times must be > 0 days (got {L:g})")
        ids, best, t, e, excl = landmark_eligibility(table, visits, L, endpoint)
        notes = []
        present = ({str(q) for q in table.patient_ids[table.is_present("response")]}
                   if "response" in table.columns else set())
        pd_derived = [q for q in excl["best_response_pd"] if q not in present]
        if pd_derived:
            notes.append(f"best response PD taken from the scans (no response in the cohort table) for "
                         f"{len(pd_derived)} patient(s)")
        if L is None:
            notes.append("no limit: best shrinkage over the whole follow-up and PFS from the start of therapy, as "
                         "in Pavel et al.; this time point has look-ahead (immortal-time) bias - patients free of "
                         "progression longer have more scans to reach their best shrinkage")
        hr = p = coef = se = math.nan
        ci = (math.nan, math.nan)
        if len(ids) < MIN_PATIENTS or e.sum() < 2 or np.ptp(best) == 0:
            notes.append(f"Cox model not fitted: {len(ids)} eligible patient(s), {int(e.sum())} event(s) "
                         f"(needs >= {MIN_PATIENTS} patients, >= 2 events and different shrinkages)")
        else:
            hr, ci, p, cox_notes = _cox(t, e, best)
            notes += cox_notes
            coef = math.log(hr) if hr > 0 else math.nan
            se = (math.log(ci[1]) - math.log(ci[0])) / (2 * 1.959963984540054) if ci[0] > 0 else math.nan
        med = _finite(np.median(best)) if best.size else None
        rng = (_finite(best.min()), _finite(best.max())) if best.size else (None, None)
        out.append(LandmarkResult(endpoint, L, len(ids), int(e.sum()), excl, hr, ci, p, coef, se, med, rng, ids,
                                  best, t, e, notes))
    return out


@dataclass
class ShrinkageGroups:
    """The intention-to-treat grouping of Pavel et al. §2.3.2 (see :func:`dichotomised_shrinkage_groups`)."""

    group: np.ndarray
    best_pchg: np.ndarray
    n_at_least: int
    n_less: int
    n_itt_no_post_baseline: list[str]
    not_in_population: dict[str, list[str]]
    source: str
    cutoff_percent: float

    def to_dict(self) -> dict:
        c = self.cutoff_percent
        return {"rule": f">= {-c:g} % shrinkage (best PCHG <= {c:g} %) vs < {-c:g} %, intention to treat",
                "source": self.source, f"n_shrinkage_at_least_{-c:g}_percent": self.n_at_least,
                f"n_shrinkage_less_than_{-c:g}_percent": self.n_less,
                "itt_no_post_baseline_in_less_group": list(self.n_itt_no_post_baseline),
                "not_in_itt_population": {k: list(v) for k, v in self.not_in_population.items() if v}}


def dichotomised_shrinkage_groups(table: CohortTable, visits: VisitTable | None = None,
                                  cutoff_percent: float = PAVEL_SHRINKAGE_CUTOFF_PERCENT) -> ShrinkageGroups:
    """Group 1 = best PCHG <= ``cutoff_percent`` (>= 30 % shrinkage), 0 = otherwise, NaN = not
    in the intention-to-treat population (no baseline measurement), per cohort patient.

    With a visit table the best PCHG is taken over the whole follow-up on or before first
    progression, and a patient with a baseline but no post-baseline measurement is put in the
    "< 30 %" group (ITT).  Without one, the cohort column ``best_shrinkage_percent`` is used;
    a patient without it is in the "< 30 %" group only if the cohort gives a
    ``baseline_sum_of_diameters_mm`` (a baseline exists), else left out and named."""
    ids = [str(p) for p in table.patient_ids]
    n = len(ids)
    best = np.full(n, np.nan)
    group = np.full(n, np.nan)
    itt_none: list[str] = []
    out_pop: dict[str, list[str]] = {"no_baseline": [], "no_visits": [], "unknown_baseline": []}
    if visits is not None:
        source = f"visit table {visits.source}"
        for i, p in enumerate(ids):
            v = visits.patients.get(p)
            if v is None:
                out_pop["no_visits"].append(p)
            elif not v.has_baseline:
                out_pop["no_baseline"].append(p)
            else:
                best[i] = v.best_percent_change(None)
                group[i] = float(best[i] <= cutoff_percent) if not np.isnan(best[i]) else 0.0
                if np.isnan(best[i]):
                    itt_none.append(p)
    else:
        source = "cohort column best_shrinkage_percent"
        col = table.column("best_shrinkage_percent") if "best_shrinkage_percent" in table.columns else np.full(n, np.nan)
        base = (table.column("baseline_sum_of_diameters_mm") if "baseline_sum_of_diameters_mm" in table.columns
                else np.full(n, np.nan))
        for i, p in enumerate(ids):
            best[i] = col[i]
            if not np.isnan(col[i]):
                group[i] = float(col[i] <= cutoff_percent)
            elif not np.isnan(base[i]):
                group[i] = 0.0
                itt_none.append(p)
            else:
                out_pop["unknown_baseline"].append(p)
    g = group[~np.isnan(group)]
    return ShrinkageGroups(group, best, int(np.sum(g == 1)), int(np.sum(g == 0)), itt_none, out_pop, source,
                           cutoff_percent)
