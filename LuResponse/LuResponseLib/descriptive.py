"""Descriptive statistics of seed 000 (scipy.stats only).

* :func:`per_cycle_summary` — Table 2 / Fig. 1: per cycle the median ± SE over patients of the
  patient-mean AD/AA and washout (effective) half-life, for tumours and kidneys; % change of
  AD/AA vs cycle 1 with the Wilcoxon signed-rank test (paired: cycle c vs cycle 1); change
  between successive cycles (Supplemental Fig. 1) with the Friedman test.
* :func:`spearman` — Spearman rank correlation (cAD vs ΔAD/AA).
* :func:`rank_sum` — Wilcoxon rank-sum (Mann–Whitney U, two-sided) test of two samples.
* :func:`compare_responders` — responders (CR/PR) vs non-responders, and between PR, SD, PD.
* :func:`compare_subgroups` — by sex, primary site, grade: medians per level, rank-sum (two
  levels) or Kruskal–Wallis (more), pairwise rank-sums, and the one-sample Wilcoxon test of
  ΔAD/AA against 0 within each level (seed 000 Fig. 2).

SE of a median: bootstrap standard deviation of the median over patient resamples (seeded).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, asdict

import numpy as np
from scipy import stats

from .cohort import CohortTable, CycleTable
from .readers import CAD, DELTA

UNKNOWN_LEVELS = {"unknown", "unk", "nk", "not known"}


@dataclass
class TestResult:
    """One hypothesis test: statistic, two-sided p-value, the patients used and the method."""

    method: str
    statistic: float
    p_value: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def _nan_test(method: str, n: int) -> TestResult:
    return TestResult(method, float("nan"), float("nan"), n)


def median_se(values, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(median, bootstrap SE of the median) of the non-NaN values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1 or n_bootstrap < 2:
        return float(np.median(v)), float("nan")
    rng = np.random.default_rng(seed)
    boot = np.median(v[rng.integers(0, v.size, (n_bootstrap, v.size))], axis=1)
    return float(np.median(v)), float(np.std(boot, ddof=1))


def spearman(x, y) -> TestResult:
    """Spearman rank correlation of paired values (pairs with a NaN are left out)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3:
        return _nan_test("Spearman rank correlation", int(ok.sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = stats.spearmanr(x[ok], y[ok])
    return TestResult("Spearman rank correlation", float(r.statistic), float(r.pvalue), int(ok.sum()))


def rank_sum(a, b) -> TestResult:
    """Wilcoxon rank-sum test (Mann–Whitney U, two-sided; exact for small samples without
    ties).  ``statistic`` is U of sample ``a``."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return _nan_test("Wilcoxon rank-sum (Mann-Whitney U)", int(a.size + b.size))
    r = stats.mannwhitneyu(a, b, alternative="two-sided")
    return TestResult("Wilcoxon rank-sum (Mann-Whitney U)", float(r.statistic), float(r.pvalue), int(a.size + b.size))


def signed_rank(x, y=None) -> TestResult:
    """Wilcoxon signed-rank test of paired samples (or of ``x`` against 0)."""
    x = np.asarray(x, dtype=float)
    d = x if y is None else x - np.asarray(y, dtype=float)
    d = d[~np.isnan(d)]
    if d.size < 2 or np.all(d == 0):
        return _nan_test("Wilcoxon signed-rank", int(d.size))
    r = stats.wilcoxon(d)
    return TestResult("Wilcoxon signed-rank", float(r.statistic), float(r.pvalue), int(d.size))


def _summary(v) -> dict:
    v = np.asarray(v, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"n": 0, "median": None, "q1": None, "q3": None, "min": None, "max": None, "mean": None}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "median": float(med), "q1": float(q1), "q3": float(q3),
            "min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())}


# --------------------------------------------------------------------------------------------
# per cycle (Table 2, Fig. 1)
# --------------------------------------------------------------------------------------------

def patient_cycle_means(cycles: CycleTable, kind: str = "tumor", value: str = "ad_per_aa_Gy_per_GBq"):
    """Patient × cycle matrix of the mean over the patient's VOIs of ``kind`` (NaN where absent).

    Returns (patient_ids, cycle_numbers, matrix)."""
    pid = cycles.column("patient_id")
    cyc = cycles.column("cycle")
    kinds = cycles.column("kind")
    val = cycles.column(value)
    kind_sel = np.array([k in ({"tumor", "tumour"} if kind in ("tumor", "tumour") else {kind}) for k in kinds])
    patients = list(dict.fromkeys(pid[kind_sel]))
    cyc_numbers = sorted({int(c) for c in cyc[kind_sel]})
    m = np.full((len(patients), len(cyc_numbers)), np.nan)
    for i, p in enumerate(patients):
        for j, c in enumerate(cyc_numbers):
            v = val[kind_sel & (pid == p) & (cyc == c)]
            v = v[~np.isnan(v)]
            if v.size:
                m[i, j] = v.mean()
    return patients, cyc_numbers, m


def per_cycle_summary(cycles: CycleTable, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Table 2 and Fig. 1 statistics from per-cycle VOI doses (see module doc).

    Returns a dict with ``cycles`` (cycle numbers) and, per kind (``tumor``, ``kidney``)
    present: ``ad_per_aa_Gy_per_GBq`` and ``washout_half_life_h`` as lists of
    {cycle, n, median, se}; ``percent_change_vs_cycle1`` as lists of {cycle, n, median, q1, q3,
    wilcoxon_p}; ``successive_change_percent`` with the Friedman test."""
    out: dict = {"method": "median over patients of the patient-mean value; SE = bootstrap SD of the median "
                           f"({n_bootstrap} resamples); paired tests: Wilcoxon signed-rank vs cycle 1"}
    kinds = {str(k) for k in cycles.column("kind") if k is not None}
    for kind in ("tumor", "kidney"):
        if kind not in kinds and not (kind == "tumor" and "tumour" in kinds):
            continue
        entry: dict = {}
        patients, cyc, m = patient_cycle_means(cycles, kind)
        entry["n_patients"] = len(patients)
        entry["cycles"] = cyc
        entry["ad_per_aa_Gy_per_GBq"] = []
        for j, c in enumerate(cyc):
            med, se = median_se(m[:, j], n_bootstrap, seed + j)
            entry["ad_per_aa_Gy_per_GBq"].append({"cycle": c, "n": int(np.sum(~np.isnan(m[:, j]))),
                                                  "median": med, "se": se})
        if "effective_half_life_h" in cycles.columns and cycles.has("effective_half_life_h"):
            _, cyc_h, h = patient_cycle_means(cycles, kind, "effective_half_life_h")
            entry["washout_half_life_h"] = []
            for j, c in enumerate(cyc_h):
                med, se = median_se(h[:, j], n_bootstrap, seed + 100 + j)
                test = signed_rank(h[:, j], h[:, 0]) if j > 0 else None
                entry["washout_half_life_h"].append({"cycle": c, "n": int(np.sum(~np.isnan(h[:, j]))),
                                                     "median": med, "se": se,
                                                     "wilcoxon_p_vs_cycle1": None if test is None else test.p_value})
        changes = []
        for j, c in enumerate(cyc):
            if j == 0:
                continue
            pct = 100.0 * (m[:, j] / m[:, 0] - 1.0)
            s = _summary(pct)
            test = signed_rank(m[:, j], m[:, 0])
            changes.append({"cycle": c, "n": s["n"], "median": s["median"], "q1": s["q1"], "q3": s["q3"],
                            "wilcoxon_p": test.p_value})
        entry["percent_change_vs_cycle1"] = changes
        succ = []
        succ_matrix = []
        for j in range(1, len(cyc)):
            pct = 100.0 * (m[:, j] / m[:, j - 1] - 1.0)
            succ_matrix.append(pct)
            s = _summary(pct)
            succ.append({"from_cycle": cyc[j - 1], "to_cycle": cyc[j], "n": s["n"], "median": s["median"],
                         "q1": s["q1"], "q3": s["q3"]})
        friedman = None
        if len(succ_matrix) >= 3:
            sm = np.column_stack(succ_matrix)
            sm = sm[~np.any(np.isnan(sm), axis=1)]
            if sm.shape[0] >= 3:
                with warnings.catch_warnings():  # all-tied rows give a NaN statistic, reported as such
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = stats.friedmanchisquare(*sm.T)
                friedman = TestResult("Friedman (successive changes differ?)", float(r.statistic), float(r.pvalue),
                                      int(sm.shape[0])).to_dict()
        entry["successive_change_percent"] = {"steps": succ, "friedman": friedman}
        entry["patient_matrix"] = {"patient_ids": [str(p) for p in patients],
                                   "ad_per_aa_Gy_per_GBq": [[None if np.isnan(v) else float(v) for v in row] for row in m]}
        out[kind] = entry
    return out


# --------------------------------------------------------------------------------------------
# responders and subgroups
# --------------------------------------------------------------------------------------------

METRICS_FOR_COMPARISON = (CAD, DELTA, "kidney_cumulative_dose_Gy", "cumulative_aa_GBq", "mean_lesion_ad_Gy",
                          "min_lesion_ad_Gy")


def compare_responders(table: CohortTable, metrics=METRICS_FOR_COMPARISON) -> dict:
    """Per metric present: summary by class, rank-sum responders (CR/PR) vs non-responders, and
    pairwise rank-sums between the response categories present (Fig. 3)."""
    out = {}
    resp = table.response
    responder = table.responder
    has_resp = table.is_present("response")
    for name in metrics:
        if not table.has(name):
            continue
        v = table.column(name)
        ok = has_resp & ~np.isnan(v)
        entry = {"responders": _summary(v[ok & responder]), "non_responders": _summary(v[ok & ~responder]),
                 "rank_sum": rank_sum(v[ok & responder], v[ok & ~responder]).to_dict(),
                 "by_response": {}, "pairwise": {},
                 "excluded_patient_ids": [str(p) for p in table.patient_ids[~ok]]}
        cats = [c for c in ("CR", "PR", "SD", "PD") if np.any(ok & (resp == c))]
        for c in cats:
            entry["by_response"][c] = _summary(v[ok & (resp == c)])
        for a, b in itertools.combinations(cats, 2):
            entry["pairwise"][f"{a} vs {b}"] = rank_sum(v[ok & (resp == a)], v[ok & (resp == b)]).to_dict()
        out[name] = entry
    return out


def _levels(values) -> list[str]:
    return sorted({str(v) for v in values if v is not None and str(v).strip().lower() not in UNKNOWN_LEVELS})


def compare_subgroups(table: CohortTable, columns=("sex", "primary_site", "grade"),
                      metrics=(CAD, DELTA), min_level_size: int = 2) -> dict:
    """cAD and ΔAD/AA by sex, primary site and grade (Fig. 2).  Levels named 'unknown' or missing
    are counted but not tested; levels with fewer than ``min_level_size`` patients are listed but
    left out of the tests."""
    out = {}
    for col in columns:
        if not table.has(col):
            continue
        cat = table.column(col)
        levels_all = _levels(cat)
        res = {"levels": {}, "n_unknown": int(sum(1 for v in cat if v is None or str(v).strip().lower() in UNKNOWN_LEVELS))}
        for lev in levels_all:
            res["levels"][lev] = {"n": int(sum(1 for v in cat if v is not None and str(v) == lev))}
        tested = [lev for lev in levels_all if res["levels"][lev]["n"] >= min_level_size]
        res["tested_levels"] = tested
        for name in metrics:
            if not table.has(name):
                continue
            v = table.column(name)
            groups = {lev: v[np.array([c is not None and str(c) == lev for c in cat])] for lev in tested}
            groups = {k: g[~np.isnan(g)] for k, g in groups.items()}
            m = {"by_level": {lev: _summary(g) for lev, g in groups.items()}, "pairwise": {}}
            if len(groups) == 2:
                a, b = list(groups)
                m["test"] = rank_sum(groups[a], groups[b]).to_dict()
            elif len(groups) > 2:
                gs = [g for g in groups.values() if g.size]
                try:
                    r = stats.kruskal(*gs)
                    m["test"] = TestResult("Kruskal-Wallis", float(r.statistic), float(r.pvalue),
                                           int(sum(g.size for g in gs))).to_dict()
                except ValueError:
                    m["test"] = _nan_test("Kruskal-Wallis", int(sum(g.size for g in gs))).to_dict()
                for a, b in itertools.combinations(groups, 2):
                    m["pairwise"][f"{a} vs {b}"] = rank_sum(groups[a], groups[b]).to_dict()
            else:
                m["test"] = None
            if name == DELTA:
                m["differs_from_zero"] = {lev: signed_rank(g).to_dict() for lev, g in groups.items()}
            res[name] = m
        out[col] = res
    return out


def describe_cohort(table: CohortTable) -> dict:
    """Cohort overview: n, response counts, summaries of the numeric columns, Spearman cAD vs
    ΔAD/AA, responder comparison and subgroup comparison."""
    numeric = {k: _summary(v) for k, v in table.columns.items() if v.dtype != object and not k.endswith("_event")}
    categorical = {}
    for k, v in table.columns.items():
        if v.dtype == object and k not in ("patient_id",):
            levels = {}
            for x in v:
                key = "missing" if x is None else str(x)
                levels[key] = levels.get(key, 0) + 1
            categorical[k] = levels
    ok = table.complete(CAD, DELTA)
    return {
        "n_patients": table.n_patients,
        "response_counts": table.response_counts(),
        "n_responders": int(np.sum(table.responder)),
        "numeric": numeric,
        "categorical": categorical,
        "spearman_cAD_vs_delta": spearman(table.cumulative_tumor_dose_Gy[ok], table.delta_ad_per_aa_percent[ok]).to_dict(),
        "responders_vs_nonresponders": compare_responders(table),
        "subgroups": compare_subgroups(table),
        "missing_values": table.missing_summary(),
    }


def finite_or_none(x):
    """JSON helper: float or None for NaN/inf."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
