"""Radionuclide data come from ICRP-107 (icrp107-database) and radioactivedecay, and match the
reference values of PHYSICS_NOTES (ICRP-107 177Lu: electrons 147.9 keV, photons 35.1 keV,
T1/2 = 6.647 d = 159.5 h; 208.4 keV 11.0 %, 113.0 keV 6.4 %)."""

import dataclasses
import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.physics.radionuclides import KEV_TO_J, Nuclide, get_nuclide, normalise_nuclide_name

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy >= 2 / numpy 1.26


def _line(nuc, energy_keV, tol_keV=0.5):
    hits = [(e, y) for e, y in nuc.photon_lines if abs(e - energy_keV) < tol_keV]
    assert hits, f"no photon line near {energy_keV} keV"
    return max(hits, key=lambda h: h[1])


def test_lu177_matches_icrp107_reference_values():
    nuc = get_nuclide()
    assert nuc.name == "Lu-177"
    assert nuc.half_life_h == pytest.approx(159.5, abs=0.1)  # 6.647 d
    assert nuc.decay_constant_per_h == pytest.approx(math.log(2) / nuc.half_life_h, rel=1e-12)
    assert nuc.beta_minus_energy_keV == pytest.approx(133.3, abs=0.1)
    assert nuc.conversion_electron_energy_keV == pytest.approx(13.5, abs=0.1)
    assert nuc.auger_electron_energy_keV == pytest.approx(1.1, abs=0.05)
    assert nuc.electron_energy_keV == pytest.approx(147.9, abs=0.1)
    assert nuc.photon_energy_keV == pytest.approx(35.1, abs=0.1)
    assert nuc.alpha_energy_keV == 0.0
    assert nuc.electron_energy_J == pytest.approx(147.9 * 1.602176634e-16, rel=1e-3)
    e208, y208 = _line(nuc, 208.4)
    e113, y113 = _line(nuc, 113.0)
    assert y208 == pytest.approx(0.110, abs=0.002) and y113 == pytest.approx(0.064, abs=0.002)
    # the photon line list is the photon energy per decay
    assert sum(e * y for e, y in nuc.photon_lines) == pytest.approx(nuc.photon_energy_keV, rel=1e-9)
    assert nuc.beta_max_energy_keV == pytest.approx(497.8, abs=1.0)


def test_lu177_local_deposition_factor():
    """PHYSICS_NOTES check: 147.9 keV/decay ≈ 0.0853 Gy·g/(MBq·h)."""
    nuc = get_nuclide("Lu-177")
    expected = 147.9 * KEV_TO_J * 3600.0 * 1e6 * 1e3
    assert nuc.local_deposition_Gy_g_per_MBq_h == pytest.approx(expected, rel=1e-3)
    assert nuc.local_deposition_Gy_g_per_MBq_h == pytest.approx(0.0853, abs=0.0001)


def test_beta_spectrum_is_normalised_per_decay():
    for name in ("Lu-177", "Y-90", "I-131", "Tb-161"):
        nuc = get_nuclide(name)
        e, dens = (np.asarray(v) for v in nuc.beta_spectrum_keV)
        assert _trapezoid(dens, e) == pytest.approx(1.0, abs=0.005), name  # one beta per decay
        assert _trapezoid(e * dens, e) == pytest.approx(nuc.beta_minus_energy_keV, rel=0.005), name


@pytest.mark.parametrize("name, half_life_h, electrons_keV, photons_keV", [
    ("Y-90", 64.1, 933.1, 0.0),        # pure beta emitter, mean beta 932.9 keV
    ("I-131", 192.5, 191.8, 382.8),    # 8.02 d; 364 keV line
    ("Tb-161", 165.7, 202.5, 36.5),    # 6.906 d; many conversion and Auger electrons
])
def test_other_therapy_nuclides(name, half_life_h, electrons_keV, photons_keV):
    nuc = get_nuclide(name)
    assert nuc.name == name
    assert nuc.half_life_h == pytest.approx(half_life_h, abs=0.1)
    assert nuc.electron_energy_keV == pytest.approx(electrons_keV, abs=0.2)
    assert nuc.photon_energy_keV == pytest.approx(photons_keV, abs=0.2)


def test_i131_main_gamma_line_and_tb161_auger():
    e, y = _line(get_nuclide("I-131"), 364.5, tol_keV=1.0)
    assert y == pytest.approx(0.815, abs=0.01)
    tb = get_nuclide("Tb-161")
    lu = get_nuclide("Lu-177")
    assert tb.auger_electron_energy_keV > 5 * lu.auger_electron_energy_keV  # the point of 161Tb


@pytest.mark.parametrize("variant", ["Lu-177", "Lu177", "177Lu", "lu-177", "LU177", " 177-Lu ", "177lu"])
def test_name_variants_and_cache(variant):
    assert normalise_nuclide_name(variant) == "Lu-177"
    assert get_nuclide(variant) is get_nuclide("Lu-177")  # cached


def test_metastable_name():
    assert normalise_nuclide_name("Lu-177m") == "Lu-177m"
    assert get_nuclide("177mLu").half_life_h > 3000  # 160 d, distinct from the ground state


@pytest.mark.parametrize("bad", ["Xx-999", "Lu-999", "lutetium", "", None, 177])
def test_unknown_nuclide_is_a_clear_error(bad):
    with pytest.raises(InputDataError, match="name"):
        get_nuclide(bad)


def test_nuclide_is_immutable_and_passes_through():
    nuc = get_nuclide("Lu-177")
    assert isinstance(nuc, Nuclide) and get_nuclide(nuc) is nuc
    with pytest.raises(dataclasses.FrozenInstanceError):
        nuc.half_life_h = 1.0


@pytest.mark.parametrize("name", ["Lu-177", "Y-90", "I-131", "Tb-161", "Lu-177m"])
def test_half_life_matches_radioactivedecay(name):
    """The half-life is read from the ICRP-107 records of icrp107-database (no radioactivedecay
    import at run time); radioactivedecay (a test dependency, same ICRP-107 data) agrees to 1e-9."""
    rd = pytest.importorskip("radioactivedecay")
    nuc = get_nuclide(name)
    assert nuc.half_life_h == pytest.approx(float(rd.Nuclide(nuc.name).half_life("h")), rel=1e-9)


def test_run_time_import_does_not_load_radioactivedecay():
    import subprocess
    import sys

    code = ("import sys; from LuDosimetryLib.physics.radionuclides import get_nuclide; get_nuclide('Lu-177'); "
            "print('radioactivedecay' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": __import__("os").pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"
