"""Dose statistics of a VOI: mean, D90/D50/D10, cumulative DVH and EUD."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...checks import scalar as _scalar
from ...errors import InputDataError
from ._common import _array


@dataclass(frozen=True, eq=False)
class DoseStatistics:
    """Dose statistics of one VOI (doses in Gy; fractions of the VOI volume, or mass if weighted).

    dvh_dose_Gy / dvh_fraction: cumulative DVH, fraction of the VOI receiving ≥ each dose.
    eud_Gy: O'Donoghue equivalent uniform dose for ``eud_alpha_per_Gy``.
    """

    mean_Gy: float
    min_Gy: float
    max_Gy: float
    d90_Gy: float
    d50_Gy: float
    d10_Gy: float
    eud_Gy: float
    eud_alpha_per_Gy: float
    n_voxels: int
    weighting: str
    total_mass_g: float | None
    dvh_dose_Gy: np.ndarray = field(repr=False)
    dvh_fraction: np.ndarray = field(repr=False)

    def d_percent_Gy(self, percent: float) -> float:
        """D_x: highest dose received by at least ``percent`` % of the VOI (from the DVH grid)."""
        p = _scalar(percent, "percent", lo=0.0, hi=100.0) / 100.0
        ok = self.dvh_fraction >= p - 1e-12
        return float(self.dvh_dose_Gy[ok][-1]) if ok.any() else 0.0

    def as_dict(self) -> dict:
        return {"mean_Gy": self.mean_Gy, "min_Gy": self.min_Gy, "max_Gy": self.max_Gy, "d90_Gy": self.d90_Gy,
                "d50_Gy": self.d50_Gy, "d10_Gy": self.d10_Gy, "eud_Gy": self.eud_Gy,
                "eud_alpha_per_Gy": self.eud_alpha_per_Gy, "n_voxels": self.n_voxels, "weighting": self.weighting,
                "total_mass_g": self.total_mass_g}


def _d_x(sorted_d, cum_from_top, x):
    """Highest dose d_i with fraction(≥ d_i) ≥ x (sorted ascending, cum_from_top[i] = fraction ≥ d_i)."""
    ok = np.nonzero(cum_from_top >= x - 1e-12)[0]
    return float(sorted_d[ok[-1]]) if ok.size else float(sorted_d[0])


def voi_dose_statistics(dose_Gy, mask, voxel_mass_g=None, *, eud_alpha_per_Gy: float = 0.3,
                        dvh_bins: int = 200) -> DoseStatistics:
    """Statistics of the dose map ``dose_Gy`` (Gy) inside the boolean ``mask`` (same shape).

    ``voxel_mass_g``: optional scalar or array (same shape) of voxel masses (g): mean, D_x, DVH
    and EUD are then mass-weighted, else volume-weighted. D_x = highest dose received by at
    least x % of the VOI. ``eud_alpha_per_Gy`` (> 0): radiosensitivity of the EUD.
    """
    d = _array(dose_Gy, "dose_Gy", allow_negative=True)
    m = np.asarray(mask)
    if m.shape != d.shape:
        raise InputDataError(f"mask: shape {m.shape} does not match dose_Gy shape {d.shape}")
    if m.dtype != bool:
        if not np.all(np.isin(m, (0, 1))):
            raise InputDataError("mask: must be boolean or 0/1")
        m = m.astype(bool)
    if not m.any():
        raise InputDataError("mask: is empty (no voxel selected)")
    vals = d[m]
    if np.any(vals < 0):
        raise InputDataError(f"dose_Gy: {int((vals < 0).sum())} voxel(s) inside the mask are negative")
    alpha = _scalar(eud_alpha_per_Gy, "eud_alpha_per_Gy", positive=True)
    nb = int(_scalar(dvh_bins, "dvh_bins", positive=True))
    total_mass = None
    if voxel_mass_g is None:
        w = np.ones_like(vals)
        weighting = "volume"
    else:
        vm = _array(voxel_mass_g, "voxel_mass_g")
        if vm.ndim == 0:
            w = np.full_like(vals, float(vm))
        elif vm.shape == d.shape:
            w = vm[m]
        else:
            raise InputDataError(f"voxel_mass_g: shape {vm.shape} does not match dose_Gy shape {d.shape}")
        if np.any(w <= 0):
            raise InputDataError("voxel_mass_g: masses inside the mask must be > 0 g")
        weighting = "mass"
        total_mass = float(w.sum())
    order = np.argsort(vals, kind="stable")
    sd, sw = vals[order], w[order]
    frac = sw / sw.sum()
    cum_top = np.minimum(np.cumsum(frac[::-1])[::-1], 1.0)  # fraction receiving >= sd[i]
    from scipy.special import logsumexp

    eud = float(-logsumexp(-alpha * sd, b=frac) / alpha)
    grid = np.linspace(0.0, float(sd[-1]), nb + 1)
    # fraction receiving >= g: weights of doses >= g
    pos = np.searchsorted(sd, grid, side="left")
    dvh = np.minimum(np.concatenate([cum_top, [0.0]])[pos], 1.0)
    grid.setflags(write=False)
    dvh.setflags(write=False)
    return DoseStatistics(
        mean_Gy=float(np.sum(frac * sd)), min_Gy=float(sd[0]), max_Gy=float(sd[-1]),
        d90_Gy=_d_x(sd, cum_top, 0.9), d50_Gy=_d_x(sd, cum_top, 0.5), d10_Gy=_d_x(sd, cum_top, 0.1),
        eud_Gy=min(max(eud, float(sd[0])), float(sd[-1])), eud_alpha_per_Gy=alpha, n_voxels=int(vals.size),
        weighting=weighting, total_mass_g=total_mass, dvh_dose_Gy=grid, dvh_fraction=dvh)
