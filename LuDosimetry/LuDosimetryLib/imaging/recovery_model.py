"""Recovery coefficients over the whole volume range: the calibration table inside its range, a
saturating model fitted to the table above it, the clamp (flagged) below it.

The phantom spheres of a recovery-coefficient table (NEMA: 0.5–26.5 mL) do not reach the volume of
a kidney (≈ 150 mL) or of a large liver metastasis (up to 1 L). A table held constant beyond its
largest sphere over-corrects those VOIs (with the Lib's SPECT model: +20 % at 150 mL, +32 % at
1 L). Above the largest calibrated volume :class:`WholeRangeRecoveryCurve` therefore uses a
saturating model fitted to all table points, with plateau a ≤ 1:

``"gaussian_sphere"`` (default)  RC(V) = a · (mean over a sphere of volume V of the sphere
    blurred by an isotropic Gaussian PSF of standard deviation σ) — the recovery of a uniform
    sphere imaged with a Gaussian resolution, computed from the overlap volume of two spheres at
    distance r, V_ov(r) = π(4R + r)(2R − r)²/12: RC = (1/V) ∫₀^{2R} 4πr² g_σ(r) V_ov(r) dr. Fitted
    parameters: a (≤ 1) and σ (mm). It tends to a with 1 − RC ∝ σ/R, the physics of spill-out.
``"hill"``  RC(V) = a / (1 + (b/V)^c), a ≤ 1 (the form of :mod:`pvc`, with bounded plateau).

With the Lib's sphere simulator (:func:`synthetic.spheres.measure_recovery_coefficients`, FWHM
12 mm, 4.8 mm voxels) fitted on the six NEMA spheres the Gaussian-sphere model gives RC within
−1.5 % (150 mL) and −2.2 % (1 L) of the simulated truth; the free Hill form −0.6 % and −4.3 %
(Testing/test_recovery_model.py). A VOI is treated as the sphere of the same volume (for an
elongated organ the true spill-out is larger: an under-correction).

Flags in the row: ``"pvc:extrapolated"`` above the table (and a warning naming the VOI, its
volume and the table's maximum, :func:`extrapolation_warning`), ``"pvc:below_range"`` below it,
where the RC is clamped to its value at the smallest sphere (an under-correction, never a
blow-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import FitError, InputDataError
from . import pvc

__all__ = [
    "FLAG_BELOW_RANGE",
    "FLAG_EXTRAPOLATED",
    "MODEL_FORMS",
    "PVC_ORGAN_NAMES",
    "WholeRangeRecoveryCurve",
    "extrapolation_warning",
    "fit_whole_range_curve",
    "gaussian_sphere_rc",
    "pvc_applies",
    "whole_range_curve",
]

MODEL_FORMS = ("gaussian_sphere", "hill")
FLAG_EXTRAPOLATED = "pvc:extrapolated"
FLAG_BELOW_RANGE = "pvc:below_range"
#: Organ names that ``apply_pvc_to`` may list besides the VOI kinds (matched to the VOI name, any case).
PVC_ORGAN_NAMES = ("spleen", "liver")
_GL_X, _GL_W = np.polynomial.legendre.leggauss(200)


def _sphere_radius_mm(volume_ml) -> np.ndarray:
    return (3.0 * np.asarray(volume_ml, dtype=float) * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def gaussian_sphere_rc(volume_ml, sigma_mm: float, plateau: float = 1.0) -> np.ndarray:
    """RC of a uniform sphere of ``volume_ml`` (mL; scalar or array) blurred by an isotropic 3-D
    Gaussian of standard deviation ``sigma_mm`` (mm), averaged over the sphere, times ``plateau``.
    Gauss–Legendre quadrature (200 nodes) of (1/V) ∫₀^{2R} 4πr² g_σ(r) V_ov(r) dr."""
    R = np.atleast_1d(_sphere_radius_mm(volume_ml))
    s = float(sigma_mm)
    r = (_GL_X[None, :] + 1.0) * R[:, None]
    w = _GL_W[None, :] * R[:, None]
    g = np.exp(-r ** 2 / (2.0 * s * s)) / ((2.0 * math.pi) ** 1.5 * s ** 3)
    v_ov = math.pi * (4.0 * R[:, None] + r) * (2.0 * R[:, None] - r) ** 2 / 12.0
    out = plateau * np.sum(w * 4.0 * math.pi * r ** 2 * g * v_ov, axis=1) / (4.0 / 3.0 * math.pi * R ** 3)
    return out if np.ndim(volume_ml) else out[0]


def _model(form: str, V, p: dict):
    if form == "gaussian_sphere":
        return gaussian_sphere_rc(V, p["sigma_mm"], p["a"])
    return p["a"] / (1.0 + (p["b"] / np.asarray(V, dtype=float)) ** p["c"])


@dataclass(frozen=True)
class WholeRangeRecoveryCurve:
    """RC(V) for any volume (mL): ``table`` (a :class:`pvc.RecoveryCurve` of form "table") inside
    its range, the fitted saturating ``form`` (params) above it, the clamp below it.

    ``rms_residual``: RMS of table − model at the calibration points; ``jump_at_max``: model −
    table at the largest calibrated volume (the step where the model takes over)."""

    table: pvc.RecoveryCurve
    form: str
    params: dict = field(default_factory=dict)
    rms_residual: float = 0.0
    jump_at_max: float = 0.0

    @property
    def min_volume_ml(self) -> float:
        return self.table.min_volume_ml

    @property
    def max_volume_ml(self) -> float:
        return self.table.max_volume_ml

    def rc(self, volume_ml):
        """RC at ``volume_ml`` (mL, scalar or array) with the range rules (clamp below, model above)."""
        V = np.atleast_1d(np.asarray(volume_ml, dtype=float))
        if V.size == 0 or not np.all(np.isfinite(V)) or np.any(V <= 0):
            raise InputDataError(f"volume_ml: must be finite and > 0, got {volume_ml!r}")
        out = np.asarray(self.table._eval(np.maximum(V, self.min_volume_ml)), dtype=float)
        above = V > self.max_volume_ml * (1.0 + 1e-9)
        if above.any():
            out = np.where(above, _model(self.form, np.where(above, V, self.max_volume_ml), self.params), out)
        return float(out[0]) if np.ndim(volume_ml) == 0 else out

    def correct(self, value, volume_ml, below_calibration=None, background=None):
        """Same contract as :meth:`pvc.RecoveryCurve.correct` (value / RC; ``background`` removes
        spill-in), with flags ``"pvc:below_range"`` (clamped) and ``"pvc:extrapolated"`` (model).
        ``below_calibration`` is accepted for compatibility; only the clamp is used."""
        v = np.asarray(value, dtype=float)
        if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise InputDataError("value: must be finite and >= 0")
        rc = np.asarray(self.rc(volume_ml), dtype=float)
        V = np.asarray(volume_ml, dtype=float)
        if background is None:
            corrected = v / rc
            extra = ()
        else:
            bg = np.asarray(background, dtype=float)
            raw = (v - (1.0 - rc) * bg) / rc
            extra = (pvc.FLAG_BACKGROUND,) if np.any(raw < 0) else ()
            corrected = np.maximum(raw, 0.0)

        def flags_for(vol: float) -> tuple:
            if vol < self.min_volume_ml * (1.0 - 1e-9):
                return (FLAG_BELOW_RANGE,) + extra
            if vol > self.max_volume_ml * (1.0 + 1e-9):
                return (FLAG_EXTRAPOLATED,) + extra
            return extra

        scalar_in = np.ndim(value) == 0 and np.ndim(volume_ml) == 0
        out = float(corrected) if scalar_in else corrected
        if np.ndim(volume_ml) == 0:
            return out, float(rc), flags_for(float(V))
        return out, rc, [flags_for(float(x)) for x in V.ravel()]

    def as_dict(self) -> dict:
        d = self.table.as_dict()
        d.update({"form": f"table + {self.form} above {self.max_volume_ml:g} mL", "params": dict(self.params),
                  "rms_residual": self.rms_residual, "jump_at_max": self.jump_at_max})
        return d


def fit_whole_range_curve(volumes_ml, rc, form: str = "gaussian_sphere") -> WholeRangeRecoveryCurve:
    """Table curve through (``volumes_ml`` mL, ``rc``) and ``form`` fitted to the same points by
    bounded least squares (scipy.optimize.least_squares; plateau a in (0, 1]). With fewer than 3
    points (or a failed fit) raises :class:`FitError`/:class:`InputDataError` naming the table."""
    from scipy.optimize import least_squares

    if form not in MODEL_FORMS:
        raise InputDataError(f"recovery_coefficients model: expected one of {MODEL_FORMS}, got {form!r}")
    table = pvc.recovery_curve_from_table(volumes_ml, rc)
    V, R = np.asarray(table.volumes_ml), np.asarray(table.rc_points)
    if V.size < 3:
        raise InputDataError(f"recovery_coefficients: {V.size} points; at least 3 are needed to fit the "
                             f"{form} model used above the largest sphere")
    if form == "gaussian_sphere":
        names, x0 = ("a", "sigma_mm"), [min(1.0, max(R.max(), 0.5)), float(_sphere_radius_mm(V[0]))]
        lo, hi = [1e-3, 1e-2], [1.0, 1e3]
    else:
        names, x0 = ("a", "b", "c"), [min(1.0, max(R.max() * 1.05, 0.5)), float(np.median(V)), 1.0]
        lo, hi = [1e-3, 1e-6, 0.05], [1.0, 1e6, 5.0]
    res = least_squares(lambda p: _model(form, V, dict(zip(names, p))) - R, x0, bounds=(lo, hi))
    if not res.success or not np.all(np.isfinite(res.x)):
        raise FitError(f"recovery_coefficients: the {form} model could not be fitted to the table")
    params = {k: float(x) for k, x in zip(names, res.x)}
    fitted = _model(form, V, params)
    rms = float(np.sqrt(np.mean((fitted - R) ** 2)))
    return WholeRangeRecoveryCurve(table=table, form=form, params=params, rms_residual=rms,
                                   jump_at_max=float(fitted[-1] - R[-1]))


def extrapolation_warning(voi: str, volume_ml: float, curve: WholeRangeRecoveryCurve, rc: float) -> str:
    """The warning of a VOI corrected above the calibration table (names VOI, volume, table max)."""
    return (f"{voi}: volume {volume_ml:.1f} mL above the largest calibration sphere "
            f"({curve.max_volume_ml:.1f} mL): recovery coefficient {rc:.3f} from the {curve.form} model fitted "
            f"to the table (pvc:extrapolated)")


def pvc_applies(voi, options) -> bool:
    """Whether ``voi`` is partial-volume corrected: ``options.pvc_per_voi[name]`` when given, else
    whether its kind, or (for an organ) its name in lower case, is in ``options.apply_pvc_to``."""
    per_voi = getattr(options, "pvc_per_voi", None) or {}
    if voi.name in per_voi:
        return bool(per_voi[voi.name])
    return voi.kind in options.apply_pvc_to or (voi.kind == "organ" and voi.name.lower() in options.apply_pvc_to)


def whole_range_curve(entry: dict):
    """Curve of a manifest's ``recovery_coefficients`` entry: :func:`fit_whole_range_curve` with
    ≥ 3 points, else the table alone (constant beyond its ends) with a warning. Returns
    ``(curve, warnings)``."""
    vols, rcs = entry["volume_ml"], entry["rc"]
    if len(vols) < 3:
        return pvc.recovery_curve_from_table(vols, rcs), [
            (f"recovery_coefficients: {len(vols)} points, too few to fit a model for VOIs above the largest "
             "sphere: the table's last RC is used there (over-corrects large VOIs)")]
    try:
        return fit_whole_range_curve(vols, rcs), []
    except FitError as exc:
        return pvc.recovery_curve_from_table(vols, rcs), [f"{exc}; the table's last RC is used above its range"]
