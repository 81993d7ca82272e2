"""Cut-off rules (seed 000 Fig. 5): "cAD >= 100 Gy and ΔAD/AA <= -50 % predicts PR".

A rule calls a patient *positive* (predicted responder) when cAD >= ``cad_cutoff_Gy`` and
ΔAD/AA <= ``delta_cutoff_percent``.  Reported: the four quadrants (patients and responders in
each), the 2 × 2 table against the observed response, sensitivity, specificity, PPV and NPV
with exact Clopper–Pearson intervals.  Single-metric rules are the same with the other cut-off
switched off (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .errors import AnalysisError

SEED000_CAD_CUTOFF_GY = 100.0
SEED000_DELTA_CUTOFF_PERCENT = -50.0


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) binomial interval of k successes in n trials ((nan, nan) if n=0)."""
    if n == 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise AnalysisError(f"k = {k} must be within 0..n = {n}")
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


@dataclass
class Proportion:
    """k of n, the estimate and its exact interval."""

    k: int
    n: int
    estimate: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict:
        return {"k": self.k, "n": self.n, "estimate": None if self.n == 0 else self.estimate,
                "ci95": [None if np.isnan(v) else v for v in self.ci95]}


def _prop(k: int, n: int, confidence: float) -> Proportion:
    return Proportion(int(k), int(n), float(k / n) if n else float("nan"), clopper_pearson(int(k), int(n), confidence))


@dataclass
class RuleResult:
    """Performance of a cut-off rule (see module doc)."""

    name: str
    cad_cutoff_Gy: float | None
    delta_cutoff_percent: float | None
    quadrants: dict[str, dict[str, int]]
    true_positive: int
    false_positive: int
    true_negative: int
    false_negative: int
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion
    npv: Proportion
    confidence: float = 0.95

    def to_dict(self) -> dict:
        return {"name": self.name, "cad_cutoff_Gy": self.cad_cutoff_Gy,
                "delta_cutoff_percent": self.delta_cutoff_percent, "quadrants": self.quadrants,
                "true_positive": self.true_positive, "false_positive": self.false_positive,
                "true_negative": self.true_negative, "false_negative": self.false_negative,
                "sensitivity": self.sensitivity.to_dict(), "specificity": self.specificity.to_dict(),
                "ppv": self.ppv.to_dict(), "npv": self.npv.to_dict(),
                "ci_method": "exact Clopper-Pearson", "confidence": self.confidence}


def evaluate_cutoff_rule(cAD_Gy, delta_ad_per_aa_percent, responder,
                         cad_cutoff_Gy: float | None = SEED000_CAD_CUTOFF_GY,
                         delta_cutoff_percent: float | None = SEED000_DELTA_CUTOFF_PERCENT,
                         confidence: float = 0.95, name: str | None = None) -> RuleResult:
    """Evaluate the rule cAD >= ``cad_cutoff_Gy`` AND ΔAD/AA <= ``delta_cutoff_percent``.

    Either cut-off may be None (that condition is then always true).  Inputs must be complete
    cases (no NaN)."""
    cad = np.asarray(cAD_Gy, dtype=float)
    d = np.asarray(delta_ad_per_aa_percent, dtype=float)
    y = np.asarray(responder, dtype=bool)
    if not (cad.shape == d.shape == y.shape):
        raise AnalysisError("cAD, ΔAD/AA and responder must have the same length")
    if np.any(np.isnan(cad)) or np.any(np.isnan(d)):
        raise AnalysisError("cAD or ΔAD/AA contain NaN: pass complete cases only")
    if cad_cutoff_Gy is None and delta_cutoff_percent is None:
        raise AnalysisError("give at least one cut-off")
    high = cad >= cad_cutoff_Gy if cad_cutoff_Gy is not None else np.ones_like(y)
    drop = d <= delta_cutoff_percent if delta_cutoff_percent is not None else np.ones_like(y)
    pos = high & drop
    quadrants = {}
    if cad_cutoff_Gy is not None and delta_cutoff_percent is not None:
        for qname, m in (("high_cAD_large_decrease", high & drop), ("high_cAD_small_decrease", high & ~drop),
                         ("low_cAD_large_decrease", ~high & drop), ("low_cAD_small_decrease", ~high & ~drop)):
            quadrants[qname] = {"n": int(m.sum()), "n_responders": int((m & y).sum())}
    tp, fp = int((pos & y).sum()), int((pos & ~y).sum())
    fn, tn = int((~pos & y).sum()), int((~pos & ~y).sum())
    if name is None:
        parts = []
        if cad_cutoff_Gy is not None:
            parts.append(f"cAD >= {cad_cutoff_Gy:g} Gy")
        if delta_cutoff_percent is not None:
            parts.append(f"dAD/AA <= {delta_cutoff_percent:g} %")
        name = " and ".join(parts)
    return RuleResult(name, cad_cutoff_Gy, delta_cutoff_percent, quadrants, tp, fp, tn, fn,
                      _prop(tp, tp + fn, confidence), _prop(tn, tn + fp, confidence),
                      _prop(tp, tp + fp, confidence), _prop(tn, tn + fn, confidence), confidence)
