"""Lesion-level analyses (numpy/scipy only).

* :func:`regress_volume_change` — seed 001 Fig. 3: lesion volume change ΔV % against total
  lesion AD (Gy), ordinary least squares line with the 95 % confidence band of the mean and the
  95 % prediction band (t distribution), Pearson and Spearman correlation.
* :func:`tumor_control_probability` — seed 001 Fig. 4: a lesion is *controlled* when
  ΔV <= 0 %; TCP(AD) = 1 / (1 + exp(-(b0 + b1 AD))) by maximum-likelihood logistic regression
  (Newton/IRLS), Wald 95 % CIs of b0, b1, the band of the curve (Wald on the linear predictor,
  then transformed) and D50 = -b0/b1, the AD with TCP 50 %.
* :func:`categorize_lesions` — seed 003: per lesion, from total uptake at baseline and
  follow-up, Δ = 100 (follow-up / baseline − 1): *new* (no uptake at baseline, present at
  follow-up), *disappearing* (present at baseline, none at follow-up), *decreasing*
  (Δ < −30 %), *stable* (−30 % <= Δ <= 30 %), *increasing* (Δ > 30 %).  A patient shows
  *response heterogeneity* when new or increasing lesions and decreasing or disappearing lesions
  are both present after therapy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .errors import AnalysisError
from .roc import roc_auc

LESION_CATEGORIES = ("disappearing", "decreasing", "stable", "increasing", "new")
SEED003_THRESHOLD_PERCENT = 30.0
SEED001_CONTROL_DELTA_V_PERCENT = 0.0


def _f(x):
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class LinearFit:
    """ΔV % = intercept + slope · AD, with confidence and prediction bands on ``grid_Gy``."""

    slope_percent_per_Gy: float
    slope_ci95: tuple[float, float]
    intercept_percent: float
    intercept_ci95: tuple[float, float]
    slope_p: float
    pearson_r: float
    spearman_rho: float
    spearman_p: float
    residual_sd_percent: float
    n: int
    grid_Gy: np.ndarray
    fit_percent: np.ndarray
    mean_band_percent: tuple[np.ndarray, np.ndarray]
    prediction_band_percent: tuple[np.ndarray, np.ndarray]
    confidence: float = 0.95

    def predict(self, lesion_ad_Gy) -> np.ndarray:
        return self.intercept_percent + self.slope_percent_per_Gy * np.asarray(lesion_ad_Gy, dtype=float)

    def to_dict(self) -> dict:
        return {"slope_percent_per_Gy": self.slope_percent_per_Gy, "slope_ci95": list(self.slope_ci95),
                "intercept_percent": self.intercept_percent, "intercept_ci95": list(self.intercept_ci95),
                "slope_p": self.slope_p, "pearson_r": self.pearson_r, "spearman_rho": self.spearman_rho,
                "spearman_p": self.spearman_p, "residual_sd_percent": self.residual_sd_percent, "n": self.n,
                "method": "ordinary least squares; t-based confidence band of the mean and prediction band",
                "grid_Gy": self.grid_Gy.tolist(), "fit_percent": self.fit_percent.tolist(),
                "mean_band_percent": [b.tolist() for b in self.mean_band_percent],
                "prediction_band_percent": [b.tolist() for b in self.prediction_band_percent]}


def regress_volume_change(lesion_ad_Gy, delta_volume_percent, confidence: float = 0.95,
                          n_grid: int = 101) -> LinearFit:
    """OLS of lesion ΔV % on total lesion AD (pairs with NaN left out; needs >= 3 lesions)."""
    x = np.asarray(lesion_ad_Gy, dtype=float)
    y = np.asarray(delta_volume_percent, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = x.size
    if n < 3 or np.ptp(x) == 0:
        raise AnalysisError(f"the volume-change regression needs >= 3 lesions with different doses (got {n})")
    xm = x.mean()
    sxx = np.sum((x - xm) ** 2)
    slope = np.sum((x - xm) * (y - y.mean())) / sxx
    icpt = y.mean() - slope * xm
    res = y - (icpt + slope * x)
    s2 = np.sum(res ** 2) / (n - 2)
    se_slope = math.sqrt(s2 / sxx)
    se_icpt = math.sqrt(s2 * (1 / n + xm ** 2 / sxx))
    tq = stats.t.ppf(0.5 + confidence / 2, n - 2)
    p = 2 * stats.t.sf(abs(slope / se_slope), n - 2) if se_slope > 0 else 0.0
    grid = np.linspace(x.min(), x.max(), n_grid)
    fit = icpt + slope * grid
    se_mean = np.sqrt(s2 * (1 / n + (grid - xm) ** 2 / sxx))
    se_pred = np.sqrt(s2 * (1 + 1 / n + (grid - xm) ** 2 / sxx))
    rho = stats.spearmanr(x, y)
    return LinearFit(float(slope), (float(slope - tq * se_slope), float(slope + tq * se_slope)), float(icpt),
                     (float(icpt - tq * se_icpt), float(icpt + tq * se_icpt)), float(p),
                     float(np.corrcoef(x, y)[0, 1]), float(rho.statistic), float(rho.pvalue), float(math.sqrt(s2)), n,
                     grid, fit, (fit - tq * se_mean, fit + tq * se_mean), (fit - tq * se_pred, fit + tq * se_pred),
                     confidence)


def logistic_mle(x, y, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, bool, list[str]]:
    """Unpenalised 1-D logistic regression by Newton–Raphson (IRLS).

    Returns (beta = [b0, b1], covariance, converged, notes).  Complete or quasi-complete
    separation is detected and reported (coefficients then diverge; covariance is NaN)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    X = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    beta[0] = math.log((y.mean() + 1e-9) / (1 - y.mean() + 1e-9))
    notes: list[str] = []
    converged = False
    for _ in range(max_iter):
        eta = X @ beta
        p = np.exp(-np.logaddexp(0, -eta))
        w = p * (1 - p)
        h = X.T @ (X * w[:, None])
        g = X.T @ (y - p)
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            notes.append("singular information matrix (separation?)")
            break
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10 * (1 + np.max(np.abs(beta))):
            converged = True
            break
        if np.max(np.abs(beta[1] * (x - x.mean()))) > 50:
            notes.append("the doses separate controlled from uncontrolled lesions: coefficients diverge")
            break
    eta = X @ beta
    p = np.exp(-np.logaddexp(0, -eta))
    w = p * (1 - p)
    try:
        cov = np.linalg.inv(X.T @ (X * w[:, None])) if converged else np.full((2, 2), np.nan)
    except np.linalg.LinAlgError:  # pragma: no cover
        cov = np.full((2, 2), np.nan)
    return beta, cov, converged, notes


