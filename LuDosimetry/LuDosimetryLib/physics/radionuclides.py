"""Radionuclide decay data: half-life and energy emitted per decay, from maintained packages.

Nothing here is typed in: emissions come from the ICRP Publication 107 tables shipped by the
PyPI package ``icrp107-database`` (OpenGATE collaboration), the half-life from the same
ICRP-107 records (cross-checked against ``radioactivedecay`` in the tests). Only the emissions of the
nuclide itself are included (progeny are not; for 177Lu, 90Y and 161Tb the daughter is stable,
for 131I the 1 % branch to 131mXe is not included).

Energy bookkeeping per decay (ICRP-107 radiation types)
-------------------------------------------------------
electrons   beta- + beta+ kinetic energy (mean), internal-conversion electrons ("IE") and
            Auger electrons: ``electron_energy_keV`` (177Lu: 133.3 + 13.5 + 1.1 = 147.9 keV)
alphas      alpha particles and alpha recoil nuclei: ``alpha_energy_keV`` (0 for the beta emitters)
photons     gamma rays + X rays + annihilation photons: ``photon_energy_keV`` (177Lu: 35.1 keV)
            and the discrete line list ``photon_lines`` (energy_keV, yield per decay)

``local_deposition_keV`` = electrons + alphas: the non-penetrating energy that the local
energy deposition (LED) method deposits in the voxel/VOI of the decay; photons are assumed to
escape (EANM 2022 convention for 177Lu).

Example
-------
>>> nuc = get_nuclide("177Lu")
>>> round(nuc.half_life_h, 1), round(nuc.electron_energy_keV, 1)
(159.5, 147.9)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InputDataError

__all__ = ["Nuclide", "get_nuclide", "normalise_nuclide_name", "KEV_TO_J", "DEFAULT_NUCLIDE"]

#: Joule per keV (CODATA exact elementary charge).
KEV_TO_J = 1.602176634e-16
#: The default therapy nuclide of this project.
DEFAULT_NUCLIDE = "Lu-177"

_ELECTRON_TYPES = ("beta-", "beta+", "IE", "auger")
_ALPHA_TYPES = ("alpha", "alpha recoil")
_PHOTON_TYPES = ("gamma", "X", "annihilation")
_S_PER_H = 3600.0
_BQ_PER_MBQ = 1.0e6


@dataclass(frozen=True)
class Nuclide:
    """Decay data of one radionuclide (ICRP-107).

    Attributes
    ----------
    name: canonical name, e.g. ``"Lu-177"``.
    half_life_h: physical half-life (h), from ICRP-107 (icrp107-database).
    decay_constant_per_h: ln 2 / half-life (1/h).
    beta_minus_energy_keV, beta_plus_energy_keV, conversion_electron_energy_keV,
    auger_electron_energy_keV: mean energy per decay of each electron type (keV).
    electron_energy_keV: sum of the four above (keV per decay).
    alpha_energy_keV: alpha + alpha-recoil energy per decay (keV).
    photon_energy_keV: gamma + X + annihilation energy per decay (keV).
    photon_lines: tuple of (energy_keV, yield per decay), sorted by energy.
    electron_lines: tuple of (energy_keV, yield per decay) of discrete electrons (IE + Auger).
    beta_spectrum_keV: tuple (energy_keV, density per keV per decay) of the continuous beta
        spectrum (beta- and beta+ together) or ``None`` if the nuclide has none.
    source: provenance string.
    """

    name: str
    half_life_h: float
    decay_constant_per_h: float
    beta_minus_energy_keV: float
    beta_plus_energy_keV: float
    conversion_electron_energy_keV: float
    auger_electron_energy_keV: float
    electron_energy_keV: float
    alpha_energy_keV: float
    photon_energy_keV: float
    photon_lines: tuple
    electron_lines: tuple
    beta_spectrum_keV: tuple | None
    source: str

    @property
    def electron_energy_J(self) -> float:
        """Mean electron energy per decay (J)."""
        return self.electron_energy_keV * KEV_TO_J

    @property
    def photon_energy_J(self) -> float:
        """Mean photon energy per decay (J)."""
        return self.photon_energy_keV * KEV_TO_J

    @property
    def local_deposition_keV(self) -> float:
        """Energy per decay deposited locally by the LED method: electrons + alphas (keV)."""
        return self.electron_energy_keV + self.alpha_energy_keV

    @property
    def local_deposition_J(self) -> float:
        """Energy per decay deposited locally by the LED method (J)."""
        return self.local_deposition_keV * KEV_TO_J

    @property
    def local_deposition_Gy_g_per_MBq_h(self) -> float:
        """LED absorbed dose per time-integrated activity per mass: Gy·g/(MBq·h).

        D (Gy) = Ã (MBq·h) × this / m (g). 177Lu: 0.0853 Gy·g/(MBq·h).
        """
        return self.local_deposition_J * _BQ_PER_MBQ * _S_PER_H * 1000.0  # /kg -> /g

    @property
    def beta_max_energy_keV(self) -> float:
        """End-point energy of the beta spectrum (keV); 0 without a beta spectrum."""
        if not self.beta_spectrum_keV:
            return 0.0
        e, w = self.beta_spectrum_keV
        nz = np.nonzero(np.asarray(w) > 0)[0]
        return float(np.asarray(e)[min(nz[-1] + 1, len(e) - 1)]) if len(nz) else 0.0


_NAME_RE = (
    re.compile(r"^(?P<el>[A-Za-z]{1,2})-?(?P<a>\d{1,3})(?P<m>m\d?|n)?$"),
    re.compile(r"^(?P<a>\d{1,3})(?P<m>m\d?|n)?-?(?P<el>[A-Za-z]{1,2})$"),
)


def normalise_nuclide_name(name) -> str:
    """Canonical ICRP-107 name ("Lu-177") of ``name`` ("Lu177", "177Lu", "lu-177", "Lu-177m").

    Raises InputDataError naming ``name`` when it is not a nuclide name.
    """
    if isinstance(name, Nuclide):
        return name.name
    if not isinstance(name, str) or not name.strip():
        raise InputDataError(f"name: expected a radionuclide name such as 'Lu-177', got {name!r}")
    s = re.sub(r"[\s_]", "", name.strip())
    for rx in _NAME_RE:
        m = rx.match(s)
        if m:
            el = m.group("el").capitalize()
            meta = (m.group("m") or "").lower()
            return f"{el}-{int(m.group('a'))}{meta}"
    raise InputDataError(f"name: {name!r} is not a radionuclide name (expected e.g. 'Lu-177', 'Lu177' or '177Lu')")


def _icrp107_spectrum(canonical: str, kind: str):
    """(energies_MeV, weights) of one ICRP-107 radiation type via the icrp107-database API."""
    from icrp107_database import get_icrp107_spectrum

    for rad in (canonical, canonical.replace("-", "")):
        try:
            d = get_icrp107_spectrum(rad, kind)
            return np.asarray(d["energies"], dtype=float), np.asarray(d["weights"], dtype=float), d
        except Exception:  # the package raises a bare Exception for unknown nuclides
            continue
    raise InputDataError(f"name: {canonical!r} is not a nuclide of the ICRP-107 database (icrp107-database); "
                         "check the spelling, e.g. 'Lu-177', 'Y-90', 'I-131', 'Tb-161'")


# ICRP-107 time units (the .RAD files' convention; a year is 365.2422 d there)
_TIME_UNIT_H = {"us": 1e-6 / 3600.0, "ms": 1e-3 / 3600.0, "s": 1.0 / 3600.0, "m": 1.0 / 60.0, "h": 1.0,
                "d": 24.0, "y": 365.2422 * 24.0}


def _half_life_h(canonical: str, record: dict | None = None) -> float:
    """Half-life (h) from the ICRP-107 record that icrp107-database returns with every spectrum
    (``half_life`` in ``time_unit``). No other package is imported for it (``radioactivedecay``,
    which reads the same ICRP-107 data, costs ~2 s and 100 MiB at start-up; a test cross-checks
    the two)."""
    if record is None:
        record = _icrp107_spectrum(canonical, "beta-")[2]
    unit = str(record.get("time_unit", "")).strip()
    if unit not in _TIME_UNIT_H or not float(record.get("half_life", float("nan"))) > 0:
        raise InputDataError(f"name: the ICRP-107 record of {canonical} has no usable half-life "
                             f"({record.get('half_life')!r} {unit!r})")
    return float(record["half_life"]) * _TIME_UNIT_H[unit]


def _mean_keV(e_MeV, w) -> float:
    return float(np.sum(e_MeV * w) * 1000.0) if e_MeV.size else 0.0


@lru_cache(maxsize=64)
def _load(canonical: str) -> Nuclide:
    e_bm, w_bm, record = _icrp107_spectrum(canonical, "beta-")
    parts = {"beta-": (e_bm, w_bm)}
    for kind in ("beta+", "IE", "auger", "alpha", "alpha recoil", "gamma", "X", "annihilation", "b-spectra"):
        e, w, _ = _icrp107_spectrum(canonical, kind)
        parts[kind] = (e, w)
    mean = {k: _mean_keV(*parts[k]) for k in parts if k != "b-spectra"}
    photon_lines = []
    for k in _PHOTON_TYPES:
        e, w = parts[k]
        photon_lines += [(float(ei) * 1000.0, float(wi)) for ei, wi in zip(e, w) if wi > 0]
    electron_lines = []
    for k in ("IE", "auger"):
        e, w = parts[k]
        electron_lines += [(float(ei) * 1000.0, float(wi)) for ei, wi in zip(e, w) if wi > 0]
    e_b, w_b = parts["b-spectra"]
    beta = None
    if e_b.size >= 2 and np.any(w_b > 0):
        # ICRP-107 .BET: number of beta particles per MeV per decay -> per keV
        beta = (tuple(float(x) * 1000.0 for x in e_b), tuple(float(x) / 1000.0 for x in w_b))
    t_half_h = _half_life_h(canonical, record)
    electrons = sum(mean[k] for k in _ELECTRON_TYPES)
    return Nuclide(
        name=canonical,
        half_life_h=t_half_h,
        decay_constant_per_h=math.log(2.0) / t_half_h,
        beta_minus_energy_keV=mean["beta-"],
        beta_plus_energy_keV=mean["beta+"],
        conversion_electron_energy_keV=mean["IE"],
        auger_electron_energy_keV=mean["auger"],
        electron_energy_keV=electrons,
        alpha_energy_keV=sum(mean[k] for k in _ALPHA_TYPES),
        photon_energy_keV=sum(mean[k] for k in _PHOTON_TYPES),
        photon_lines=tuple(sorted(photon_lines)),
        electron_lines=tuple(sorted(electron_lines)),
        beta_spectrum_keV=beta,
        source="ICRP Publication 107 (icrp107-database), emissions and half-life",
    )


def get_nuclide(name=DEFAULT_NUCLIDE) -> Nuclide:
    """Decay data of ``name`` (default ``"Lu-177"``; "Lu177", "177Lu", "lu-177" accepted).

    A :class:`Nuclide` is returned unchanged. Results are cached. Unknown names raise
    :class:`~LuDosimetryLib.errors.InputDataError` naming the argument.
    """
    if isinstance(name, Nuclide):
        return name
    return _load(normalise_nuclide_name(name))
