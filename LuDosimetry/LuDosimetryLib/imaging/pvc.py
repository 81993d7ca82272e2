"""Partial-volume correction with recovery coefficients, and the minimum-volume rule.

Recovery coefficient RC(V) = measured / true value (activity, concentration or dose rate) of an
object of volume V (mL), from phantom spheres imaged like the patient (Macsuka et al. 2026 supplemental
Table 1). Corrected value = measured / RC(V).

Curve forms
-----------
``"hill"``         RC(V) = a / (1 + (b/V)^c)          (a: plateau, b: volume at RC = a/2, c: slope)
``"exponential"``  RC(V) = a · (1 − exp(−b·V^c))
``"table"``        piecewise linear in ln V through the calibration points (the manifest's
                   ``recovery_coefficients: {volume_ml: [...], rc: [...]}``), constant beyond
                   the largest calibrated volume.

Below the smallest calibrated volume the curve is not trusted: :meth:`RecoveryCurve.correct`
flags ``"pvc:below_calibration"`` and, per ``below_calibration``, clamps the RC to its value at
the smallest calibrated volume (``"clamp"``, default: an under-correction, never a blow-up),
raises :class:`~LuDosimetryLib.errors.InputDataError` (``"raise"``), or uses the curve anyway
(``"extrapolate"``, also flagged ``"pvc:extrapolated"``).

Minimum-volume rule: Macsuka et al. 2026 excluded tumours < 10 mL (default); Hebert et al. 2024 used 2 mL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..checks import scalar
from ..errors import FitError, InputDataError

__all__ = ["RecoveryCurve", "fit_recovery_curve", "recovery_curve_from_table", "recovery_curve_from_manifest",
           "VolumeRuleResult", "apply_minimum_volume_rule", "FORMS", "BELOW_CALIBRATION_POLICIES",
           "DEFAULT_MIN_VOLUME_ML"]

FORMS = ("hill", "exponential", "table")
BELOW_CALIBRATION_POLICIES = ("clamp", "raise", "extrapolate")
#: Macsuka et al. 2026: tumours smaller than 10 cm³ were excluded.
DEFAULT_MIN_VOLUME_ML = 10.0
FLAG_BELOW = "pvc:below_calibration"
FLAG_EXTRAPOLATED = "pvc:extrapolated"
FLAG_BACKGROUND = "pvc:background_exceeds_value"


def _hill(V, a, b, c):
    return a / (1.0 + (b / V) ** c)


def _exponential(V, a, b, c):
    return a * (1.0 - np.exp(-b * V ** c))


_MODELS = {"hill": _hill, "exponential": _exponential}


def _positive_array(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise InputDataError(f"{name}: expected numbers, got {x!r}") from None
    if a.size == 0:
        raise InputDataError(f"{name}: is empty")
    if not np.all(np.isfinite(a)):
        raise InputDataError(f"{name}: contains NaN or infinite values")
    if np.any(a <= 0):
        raise InputDataError(f"{name}: values must be > 0, got min {a.min():.4g}")
    return a


def _policy(p) -> str:
    if p not in BELOW_CALIBRATION_POLICIES:
        raise InputDataError(f"below_calibration: expected one of {BELOW_CALIBRATION_POLICIES}, got {p!r}")
    return p


@dataclass(frozen=True)
class RecoveryCurve:
    """A recovery-coefficient curve RC(V), V in mL.

    form: "hill", "exponential" or "table". params: fitted a, b, c (empty for a table);
    param_sd: their standard errors when estimable. volumes_ml / rc_points: the calibration data
    (sorted by volume). rms_residual: RMS of RC − curve at the calibration points.
    below_calibration: default policy of :meth:`correct` below ``min_volume_ml``.
    """

    form: str
    volumes_ml: tuple
    rc_points: tuple
    params: dict = field(default_factory=dict)
    param_sd: dict = field(default_factory=dict)
    rms_residual: float = 0.0
    below_calibration: str = "clamp"

    @property
    def min_volume_ml(self) -> float:
        """Smallest calibrated volume (mL)."""
        return float(self.volumes_ml[0])

    @property
    def max_volume_ml(self) -> float:
        """Largest calibrated volume (mL)."""
        return float(self.volumes_ml[-1])

    def _eval(self, V: np.ndarray) -> np.ndarray:
        if self.form == "table":
            return np.interp(np.log(V), np.log(self.volumes_ml), self.rc_points)
        p = self.params
        return _MODELS[self.form](V, p["a"], p["b"], p["c"])

    def rc(self, volume_ml):
        """Curve value at ``volume_ml`` (mL; scalar or array), without any below-calibration policy
        (a table is constant beyond its ends)."""
        V = _positive_array(volume_ml, "volume_ml")
        out = self._eval(V)
        return float(out) if np.ndim(volume_ml) == 0 else out

    def correct(self, value, volume_ml, below_calibration: str | None = None, background=None):
        """Partial-volume corrected ``value`` for an object of ``volume_ml`` (mL).

        ``value``: scalar or array (e.g. the activities of one VOI at several time points, or one
        per VOI); ``volume_ml``: scalar, or an array broadcastable with ``value``.
        ``background`` (optional, same units as ``value``): what the VOI would measure if it held
        the surrounding background concentration (background concentration × VOI volume for an
        activity). Spill-in from a warm background is then removed, corrected =
        (value − (1 − RC)·background) / RC (floored at 0, flagged ``"pvc:background_exceeds_value"``);
        without it corrected = value / RC (the RC convention of a cold background).
        Returns ``(corrected, rc, flags)``: rc is a float for a scalar volume (flags a tuple of
        strings), else arrays (flags a list of tuples, one per volume).
        """
        policy = _policy(below_calibration or self.below_calibration)
        try:
            v = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise InputDataError(f"value: expected numbers, got {value!r}") from None
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise InputDataError("value: is empty or contains NaN/infinite values")
        if np.any(v < 0):
            raise InputDataError(f"value: must be >= 0, got min {v.min():.4g}")
        V = _positive_array(volume_ml, "volume_ml")
        below = V < self.min_volume_ml * (1.0 - 1e-9)
        if below.any() and policy == "raise":
            raise InputDataError(f"volume_ml: {V[below].min():.4g} mL is below the smallest calibrated volume "
                                 f"{self.min_volume_ml:g} mL of the recovery curve (below_calibration='raise')")
        rc = self._eval(V)
        if policy == "clamp":
            rc = np.where(below, float(self._eval(np.asarray(self.min_volume_ml))), rc)
        if np.any(rc <= 0):
            raise InputDataError(f"volume_ml: recovery coefficient <= 0 at {V[rc <= 0].min():.4g} mL")
        extra = ()
        try:
            if background is None:
                corrected = v / rc
            else:
                bg = np.asarray(background, dtype=float)
                if not np.all(np.isfinite(bg)) or np.any(bg < 0):
                    raise InputDataError("background: must be finite and >= 0")
                raw = (v - (1.0 - rc) * bg) / rc
                if np.any(raw < 0):
                    extra = (FLAG_BACKGROUND,)
                corrected = np.maximum(raw, 0.0)
        except ValueError:
            raise InputDataError(f"volume_ml/background: shapes {V.shape} do not broadcast with value shape "
                                 f"{v.shape}") from None

        def flags_for(b: bool) -> tuple:
            below_flags = ((FLAG_BELOW, FLAG_EXTRAPOLATED) if policy == "extrapolate" else (FLAG_BELOW,)) if b else ()
            return below_flags + extra

        scalar_in = np.ndim(value) == 0 and np.ndim(volume_ml) == 0 and np.ndim(background) == 0
        out = float(corrected) if scalar_in else corrected
        if np.ndim(volume_ml) == 0:
            return out, float(rc), flags_for(bool(below))
        return out, rc, [flags_for(bool(b)) for b in below.ravel()]

    def as_dict(self) -> dict:
        return {"form": self.form, "params": dict(self.params), "param_sd": dict(self.param_sd),
                "volume_ml": list(self.volumes_ml), "rc": list(self.rc_points), "rms_residual": self.rms_residual,
                "min_volume_ml": self.min_volume_ml, "max_volume_ml": self.max_volume_ml,
                "below_calibration": self.below_calibration}


def _calibration(volumes_ml, rc, min_points: int):
    V = _positive_array(volumes_ml, "volumes_ml").ravel()
    R = _positive_array(rc, "rc").ravel()
    if V.size != R.size:
        raise InputDataError(f"rc: {R.size} values for {V.size} volumes_ml")
    if V.size < min_points:
        raise InputDataError(f"volumes_ml: at least {min_points} calibration points are needed, got {V.size}")
    if np.any(R > 2.0):
        raise InputDataError(f"rc: recovery coefficients above 2 are not plausible, got max {R.max():.4g}")
    order = np.argsort(V)
    V, R = V[order], R[order]
    if np.any(np.diff(V) <= 0):
        raise InputDataError("volumes_ml: duplicate volumes")
    return V, R


def _initial_guesses(form: str, V: np.ndarray, R: np.ndarray):
    a0 = max(1.0, R.max() * 1.05) if R.max() > 0.9 else R.max() * 1.1
    half = a0 / 2.0
    lv = np.log(V)
    # volume where RC crosses a0/2 (log-linear interpolation, clipped to the data range)
    vh = float(np.exp(np.interp(half, R, lv))) if np.all(np.diff(R) >= 0) else float(np.exp(np.median(lv)))
    guesses = []
    for c0 in (0.5, 1.0, 2.0):
        if form == "hill":
            guesses.append((a0, vh, c0))
        else:
            guesses.append((a0, math.log(2.0) / vh ** c0, c0))
    return guesses


def fit_recovery_curve(volumes_ml, rc, form: str = "hill", *, rc_sd=None,
                       below_calibration: str = "clamp") -> RecoveryCurve:
    """Fit RC(V) to calibration spheres (volumes in mL, measured RCs).

    ``form``: "hill" a/(1+(b/V)^c), "exponential" a(1−e^(−bV^c)) (≥ 3 points, least squares on
    log-parameters so that a, b, c > 0; optional ``rc_sd`` weights), or "table" (≥ 2 points,
    piecewise linear in ln V). Raises FitError when no fit converges.
    """
    if form not in FORMS:
        raise InputDataError(f"form: expected one of {FORMS}, got {form!r}")
    policy = _policy(below_calibration)
    if form == "table":
        V, R = _calibration(volumes_ml, rc, 2)
        return RecoveryCurve(form="table", volumes_ml=tuple(V.tolist()), rc_points=tuple(R.tolist()),
                             below_calibration=policy)
    from scipy.optimize import least_squares

    V, R = _calibration(volumes_ml, rc, 3)
    sd = np.ones_like(R)
    if rc_sd is not None:
        sd = _positive_array(rc_sd, "rc_sd").ravel()
        if sd.size != R.size:
            raise InputDataError(f"rc_sd: {sd.size} values for {R.size} calibration points")
        sd = sd[np.argsort(_positive_array(volumes_ml, "volumes_ml").ravel())]
    f = _MODELS[form]

    def resid(theta):
        a, b, c = np.exp(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            r = (f(V, a, b, c) - R) / sd
        return np.where(np.isfinite(r), r, 1e6)

    best = None
    for g in _initial_guesses(form, V, R):
        try:
            res = least_squares(resid, np.log(g), method="trf", x_scale="jac", max_nfev=5000)
        except (ValueError, FloatingPointError):
            continue
        if res.success and np.all(np.isfinite(res.x)) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        raise FitError(f"fit_recovery_curve: the {form} curve could not be fitted to {V.size} points")
    a, b, c = (float(x) for x in np.exp(best.x))
    fitted = f(V, a, b, c)
    rms = float(np.sqrt(np.mean((fitted - R) ** 2)))
    if not np.isfinite(rms) or rms > 0.1:
        raise FitError(f"fit_recovery_curve: the {form} curve does not describe the data (RMS residual {rms:.3g})")
    param_sd = {}
    dof = V.size - 3
    if dof > 0:
        J = best.jac * np.array([a, b, c])[None, :] ** -1  # d r / d p = d r / d ln p / p
        try:
            s2 = 2.0 * best.cost / dof if rc_sd is None else 1.0
            cov = np.linalg.inv(J.T @ J) * s2
            param_sd = {k: float(math.sqrt(max(cov[i, i], 0.0))) for i, k in enumerate("abc")}
        except np.linalg.LinAlgError:
            param_sd = {}
    return RecoveryCurve(form=form, volumes_ml=tuple(V.tolist()), rc_points=tuple(R.tolist()),
                         params={"a": a, "b": b, "c": c}, param_sd=param_sd, rms_residual=rms,
                         below_calibration=policy)


def recovery_curve_from_table(volumes_ml, rc, below_calibration: str = "clamp") -> RecoveryCurve:
    """Table-interpolation curve (piecewise linear in ln V) through (volume mL, RC) points."""
    return fit_recovery_curve(volumes_ml, rc, form="table", below_calibration=below_calibration)


def recovery_curve_from_manifest(entry: dict, form: str = "table", below_calibration: str = "clamp") -> RecoveryCurve:
    """Curve from a manifest's ``recovery_coefficients`` entry ``{"volume_ml": [...], "rc": [...]}``
    (``form`` "table" interpolates the points; "hill"/"exponential" fit them)."""
    if not isinstance(entry, dict):
        raise InputDataError(f"recovery_coefficients: expected an object with volume_ml and rc, got {type(entry).__name__}")
    for key in ("volume_ml", "rc"):
        if key not in entry:
            raise InputDataError(f"recovery_coefficients.{key}: missing")
    return fit_recovery_curve(entry["volume_ml"], entry["rc"], form=form, below_calibration=below_calibration)


@dataclass(frozen=True)
class VolumeRuleResult:
    """Outcome of the minimum-volume rule: VOI name -> volume (mL) for included and excluded VOIs."""

    included: dict
    excluded: dict
    min_volume_ml: float


def apply_minimum_volume_rule(volumes_ml: dict, min_volume_ml: float = DEFAULT_MIN_VOLUME_ML) -> VolumeRuleResult:
    """Split VOIs by volume: included if volume ≥ ``min_volume_ml`` (default 10 mL, Macsuka et al. 2026;
    Hebert et al. 2024 used 2 mL), else excluded. ``volumes_ml``: dict name -> volume (mL)."""
    if not isinstance(volumes_ml, dict):
        raise InputDataError(f"volumes_ml: expected a dict name -> volume (mL), got {type(volumes_ml).__name__}")
    limit = scalar(min_volume_ml, "min_volume_ml", nonneg=True, unit="mL")
    included, excluded = {}, {}
    for name, v in volumes_ml.items():
        vol = scalar(v, f"volumes_ml[{name!r}]", nonneg=True, unit="mL")
        (included if vol >= limit else excluded)[name] = vol
    return VolumeRuleResult(included=included, excluded=excluded, min_volume_ml=limit)