@dataclass
class TCPFit:
    """Tumour control probability curve TCP(AD) = expit(b0 + b1·AD)."""

    beta0: float
    beta1_per_Gy: float
    beta0_ci95: tuple[float, float]
    beta1_ci95: tuple[float, float]
    beta1_p: float
    D50_Gy: float | None
    n: int
    n_controlled: int
    auc: float
    control_definition: str
    grid_Gy: np.ndarray
    tcp: np.ndarray
    band: tuple[np.ndarray, np.ndarray]
    converged: bool
    notes: list[str] = field(default_factory=list)

    def predict(self, lesion_ad_Gy) -> np.ndarray:
        return np.exp(-np.logaddexp(0, -(self.beta0 + self.beta1_per_Gy * np.asarray(lesion_ad_Gy, dtype=float))))

    def to_dict(self) -> dict:
        return {"beta0": _f(self.beta0), "beta1_per_Gy": _f(self.beta1_per_Gy),
                "beta0_ci95": [_f(v) for v in self.beta0_ci95], "beta1_ci95": [_f(v) for v in self.beta1_ci95],
                "beta1_p": _f(self.beta1_p), "D50_Gy": self.D50_Gy, "n": self.n, "n_controlled": self.n_controlled,
                "auc": _f(self.auc), "control_definition": self.control_definition, "converged": self.converged,
                "method": "maximum-likelihood logistic regression (IRLS); Wald CIs; band = Wald on the linear predictor",
                "grid_Gy": self.grid_Gy.tolist(), "tcp": self.tcp.tolist(), "band": [b.tolist() for b in self.band],
                "notes": list(self.notes)}


