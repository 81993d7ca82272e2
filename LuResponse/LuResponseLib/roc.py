"""ROC curves, AUC and bootstrap confidence intervals (numpy only).

:func:`roc_auc` is the Mann–Whitney form of the area under the ROC curve (ties count one half);
it equals ``sklearn.metrics.roc_auc_score`` exactly.  :func:`bootstrap_auc_ci` resamples
patients *within each class* (stratified bootstrap, as pROC does by default) so every resample
has both classes, and evaluates the resamples in vectorised chunks from the ranks of the scores
(O(n) per resample after one sort, memory O(chunk × n); no responder × non-responder matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AnalysisError


def _binary(y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == bool:
        return y
    u = np.unique(y)
    if not set(u.tolist()) <= {0, 1}:
        raise AnalysisError(f"labels must be 0/1 or boolean, got values {u.tolist()}")
    return y.astype(bool)


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve of ``score`` for binary ``y_true`` (1 = responder).

    Uses mid-ranks, so ties between a responder and a non-responder count 1/2.  Raises
    :class:`AnalysisError` if only one class is present."""
    y = _binary(y_true)
    s = np.asarray(score, dtype=float)
    if s.shape != y.shape:
        raise AnalysisError(f"labels ({y.shape}) and scores ({s.shape}) differ in length")
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise AnalysisError("the AUC needs both responders and non-responders")
    from scipy import stats  # imported here: loading a saved model must not pay for scipy.stats

    r = stats.rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


@dataclass
class RocCurve:
    """ROC curve points (false-positive rate, true-positive rate at each threshold; a patient is
    called positive when score >= threshold) and the AUC."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float

    def to_dict(self) -> dict:
        return {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist(),
                "thresholds": [None if not np.isfinite(t) else float(t) for t in self.thresholds],
                "auc": self.auc}


def roc_curve(y_true, score) -> RocCurve:
    """ROC curve of ``score`` (higher = more likely responder), from (0, 0) to (1, 1)."""
    y = _binary(y_true)
    s = np.asarray(score, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[distinct]
    fps = (distinct + 1) - tps
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise AnalysisError("the ROC curve needs both responders and non-responders")
    tpr = np.r_[0.0, tps / n1]
    fpr = np.r_[0.0, fps / n0]
    thr = np.r_[np.inf, s_sorted[distinct]]
    return RocCurve(fpr, tpr, thr, roc_auc(y, s))


def bootstrap_auc_ci(y_true, score, n_bootstrap: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> tuple[float, float, np.ndarray]:
    """Percentile confidence interval of the AUC from a stratified patient bootstrap.

    Responders and non-responders are resampled with replacement separately (sizes kept), the
    scores are *not* refitted (for cross-validated models pass the out-of-fold probabilities).
    Returns (lower, upper, the bootstrap AUCs)."""
    y = _binary(y_true)
    s = np.asarray(score, dtype=float)
    pos, neg = s[y], s[~y]
    n1, n0 = pos.size, neg.size
    if n1 == 0 or n0 == 0:
        raise AnalysisError("the AUC needs both responders and non-responders")
    if n_bootstrap < 1:
        raise AnalysisError("n_bootstrap must be >= 1")
    # AUC of a resample from ranks, O(n) per resample: code every score by its place among the
    # distinct values; C(v) = (number of resampled non-responders below v) + 1/2 (those equal to
    # v); the Mann-Whitney AUC is the sum of C over the resampled responders / (n1 n0).
    values, codes = np.unique(np.r_[pos, neg], return_inverse=True)
    c1, c0 = codes[:n1], codes[n1:]
    u = values.size
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_bootstrap)
    chunk = max(1, min(2000, 4_000_000 // max(n1, n0, u)))
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        i1 = np.stack([rng.integers(0, n1, n1) for _ in range(b)])  # draw order as before: responders first
        i0 = np.stack([rng.integers(0, n0, n0) for _ in range(b)])
        rows = np.arange(b)[:, None] * u
        cnt0 = np.bincount((c0[i0] + rows).ravel(), minlength=b * u).reshape(b, u).astype(float)
        below = np.cumsum(cnt0, axis=1) - cnt0
        aucs[start:start + b] = np.take_along_axis(below + 0.5 * cnt0, c1[i1], axis=1).sum(axis=1) / (n1 * n0)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(aucs, [alpha, 1.0 - alpha])
    return float(lo), float(hi), aucs
