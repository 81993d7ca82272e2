"""VOI time-activity fits: model selection among the candidates of ``models`` and the integral with its uncertainty."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import FitError, InputDataError
from ._inputs import (
    _LN2,
    _TAILS,
    MODELS,
    _as_times,
    _as_values,
    _positive_scalar,
    _sigma,
)
from .models import (
    _aicc,
    _Candidate,
    _denormalise,
    _fit_parametric,
    _piecewise_candidate,
)

# ----------------------------------------------------------------------------- validation


# ----------------------------------------------------------------------------- result type


@dataclass(frozen=True)
class TimeActivityFit:
    """Result of :func:`fit_time_activity`.

    Attributes
    ----------
    model : str
        ``"mono"``, ``"biexp"``, ``"triexp"``, ``"trapezoid"`` or ``"mono_last2"``.
    params : dict
        Model parameters: amplitudes in value units (``A``, ``A1``, ``A2``), rates in 1/h
        (``lambda1_per_h`` …); piecewise models give ``tail_rate_per_h`` and ``tail``.
    integral : float
        ∫₀^∞ of the curve, value·h (e.g. MBq·h, or Gy when values are Gy/h).
    effective_half_life_h : float
        Terminal (washout) half-life, h: ln2/λ1 for the exponential models, ln2 of the tail rate
        for the piecewise models (the physical half-life when the physical tail is used).
    uncertainty : float
        1σ standard uncertainty of ``integral`` (value·h), see module docstring.
    warnings : list[str]
        Human-readable notes: chosen model and why, rejected models, bounds, rising curve.
    aicc : float or None
        AICc of the chosen parametric model (None when not defined: n ≤ k + 1 or piecewise).
    times_h, values, physical_half_life_h :
        The data and the half-life the fit was made with.
    flag_tokens : tuple[str]
        Backing store of :attr:`flags`.
    candidates : dict
        Per parametric model tried by ``"auto"``: its AICc, or why it was rejected.
    knots_h, knot_values, tail_rate_per_h :
        Piecewise curve (trapezoid, mono_last2): straight lines through the knots, then
        ``knot_values[-1]·e^(−tail_rate_per_h·(t − knots_h[-1]))``; empty for exponential models.
    """

    model: str
    params: dict
    integral: float
    effective_half_life_h: float
    uncertainty: float
    warnings: list = field(default_factory=list)
    aicc: float | None = None
    times_h: tuple = ()
    values: tuple = ()
    physical_half_life_h: float = float("nan")
    flag_tokens: tuple = ()
    candidates: dict = field(default_factory=dict)
    knots_h: tuple = ()
    knot_values: tuple = ()
    tail_rate_per_h: float = float("nan")
    _terms: tuple | None = field(default=None, repr=False)

    @property
    def flags(self) -> tuple[str, ...]:
        """Short tokens for a CSV ``flags`` column (join with ``";"``), e.g.
        ``("fallback:trapezoid", "tail:physical", "rising")``."""
        return tuple(self.flag_tokens)

    @property
    def relative_uncertainty(self) -> float:
        """``uncertainty / integral`` (0 when the integral is 0)."""
        return self.uncertainty / self.integral if self.integral > 0 else 0.0

    @property
    def is_exponential(self) -> bool:
        """True when the curve is a sum of exponentials (mono, biexp, triexp)."""
        return self._terms is not None

    def exponential_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """``(coefficients, rates_per_h)`` with curve(t) = Σ c_i·e^(−r_i t) (value units, 1/h).

        Raises FitError for the piecewise models (trapezoid, mono_last2); use
        :attr:`knots_h`, :attr:`knot_values` and :attr:`tail_rate_per_h` for those.
        """
        if self._terms is None:
            raise FitError(f"model {self.model!r} is piecewise, not a sum of exponentials")
        c, r = self._terms
        return np.array(c, dtype=float), np.array(r, dtype=float)

    def evaluate(self, t_h) -> np.ndarray:
        """Fitted curve at times ``t_h`` (h, any shape, ≥ 0), in value units."""
        t = np.asarray(t_h, dtype=float)
        if not np.all(np.isfinite(t)):
            raise InputDataError("t_h contains NaN or infinite values")
        if np.any(t < 0):
            raise InputDataError("t_h must be >= 0 h")
        if self._terms is not None:
            c, r = self._terms
            out = np.zeros_like(t)
            for ci, ri in zip(c, r):
                out = out + ci * np.exp(-ri * t)
            return out
        kt = np.asarray(self.knots_h, dtype=float)
        kv = np.asarray(self.knot_values, dtype=float)
        out = np.interp(t, kt, kv)
        after = t > kt[-1]
        out = np.where(after, kv[-1] * np.exp(-self.tail_rate_per_h * (t - kt[-1])), out)
        return out


# ----------------------------------------------------------------------------- candidates


# --- parametric models, in normalised units (values / max(values)); p in fit coordinates ---


# ----------------------------------------------------------------------------- public fit


def fit_time_activity(
    times_h,
    values,
    model: str = "auto",
    *,
    physical_half_life_h: float,
    value_uncertainty=None,
    tail: str = "physical",
) -> TimeActivityFit:
    """Fit and integrate one time–activity (or dose-rate) curve.

    Parameters
    ----------
    times_h : sequence of float
        Times after administration, h; ≥ 0, strictly increasing, at least 2 points.
    values : sequence of float
        Activity (MBq), concentration (Bq/mL) or dose rate (Gy/h) at ``times_h``; ≥ 0.
    model : str
        One of :data:`MODELS`; ``"auto"`` applies the rule in the module docstring.
    physical_half_life_h : float
        Physical half-life of the nuclide, h (bounds every washout rate from below).
    value_uncertainty : None, float or sequence
        None → 5 % relative; scalar → relative fraction; sequence → absolute 1σ per point.
    tail : {"physical", "last_segment"}
        Tail of the ``"trapezoid"`` model (also used by ``"auto"`` only as ``"physical"``).

    Returns
    -------
    TimeActivityFit
        ``integral`` in value·h with 1σ ``uncertainty``; ``warnings`` and ``flags`` say which
        model was used and why.

    Raises
    ------
    InputDataError
        Invalid input (argument named in the message).
    FitError
        An explicitly requested parametric model cannot be fitted.
    """
    t = _as_times(times_h, "times_h", min_points=2)
    y = _as_values(values, t.size, "values")
    if not isinstance(model, str) or model not in MODELS:
        raise InputDataError(f"model must be one of {MODELS}, got {model!r}")
    if tail not in _TAILS:
        raise InputDataError(f"tail must be one of {_TAILS}, got {tail!r}")
    t_phys = _positive_scalar(physical_half_life_h, "physical_half_life_h", "h")
    lam_phys = _LN2 / t_phys
    sigma, sigma_desc = _sigma(y, value_uncertainty)
    n = t.size
    scale = float(y.max())
    notes: list[str] = []
    flags: list[str] = []
    candidates: dict = {}

    def finish(c: _Candidate, aicc=None) -> TimeActivityFit:
        c = _denormalise(c, scale) if "_p" in c.params else c
        ws = list(notes) + list(c.notes)
        ws.append(f"model {c.model}; per-point uncertainty {sigma_desc}")
        if c.model in ("trapezoid", "mono_last2"):
            flags.append(f"tail:{c.params.get('tail', 'physical')}")
        if c.at_bound and c.model not in ("trapezoid", "mono_last2"):
            flags.append("bound:lambda1_phys")
        params = {k: float(v) if isinstance(v, (int, float, np.floating)) else v for k, v in c.params.items()}
        unc = math.sqrt(c.variance) if math.isfinite(c.variance) else float("inf")
        return TimeActivityFit(
            model=c.model, params=params, integral=float(c.integral),
            effective_half_life_h=float(c.eff_half_life_h), uncertainty=unc, warnings=ws,
            aicc=aicc, times_h=tuple(t.tolist()), values=tuple(y.tolist()),
            physical_half_life_h=t_phys, flag_tokens=tuple(dict.fromkeys(flags)),
            candidates=candidates, knots_h=c.knots_h, knot_values=c.knot_values,
            tail_rate_per_h=float(c.tail_rate), _terms=c.terms,
        )

    yn = y / scale if scale > 0 else y
    sn = sigma / scale if scale > 0 else sigma

    # ---- explicit model
    if model != "auto":
        if model in ("trapezoid", "mono_last2"):
            c = _piecewise_candidate(t, y, sigma, lam_phys, model, tail)
            if model == "mono_last2" and not c.ok and not c.knots_h:
                raise FitError(f"mono_last2 cannot be used: {c.reason}")
            if scale == 0:
                flags.append("all_zero")
            return finish(c)
        if scale == 0:
            raise FitError(f"{model} cannot be fitted: all values are zero")
        c = _fit_parametric(model, t, yn, sn, lam_phys)
        if not c.params.get("_p") or not math.isfinite(c.integral):
            raise FitError(f"{model} fit failed: {c.reason or 'no solution'}")
        if not c.ok:
            notes.append(f"{model} fit returned as requested although: {c.reason}")
            flags.append(f"questionable:{model}")
        return finish(c, _aicc(c.rss, n, c.k) if np.isfinite(c.rss) else None)

    # ---- auto
    if scale == 0:
        notes.append("all values are zero: integral 0")
        flags.append("all_zero")
        return finish(_piecewise_candidate(t, y, sigma, lam_phys, "trapezoid"))
    if y[-1] >= y[:-1].max():
        notes.append(
            "rising curve (last point is the highest): washout not observed; trapezoid with a "
            "physical-decay tail from the last point"
        )
        flags += ["rising", "fallback:trapezoid"]
        return finish(_piecewise_candidate(t, y, sigma, lam_phys, "trapezoid"))

    chosen = None
    chosen_aicc = None
    if n >= 5:
        pool = ["mono", "biexp"] + (["triexp"] if n >= 7 else [])
        best_a = None
        bstart = None
        for name in pool:
            c = _fit_parametric(name, t, yn, sn, lam_phys, biexp_start=bstart)
            if name == "biexp":
                bstart = c.params.get("_p")
            a = _aicc(c.rss, n, c.k) if c.ok else None
            candidates[name] = a if c.ok else f"rejected: {c.reason}"
            if c.ok and a is not None and (best_a is None or a < best_a):
                best_a, chosen = a, c
        if chosen is not None:
            chosen_aicc = best_a
            notes.append(
                f"{chosen.model} selected by AICc among "
                + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k} ({v})" for k, v in candidates.items())
            )
            flags.append("aicc")
    elif n >= 3:
        c = _fit_parametric("biexp", t, yn, sn, lam_phys)
        candidates["biexp"] = "accepted" if c.ok else f"rejected: {c.reason}"
        if c.ok:
            chosen = c
            chosen_aicc = _aicc(c.rss, n, c.k)
            notes.append("bi-exponential (Macsuka et al. 2026 Eq. 1) fitted (n ≤ 4: biexp-first rule, AICc not defined)")
    else:
        notes.append("2 points: no parametric model; mono-exponential through the last two points")

    if chosen is not None:
        return finish(chosen, chosen_aicc)
    if n >= 3:
        why = "; ".join(f"{k}: {v}" for k, v in candidates.items() if isinstance(v, str))
        notes.append(f"parametric fit not accepted ({why})")
        tok = "biexp_rejected" if n < 5 else "parametric_rejected"
        flags.append(tok)
    c = _piecewise_candidate(t, y, sigma, lam_phys, "mono_last2")
    if c.ok:
        notes.append("fallback: trapezoid up to the second-to-last point + mono-exponential through the last two points")
        flags.append("fallback:mono_last2")
        return finish(c)
    notes.append(f"fallback: trapezoid + physical-decay tail (mono_last2 not usable: {c.reason})")
    flags.append("fallback:trapezoid")
    return finish(_piecewise_candidate(t, y, sigma, lam_phys, "trapezoid"))


# ----------------------------------------------------------------------------- single time point


# ----------------------------------------------------------------------------- voxel-wise


