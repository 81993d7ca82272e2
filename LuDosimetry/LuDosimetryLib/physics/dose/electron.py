"""Electron transport (condensed-history Monte Carlo with CSDA ranges): radial energy deposition of beta and
monoenergetic electrons."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ...checks import scalar as _scalar
from ..radionuclides import get_nuclide
from ._common import _ELECTRON_REST_MeV, _nuclide


_MC_ELECTRONS = 30000


_MC_STEP_FRACTION = 0.04


_MC_CUTOFF_MeV = 0.010


_MC_BINS = 500


_MC_SEED = 20120101


def _bethe_collision_stopping_power(T_MeV):
    """Collision stopping power of water for electrons (MeV cm²/g), Bethe–Rohrlich–Carlson (ICRU 37)
    with I = 75 eV and the Sternheimer density effect (water: C̄ 3.5017, x0 0.24, x1 2.8004,
    a 0.09116, m 3.4773)."""
    me = _ELECTRON_REST_MeV
    tau = np.asarray(T_MeV, dtype=float) / me
    g = tau + 1.0
    b2 = 1.0 - 1.0 / g ** 2
    x = np.log10(np.sqrt(g ** 2 - 1.0))
    c_bar, x0, x1, a, m = 3.5017, 0.2400, 2.8004, 0.09116, 3.4773
    delta = np.where(x >= x1, 4.6052 * x - c_bar, np.where(x >= x0, 4.6052 * x - c_bar + a * (x1 - x) ** m, 0.0))
    F = 1.0 - b2 + (tau ** 2 / 8.0 - (2.0 * tau + 1.0) * math.log(2.0)) / (tau + 1.0) ** 2
    k = 0.5 * 0.307075 * 0.555087  # 2π r_e² m_e c² N_A × (Z/A of water), MeV cm²/g
    I_over_me = 75.0e-6 / me
    return k / b2 * (np.log(tau ** 2 * (tau + 2.0) / (2.0 * I_over_me ** 2)) + F - delta)


@lru_cache(maxsize=1)
def _csda_table():
    """CSDA range of electrons in water (g/cm²) on a log energy grid 1 keV – 20 MeV."""
    from scipy.integrate import cumulative_trapezoid

    E = np.geomspace(1.0e-3, 20.0, 3000)
    inv_s = 1.0 / _bethe_collision_stopping_power(E)
    R = cumulative_trapezoid(inv_s, E, initial=0.0) + 0.5 * E[0] * inv_s[0]  # ~ linear below 1 keV
    return np.log(E), np.log(R)


def _csda_range_g_per_cm2(E_MeV):
    lE, lR = _csda_table()
    return np.exp(np.interp(np.log(np.maximum(E_MeV, 1.0e-3)), lE, lR))


def _transport_electrons(E0_MeV: np.ndarray, weight_keV: np.ndarray, edges: np.ndarray, rng) -> np.ndarray:
    """Condensed-history transport of electrons from the origin; returns the energy (keV per decay)
    deposited in the radial bins ``edges`` (g/cm²). Each electron carries ``weight_keV`` in total."""
    n = E0_MeV.size
    me = _ELECTRON_REST_MeV
    X0 = 36.08  # radiation length of water, g/cm²
    pos = np.zeros((n, 3))
    u = np.zeros((n, 3))
    u[:, 2] = 1.0  # point source: the radial distribution does not depend on the start direction
    E = E0_MeV.astype(float).copy()
    w = weight_keV / E0_MeV  # keV per decay per MeV deposited
    hist = np.zeros(edges.size - 1)
    nb = edges.size - 1
    inv_dr = nb / edges[-1]
    idx = np.arange(n)
    while idx.size:
        e = E[idx]
        dE = _MC_STEP_FRACTION * e
        last = (e - dE) < _MC_CUTOFF_MeV
        dE = np.where(last, e, dE)
        s = _csda_range_g_per_cm2(e) - np.where(last, 0.0, _csda_range_g_per_cm2(e - dE))
        em = e - 0.5 * dE
        p = np.sqrt(em * (em + 2.0 * me))
        beta2 = (p / (em + me)) ** 2
        # Highland angle over the residual range, turned into a scattering power per g/cm²
        log_term = np.maximum(1.0 + 0.038 * np.log(_csda_range_g_per_cm2(em) / (X0 * beta2)), 0.3)
        theta0 = 13.6 / (p * np.sqrt(beta2)) * log_term * np.sqrt(s / X0)
        P = pos[idx] + u[idx] * (0.5 * s)[:, None]
        r = np.sqrt(np.einsum("ij,ij->i", P, P))
        b = np.minimum((r * inv_dr).astype(np.int64), nb - 1)
        hist += np.bincount(b, weights=dE * w[idx], minlength=nb)
        # deflection: polar angle from a 2-D Gaussian, uniform azimuth
        th = theta0 * np.sqrt(-2.0 * np.log(1.0 - rng.random(idx.size)))
        ph = rng.random(idx.size) * 2.0 * np.pi
        uu = u[idx]
        ct, st, cp, sp = np.cos(th), np.sin(th), np.cos(ph), np.sin(ph)
        wz = uu[:, 2]
        sq = np.sqrt(np.maximum(1.0 - wz ** 2, 0.0))
        safe = sq > 1e-8
        sqs = np.where(safe, sq, 1.0)
        nx = np.where(safe, uu[:, 0] * ct + st * (uu[:, 0] * wz * cp - uu[:, 1] * sp) / sqs, st * cp)
        ny = np.where(safe, uu[:, 1] * ct + st * (uu[:, 1] * wz * cp + uu[:, 0] * sp) / sqs, st * sp)
        nz = np.where(safe, wz * ct - sq * st * cp, np.sign(wz + 1e-300) * ct)
        nu = np.stack([nx, ny, nz], axis=1)
        nu /= np.linalg.norm(nu, axis=1)[:, None]
        u[idx] = nu
        pos[idx] = P + nu * (0.5 * s)[:, None]
        E[idx] = e - dE
        idx = idx[~last]
    return hist


def _allocate(n_total: int, shares: np.ndarray, minimum: int = 200) -> np.ndarray:
    shares = np.asarray(shares, dtype=float)
    n = np.where(shares > 0, np.maximum(minimum, np.floor(n_total * shares / shares.sum())), 0).astype(int)
    return n


@lru_cache(maxsize=16)
def _electron_radial_deposition(canonical: str):
    """Radial energy deposition (keV per decay) of the nuclide's electrons and alphas about a point
    source in water: (bin edges in g/cm², energy per bin). Bin 0 also holds the energy of
    electrons below the transport cut-off and of alphas."""
    nuc = get_nuclide(canonical)
    cut_keV = _MC_CUTOFF_MeV * 1000.0
    local_keV = nuc.alpha_energy_keV
    beta_keV = nuc.beta_minus_energy_keV + nuc.beta_plus_energy_keV
    lines = [(E, y) for E, y in nuc.electron_lines if E >= cut_keV]
    local_keV += sum(E * y for E, y in nuc.electron_lines if E < cut_keV)
    e_max_keV = max([E for E, _ in lines] + [nuc.beta_max_energy_keV, cut_keV])
    r_max = 1.05 * float(_csda_range_g_per_cm2(e_max_keV / 1000.0))
    edges = np.linspace(0.0, r_max, _MC_BINS + 1)
    line_keV = np.array([E * y for E, y in lines])
    comp_shares = np.array([beta_keV if nuc.beta_spectrum_keV else 0.0, line_keV.sum()])
    n_beta, n_lines = _allocate(_MC_ELECTRONS, comp_shares) if comp_shares.sum() > 0 else (0, 0)
    E0, wt = [], []
    if n_beta:
        e, dens = (np.asarray(v, dtype=float) for v in nuc.beta_spectrum_keV)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(e))])
        q = (np.arange(n_beta) + 0.5) / n_beta
        eb = np.interp(q, cdf / cdf[-1], e)
        low = eb < cut_keV
        # stratified samples: each carries the same share of the tabulated mean beta energy
        wb = eb * (beta_keV / eb.sum())
        local_keV += wb[low].sum()
        E0.append(eb[~low] / 1000.0)
        wt.append(wb[~low])
    if n_lines:
        counts = np.maximum(1, np.round(n_lines * line_keV / line_keV.sum())).astype(int)
        for (E, y), k in zip(lines, counts):
            E0.append(np.full(k, E / 1000.0))
            wt.append(np.full(k, E * y / k))
    hist = np.zeros(_MC_BINS)
    if E0:
        rng = np.random.default_rng(_MC_SEED)
        hist = _transport_electrons(np.concatenate(E0), np.concatenate(wt), edges, rng)
    hist[0] += local_keV
    # exact bookkeeping: the total equals the ICRP-107 electron + alpha energy per decay
    total = nuc.local_deposition_keV
    if hist.sum() > 0:
        hist *= total / hist.sum()
    hist.setflags(write=False)
    edges.setflags(write=False)
    return edges, hist


def electron_energy_radius_mm(nuclide="Lu-177", fraction: float = 0.9, density_g_per_ml: float = 1.0) -> float:
    """Radius (mm) of the sphere about a point source that absorbs ``fraction`` of the electron
    energy (X90 for 0.9) in water of ``density_g_per_ml``, from the kernel's electron transport."""
    nuc = _nuclide(nuclide)
    f = _scalar(fraction, "fraction", lo=0.0, hi=1.0)
    rho = _scalar(density_g_per_ml, "density_g_per_ml", positive=True)
    edges, hist = _electron_radial_deposition(nuc.name)
    c = np.concatenate([[0.0], np.cumsum(hist)]) / max(hist.sum(), 1e-300)
    return float(np.interp(f, c, edges) / rho * 10.0)