def tumor_control_probability(lesion_ad_Gy, delta_volume_percent,
                              control_threshold_percent: float = SEED001_CONTROL_DELTA_V_PERCENT,
                              confidence: float = 0.95, n_grid: int = 101) -> TCPFit:
    """TCP by logistic regression of control (ΔV <= ``control_threshold_percent``) on lesion AD."""
    x = np.asarray(lesion_ad_Gy, dtype=float)
    dv = np.asarray(delta_volume_percent, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(dv))
    x, dv = x[ok], dv[ok]
    y = (dv <= control_threshold_percent).astype(float)
    if x.size < 3 or y.sum() == 0 or y.sum() == y.size:
        raise AnalysisError("the TCP fit needs >= 3 lesions, some controlled and some not")
    beta, cov, converged, notes = logistic_mle(x, y)
    z = stats.norm.ppf(0.5 + confidence / 2)
    se = np.sqrt(np.diag(cov))
    grid = np.linspace(0.0, x.max() * 1.1, n_grid)
    eta = beta[0] + beta[1] * grid
    se_eta = np.sqrt(cov[0, 0] + 2 * grid * cov[0, 1] + grid ** 2 * cov[1, 1])
    ex = lambda v: np.exp(-np.logaddexp(0, -v))
    p1 = 2 * stats.norm.sf(abs(beta[1] / se[1])) if converged and se[1] > 0 else float("nan")
    d50 = float(-beta[0] / beta[1]) if converged and beta[1] != 0 else None
    try:
        auc = roc_auc(y.astype(bool), x)
    except AnalysisError:  # pragma: no cover
        auc = float("nan")
    return TCPFit(float(beta[0]), float(beta[1]), (float(beta[0] - z * se[0]), float(beta[0] + z * se[0])),
                  (float(beta[1] - z * se[1]), float(beta[1] + z * se[1])), float(p1), d50, int(x.size),
                  int(y.sum()), auc, f"controlled = volume change <= {control_threshold_percent:g} %", grid, ex(eta),
                  (ex(eta - z * se_eta), ex(eta + z * se_eta)), converged, notes)


def lesion_category(uptake_baseline: float, uptake_followup: float,
                    threshold_percent: float = SEED003_THRESHOLD_PERCENT) -> str:
    """Seed 003 category of one lesion (missing or 0 uptake = absent)."""
    b_absent = uptake_baseline is None or np.isnan(uptake_baseline) or uptake_baseline <= 0
    f_absent = uptake_followup is None or np.isnan(uptake_followup) or uptake_followup <= 0
    if b_absent and f_absent:
        raise AnalysisError("a lesion needs uptake at baseline or at follow-up")
    if b_absent:
        return "new"
    if f_absent:
        return "disappearing"
    change = round(100.0 * (uptake_followup / uptake_baseline - 1.0), 9)  # 13/10 is exactly +30 %: stable
    if change < -threshold_percent:
        return "decreasing"
    if change > threshold_percent:
        return "increasing"
    return "stable"


def categorize_lesions(patient_id, uptake_baseline, uptake_followup,
                       threshold_percent: float = SEED003_THRESHOLD_PERCENT) -> dict:
    """Per-lesion categories and, per patient, the counts and the heterogeneity flag (seed 003).

    Returns {"categories": [...], "patients": {pid: {counts..., "heterogeneous": bool}},
    "n_heterogeneous", "n_patients"}."""
    pid = np.asarray(patient_id, dtype=object)
    b = np.asarray(uptake_baseline, dtype=float)
    f = np.asarray(uptake_followup, dtype=float)
    cats = [lesion_category(bi, fi, threshold_percent) for bi, fi in zip(b, f)]
    patients = {}
    for p in dict.fromkeys(pid):
        sel = [c for c, q in zip(cats, pid) if q == p]
        counts = {c: sel.count(c) for c in LESION_CATEGORIES}
        worse = counts["new"] + counts["increasing"] > 0
        better = counts["decreasing"] + counts["disappearing"] > 0
        patients[str(p)] = {**counts, "n_lesions": len(sel), "heterogeneous": bool(worse and better)}
    return {"categories": cats, "patients": patients,
            "n_heterogeneous": int(sum(v["heterogeneous"] for v in patients.values())), "n_patients": len(patients),
            "threshold_percent": threshold_percent,
            "definition": f"decreasing < -{threshold_percent:g} %, stable within +/-{threshold_percent:g} %, "
                          f"increasing > +{threshold_percent:g} %; heterogeneous = (new or increasing) and "
                          "(decreasing or disappearing)"}


