"""Voxel-wise time-activity fits: vectorised bi-exponential Gauss-Newton with fallbacks, TIA maps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...errors import InputDataError
from ._inputs import (
    _BOUND_RTOL,
    _LN2,
    _MAX_UPTAKE_EXCESS_PER_H,
    DEFAULT_RELATIVE_UNCERTAINTY,
    _as_times,
    _positive_scalar,
    _relative_sigma,
)
from .models import _biexp3_exact, _knots, _trapz_weights


@dataclass(frozen=True)
class VoxelwiseFit:
    """Result of :func:`fit_time_activity_voxelwise` (maps have the images' spatial shape).

    Attributes
    ----------
    integral : ndarray float64
        ∫₀^∞ per voxel, value·h (never NaN; 0 outside the mask and for empty voxels).
    model : ndarray uint8
        Model code per voxel, see :attr:`MODEL_CODES`.
    quality : ndarray float32
        R² of the curve used against the voxel's points (1 for interpolating models, i.e. for
        every fitted voxel with 3 time points; informative for more time points); 0 where
        model code is 0.
    relative_uncertainty : ndarray float32
        1σ relative uncertainty of the integral propagated from ``value_uncertainty``.
    warnings : list[str]
    n_nonfinite_voxels, n_negative_voxels : int
        Voxels with NaN/inf values (set to 0) and with negative values (clipped to 0).
    """

    MODEL_CODES: ClassVar[dict] = {0: "none", 1: "biexp", 2: "mono_last2", 3: "trapezoid"}

    integral: np.ndarray
    model: np.ndarray
    quality: np.ndarray
    relative_uncertainty: np.ndarray
    warnings: list = field(default_factory=list)
    n_nonfinite_voxels: int = 0
    n_negative_voxels: int = 0

    def counts(self) -> dict:
        """Number of voxels per model name."""
        codes, num = np.unique(self.model, return_counts=True)
        return {self.MODEL_CODES[int(c)]: int(k) for c, k in zip(codes, num)}


def _adjugate3(m00, m01, m02, m11, m12, m22):
    """Cofactors (c00, c01, c02, c11, c12, c22) and determinant of a symmetric 3×3 M (vectorised)."""
    c00 = m11 * m22 - m12 * m12
    c01 = m02 * m12 - m01 * m22
    c02 = m01 * m12 - m02 * m11
    c11 = m00 * m22 - m02 * m02
    c12 = m01 * m02 - m00 * m12
    c22 = m00 * m11 - m01 * m01
    return (c00, c01, c02, c11, c12, c22), m00 * c00 + m01 * c01 + m02 * c02


def _adj_times(c, b0, b1, b2):
    """adj(M) b for the cofactors ``c`` of :func:`_adjugate3`."""
    c00, c01, c02, c11, c12, c22 = c
    return (c00 * b0 + c01 * b1 + c02 * b2, c01 * b0 + c11 * b1 + c12 * b2, c02 * b0 + c12 * b1 + c22 * b2)


def _solve3_quadform(m00, m01, m02, m11, m12, m22, g0, g1, g2):
    """gᵀ M⁻¹ g for symmetric 3×3 M given by components (vectorised, Cramer/adjugate)."""
    c, det = _adjugate3(m00, m01, m02, m11, m12, m22)
    a0, a1, a2 = _adj_times(c, g0, g1, g2)
    return (g0 * a0 + g1 * a1 + g2 * a2) / det, det


def _solve3(m00, m01, m02, m11, m12, m22, b0, b1, b2):
    """x = M⁻¹ b for symmetric 3×3 M (vectorised)."""
    c, det = _adjugate3(m00, m01, m02, m11, m12, m22)
    a0, a1, a2 = _adj_times(c, b0, b1, b2)
    return a0 / det, a1 / det, a2 / det


def _biexp_gn(t, Y, S, A, l1, l2, max_iter=40):
    """Vectorised σ-weighted Gauss–Newton (with step halving) for A(e^(−λ1 t) − e^(−λ2 t)).

    t (T,), Y and S (T, n); returns A, l1, l2, converged."""
    tt = t[:, None]
    W = 1.0 / (S * S)

    def cost(A, l1, l2):
        r = A * (np.exp(-l1 * tt) - np.exp(-l2 * tt)) - Y
        return np.sum(W * r * r, axis=0)

    c = cost(A, l1, l2)
    conv = np.zeros(A.shape, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            e1 = np.exp(-l1 * tt)
            e2 = np.exp(-l2 * tt)
            h = e1 - e2
            r = Y - A * h
            j0, j1, j2 = h, -A * tt * e1, A * tt * e2
            m00 = np.sum(W * j0 * j0, 0); m01 = np.sum(W * j0 * j1, 0); m02 = np.sum(W * j0 * j2, 0)
            m11 = np.sum(W * j1 * j1, 0); m12 = np.sum(W * j1 * j2, 0); m22 = np.sum(W * j2 * j2, 0)
            b0 = np.sum(W * j0 * r, 0); b1 = np.sum(W * j1 * r, 0); b2 = np.sum(W * j2 * r, 0)
            dA, d1, d2 = _solve3(m00, m01, m02, m11, m12, m22, b0, b1, b2)
            step = np.ones_like(A)
            accepted = np.zeros(A.shape, dtype=bool)
            nA, n1, n2, nc = A, l1, l2, c
            for _half in range(8):
                tA, t1, t2 = A + step * dA, l1 + step * d1, l2 + step * d2
                tc = cost(tA, t1, t2)
                good = ~accepted & np.isfinite(tc) & (tc <= c) & (t1 > 0) & (t2 > t1)
                nA = np.where(good, tA, nA); n1 = np.where(good, t1, n1)
                n2 = np.where(good, t2, n2); nc = np.where(good, tc, nc)
                accepted |= good
                if accepted.all():
                    break
                step = np.where(accepted, step, step * 0.5)
            rel = (np.abs(nA - A) / np.abs(A) + np.abs(n1 - l1) / l1 + np.abs(n2 - l2) / l2)
            newly = ~accepted | (rel < 1e-10) | (np.abs(c - nc) <= 1e-14 * (1 + c))
            A = np.where(conv, A, nA); l1 = np.where(conv, l1, n1)
            l2 = np.where(conv, l2, n2); c = np.where(conv, c, nc)
            conv |= newly
            if conv.all():
                break
    return A, l1, l2, conv


def _voxel_chunk(t, Y, lam_phys, rel):
    """Fit one chunk Y (T, n) ≥ 0, finite. Returns integral, code, quality, rel_unc.

    Order: bi-exponential on the candidates, then mono_last2, then trapezoid + physical tail on
    whatever is left (each model is only evaluated on the voxels that need it)."""
    T, n = Y.shape
    S = _relative_sigma(Y, rel)
    integral = np.zeros(n)
    var = np.zeros(n)
    code = np.zeros(n, dtype=np.uint8)
    quality = np.zeros(n, dtype=np.float32)
    ymax = Y.max(axis=0)
    nonzero = ymax > 0
    rising = Y[-1] >= Y[:-1].max(axis=0)
    todo = nonzero.copy()

    # 1: bi-exponential (Macsuka et al. 2026 Eq. 1)
    tp = t > 0
    if tp.sum() >= 3:
        tpos = t[tp]
        Ypos = Y[tp] if not tp.all() else Y
        cand = nonzero & ~rising & np.all(Ypos > 0, axis=0)
        if cand.any():
            idx = np.flatnonzero(cand)
            Yp = Ypos[:, idx]
            Sp = S[:, idx][tp] if not tp.all() else S[:, idx]
            if tpos.size == 3:
                A, l1, l2, ok = _biexp3_exact(tpos, Yp)
            else:
                mid = int(np.argmin(np.abs(np.log(tpos[1:-1]) - 0.5 * (np.log(tpos[0]) + np.log(tpos[-1]))))) + 1
                sel = [0, mid, tpos.size - 1]
                A, l1, l2, ok0 = _biexp3_exact(tpos[sel], Yp[sel])
                # fallback start where the 3-point solve fails: last-segment rate, 2-h uptake
                with np.errstate(all="ignore"):
                    ls0 = np.maximum(np.log(Yp[-2] / Yp[-1]) / (tpos[-1] - tpos[-2]), lam_phys) * 1.05
                    A0 = Yp[-1] * np.exp(ls0 * tpos[-1])
                A = np.where(ok0, A, A0)
                l1 = np.where(ok0, l1, ls0)
                l2 = np.where(ok0, l2, ls0 + _LN2 / 2.0)
                A, l1, l2, ok = _biexp_gn(tpos, Yp, Sp, A, l1, l2)
            with np.errstate(all="ignore"):
                d = l2 - l1
                ok &= (l1 > lam_phys * (1 + _BOUND_RTOL)) & (d > _BOUND_RTOL * l1) & (
                    d < _MAX_UPTAKE_EXCESS_PER_H * (1 - _BOUND_RTOL)) & (A > 0)
            if ok.any():
                if not ok.all():
                    idx, Yp, Sp, A, l1, l2 = idx[ok], Yp[:, ok], Sp[:, ok], A[ok], l1[ok], l2[ok]
                with np.errstate(all="ignore"):
                    tt = tpos[:, None]
                    e1 = np.exp(-l1 * tt)
                    e2 = np.exp(-l2 * tt)
                    h = e1 - e2
                    f = A * h
                    Wt = 1.0 / (Sp * Sp)
                    j0, j1, j2 = h, -A * tt * e1, A * tt * e2
                    Wj0, Wj1 = Wt * j0, Wt * j1
                    g0 = 1 / l1 - 1 / l2
                    vb, _det = _solve3_quadform(
                        np.sum(Wj0 * j0, 0), np.sum(Wj0 * j1, 0), np.sum(Wj0 * j2, 0),
                        np.sum(Wj1 * j1, 0), np.sum(Wj1 * j2, 0), np.sum(Wt * j2 * j2, 0),
                        g0, -A / (l1 * l1), A / (l2 * l2),
                    )
                    Ib = A * g0
                    good = np.isfinite(Ib) & (Ib > 0) & np.isfinite(vb) & (vb >= 0)
                    if tpos.size == 3:
                        good &= np.max(np.abs(f - Yp) / Yp, axis=0) < 1e-6
                sel_i = idx[good]
                integral[sel_i] = Ib[good]
                var[sel_i] = vb[good]
                code[sel_i] = 1
                todo[sel_i] = False
                if tpos.size > 3:
                    res = Yp[:, good] - f[:, good]
                    ym = Yp[:, good].mean(0)
                    tss = np.sum((Yp[:, good] - ym) ** 2, 0)
                    quality[sel_i] = np.where(tss > 0, 1 - np.sum(res * res, 0) / np.where(tss > 0, tss, 1), 1.0)
                else:
                    quality[sel_i] = 1.0

    # 2: mono_last2 where the last two points decay faster than physical decay
    if todo.any():
        dt = t[-1] - t[-2]
        cand2 = todo & ~rising & (Y[-2] > 0) & (Y[-1] > 0)
        idx = np.flatnonzero(cand2)
        if idx.size:
            y2, y1 = Y[-2, idx], Y[-1, idx]
            ls = np.log(y2 / y1) / dt
            fast = ls > lam_phys
            idx, ls, y2, y1 = idx[fast], ls[fast], y2[fast], y1[fast]
        if idx.size:
            kt2, _ = _knots(t[:-1], np.zeros(T - 1))
            w2 = _trapz_weights(kt2)[kt2.size - (T - 1):]
            Ys = Y[:, idx]
            S2 = S[:, idx]
            gr = np.zeros((T, idx.size))
            gr[:-1] = w2[:, None]
            gr[-2] += 1 / ls - 1 / (ls * ls * dt)
            gr[-1] += y2 / (ls * ls * y1 * dt)
            integral[idx] = w2 @ Ys[:-1] + y2 / ls
            var[idx] = np.sum((gr * S2) ** 2, axis=0)
            code[idx] = 2
            quality[idx] = 1.0
            todo[idx] = False

    # 3: trapezoid + physical-decay tail for the rest
    if todo.any():
        idx = np.flatnonzero(todo)
        Ys = Y[:, idx]
        kt, _ = _knots(t, np.zeros(T))
        g = _trapz_weights(kt)[kt.size - T:]
        integral[idx] = g @ Ys + Ys[-1] / lam_phys
        g = g.copy()
        g[-1] += 1.0 / lam_phys
        var[idx] = np.sum((g[:, None] * S[:, idx]) ** 2, axis=0)
        code[idx] = 3
        quality[idx] = 1.0

    with np.errstate(all="ignore"):
        relu = np.where(integral > 0, np.sqrt(var) / np.where(integral > 0, integral, 1.0), 0.0)
    return integral, code, quality, relu.astype(np.float32)


def fit_time_activity_voxelwise(
    times_h,
    images,
    physical_half_life_h: float,
    mask=None,
    *,
    value_uncertainty: float | None = None,
    chunk_voxels: int = 8192,
) -> VoxelwiseFit:
    """Voxel-wise time integration of registered images, fully vectorised (no per-voxel loop).

    Per voxel the same rule as ``fit_time_activity(model="auto")`` for n ≤ 4 points is used:
    rising → trapezoid + physical tail; else the Macsuka et al. 2026 bi-exponential A(e^(−λ1 t) − e^(−λ2 t))
    (exact interpolation through 3 points by a vectorised 1-D safeguarded Newton solve, or a
    vectorised σ-weighted Gauss–Newton for more points; points at t = 0 are not used by this
    model, which is 0 there), accepted only if λ1 > λ_phys, λ2 > λ1, A > 0 and it converged;
    else mono_last2 if the last two points decay faster than physical decay; else trapezoid +
    physical-decay tail. AICc selection (used by the VOI fit for ≥ 5 points) is not applied
    voxel-wise.

    Parameters
    ----------
    times_h : sequence of float
        Acquisition times, h after administration (T ≥ 2, strictly increasing).
    images : array (T, ...)
        Registered images (activity concentration, or dose rate), one per time point.
    physical_half_life_h : float
        Physical half-life, h.
    mask : bool array of the spatial shape, optional
        Voxels to fit; others get 0 (model code 0).
    value_uncertainty : float, optional
        Relative 1σ per voxel value (default 5 %), for the weights (T > 3) and the
        ``relative_uncertainty`` map.
    chunk_voxels : int
        Voxels processed per vectorised block (memory/speed trade-off).

    Returns
    -------
    VoxelwiseFit
        Integral map in value·h (e.g. Bq·h/mL, or Gy for dose-rate maps), model codes, quality.
        NaN/inf voxels are set to 0 and counted; negative values are clipped to 0 and counted.
    """
    t = _as_times(times_h, "times_h", min_points=2)
    try:
        imgs = np.asarray(images)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputDataError(f"images must be an array of shape (T, ...); {exc}") from None
    if imgs.dtype == object or not (np.issubdtype(imgs.dtype, np.number) or imgs.dtype == bool):
        raise InputDataError(f"images must be a numeric array of shape (T, ...), got dtype {imgs.dtype}")
    if imgs.ndim < 2:
        raise InputDataError(f"images must have shape (T, ...) with at least one spatial axis, got {imgs.shape}")
    if imgs.shape[0] != t.size:
        raise InputDataError(
            f"images has {imgs.shape[0]} time frames (axis 0) but times_h has {t.size} entries"
        )
    t_phys = _positive_scalar(physical_half_life_h, "physical_half_life_h", "h")
    lam_phys = _LN2 / t_phys
    rel = DEFAULT_RELATIVE_UNCERTAINTY if value_uncertainty is None else value_uncertainty
    try:
        rel = float(rel)
    except (TypeError, ValueError):
        raise InputDataError("value_uncertainty must be a relative fraction (a number) for voxel-wise fits") from None
    if not math.isfinite(rel) or rel <= 0:
        raise InputDataError(f"value_uncertainty must be finite and > 0, got {rel!r}")
    if not isinstance(chunk_voxels, (int, np.integer)) or chunk_voxels < 1:
        raise InputDataError(f"chunk_voxels must be a positive integer, got {chunk_voxels!r}")
    spatial = imgs.shape[1:]
    T = t.size
    flat = imgs.reshape(T, -1)
    nvox = flat.shape[1]
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != spatial:
            raise InputDataError(f"mask has shape {m.shape} but the images' spatial shape is {spatial}")
        if m.dtype != bool:
            if not np.issubdtype(m.dtype, np.number) or not np.all(np.isin(m, (0, 1))):
                raise InputDataError("mask must be boolean (or 0/1)")
            m = m.astype(bool)
        sel = np.flatnonzero(m.ravel())
    else:
        sel = None

    integral = np.zeros(nvox)
    code = np.zeros(nvox, dtype=np.uint8)
    quality = np.zeros(nvox, dtype=np.float32)
    relu = np.zeros(nvox, dtype=np.float32)
    n_nonfinite = 0
    n_negative = 0
    n_sel = nvox if sel is None else sel.size
    for start in range(0, n_sel, int(chunk_voxels)):
        stop = min(start + int(chunk_voxels), n_sel)
        ids = slice(start, stop) if sel is None else sel[start:stop]
        Y = np.array(flat[:, ids], dtype=np.float64)
        fin = np.isfinite(Y).all(axis=0)
        if not fin.all():
            n_nonfinite += int((~fin).sum())
            Y[:, ~fin] = 0.0
        neg = (Y < 0).any(axis=0)
        if neg.any():
            n_negative += int(neg.sum())
            np.maximum(Y, 0.0, out=Y)
        I, c, q, r = _voxel_chunk(t, Y, lam_phys, rel)
        integral[ids] = I
        code[ids] = c
        quality[ids] = q
        relu[ids] = r
    ws = []
    if n_nonfinite:
        ws.append(f"{n_nonfinite} voxel(s) with NaN/inf values at some time point were set to 0")
    if n_negative:
        ws.append(f"{n_negative} voxel(s) with negative values: negatives clipped to 0")
    n_fb = int(np.count_nonzero(code >= 2))
    if n_fb:
        ws.append(
            f"{n_fb} voxel(s) used a fallback (mono_last2: {int(np.count_nonzero(code == 2))}, "
            f"trapezoid + physical tail: {int(np.count_nonzero(code == 3))})"
        )
    return VoxelwiseFit(
        integral=integral.reshape(spatial), model=code.reshape(spatial),
        quality=quality.reshape(spatial), relative_uncertainty=relu.reshape(spatial),
        warnings=ws, n_nonfinite_voxels=n_nonfinite, n_negative_voxels=n_negative,
    )