RESPONDING_CATEGORIES = ("decreasing", "disappearing")


def category_dose_relation(category, lesion_ad_Gy, change_percent=None) -> dict:
    """How lesion absorbed dose relates to the lesion response category (lesions with a dose).

    Per category: n and median / quartiles of the total lesion AD (Gy); Kruskal–Wallis test over
    the categories with >= 2 lesions; AUC of the AD for *responding* lesions (decreasing or
    disappearing) vs stable or increasing ones (Mann–Whitney form, with its two-sided
    Mann–Whitney U p); Spearman correlation of AD with the uptake change (%) where both exist.
    New lesions have no dose (they were not in the dosimetry) and are counted only."""
    cat = np.asarray(category, dtype=object)
    ad = np.asarray(lesion_ad_Gy, dtype=float)
    has = ~np.isnan(ad)
    out: dict = {"n_lesions_with_dose": int(has.sum()), "n_lesions_without_dose": int((~has).sum()),
                 "by_category": {}, "kruskal_wallis_p": None, "auc_responding": None, "mann_whitney_p": None,
                 "spearman_rho_change": None, "spearman_p": None, "notes": []}
    groups = []
    for c in LESION_CATEGORIES:
        d = ad[has & (cat == c)]
        if d.size:
            q = np.percentile(d, [25, 50, 75])
            out["by_category"][c] = {"n": int(d.size), "median_Gy": float(q[1]), "q1_Gy": float(q[0]),
                                     "q3_Gy": float(q[2])}
            if d.size >= 2:
                groups.append(d)
    if len(groups) >= 2 and np.ptp(np.concatenate(groups)) > 0:
        out["kruskal_wallis_p"] = _f(stats.kruskal(*groups).pvalue)
    resp = np.isin(cat, RESPONDING_CATEGORIES)
    nonresp = np.isin(cat, ("stable", "increasing"))
    a, b = ad[has & resp], ad[has & nonresp]
    if a.size and b.size:
        y = np.r_[np.ones(a.size, bool), np.zeros(b.size, bool)]
        out["auc_responding"] = roc_auc(y, np.r_[a, b])
        out["mann_whitney_p"] = _f(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        out["n_responding"], out["n_not_responding"] = int(a.size), int(b.size)
    else:
        out["notes"].append("the AUC needs lesions with a dose both responding and stable/increasing")
    if change_percent is not None:
        ch = np.asarray(change_percent, dtype=float)
        ok = has & ~np.isnan(ch)
        if ok.sum() >= 3 and np.ptp(ad[ok]) > 0 and np.ptp(ch[ok]) > 0:
            r = stats.spearmanr(ad[ok], ch[ok])
            out["spearman_rho_change"], out["spearman_p"] = _f(r.statistic), _f(r.pvalue)
            out["n_spearman"] = int(ok.sum())
    return out


def heterogeneity_dose_relation(heterogeneous: dict, dose_by_patient: dict, dose_name: str) -> dict | None:
    """Patient-level: ``dose_name`` (e.g. cAD in Gy) in patients with and without response
    heterogeneity — n, medians, Mann–Whitney U p and the AUC of the dose for *no* heterogeneity.
    None if either group has no patient with a dose."""
    het = [float(dose_by_patient[p]) for p, h in heterogeneous.items() if h and p in dose_by_patient
           and np.isfinite(dose_by_patient[p])]
    hom = [float(dose_by_patient[p]) for p, h in heterogeneous.items() if not h and p in dose_by_patient
           and np.isfinite(dose_by_patient[p])]
    if not het or not hom:
        return None
    y = np.r_[np.zeros(len(het), bool), np.ones(len(hom), bool)]
    return {"dose": dose_name, "n_heterogeneous": len(het), "n_not_heterogeneous": len(hom),
            "median_heterogeneous": float(np.median(het)), "median_not_heterogeneous": float(np.median(hom)),
            "mann_whitney_p": _f(stats.mannwhitneyu(het, hom, alternative="two-sided").pvalue),
            "auc_not_heterogeneous": roc_auc(y, np.r_[het, hom])}
