"""Dose module against analytic truth: HU→density, local energy deposition (0.0853 Gy·g/(MBq·h)
for 177Lu), voxel S-value kernels (energy conservation, 500 mL sphere vs LED, published Monte
Carlo kernel), FFT convolution, DVH statistics, and input validation."""

import math
import time

import numpy as np
import pytest

from LuDosimetryLib.physics import dose
from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.physics.radionuclides import get_nuclide

LU = get_nuclide("Lu-177")
VOXEL_ML_48 = 4.8 ** 3 / 1000.0


# ----------------------------------------------------------------------------- HU -> density

def test_hu_to_density_default_table_and_floor():
    hu = np.array([-1000.0, -98.0, 14.0, 23.0, 100.0, 1600.0, 3000.0, 5000.0])
    rho = dose.hu_to_density_g_per_ml(hu, min_density_g_per_ml=0.0)
    assert rho == pytest.approx([0.00121, 0.93, 1.03, 1.031, 1.1199, 1.9642, 2.8, 2.8], abs=1e-9)
    # linear between points, scalar in/out
    assert dose.hu_to_density_g_per_ml(-42.0) == pytest.approx(0.93 + 56 * (1.03 - 0.93) / 112)
    assert dose.hu_to_density_g_per_ml(-800.0) == pytest.approx(0.00121 + 200 * (0.93 - 0.00121) / 902)  # lung
    # air is floored so that it cannot blow up the dose; lung (> 0.1 g/mL) is untouched
    assert dose.hu_to_density_g_per_ml(-1000.0) == dose.DEFAULT_MIN_DENSITY_G_PER_ML == 0.1
    assert dose.hu_to_density_g_per_ml(-3024.0) == 0.1
    img = np.full((2, 3, 4), 40, dtype=np.int16)
    assert dose.hu_to_density_g_per_ml(img).shape == (2, 3, 4)


def test_hu_to_density_custom_calibration():
    cal = {"hu": [-1000, 0, 2000], "density_g_per_ml": [0.0, 1.0, 2.0]}
    assert dose.hu_to_density_g_per_ml(1000, cal) == pytest.approx(1.5)
    assert dose.hu_to_density_g_per_ml(-500, [(-1000, 0.0), (0, 1.0)], min_density_g_per_ml=0) == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"hu": [0.0, np.nan]}, "hu"),
    ({"hu": 0, "calibration": {"hu": [0, -10], "density_g_per_ml": [1, 2]}}, "calibration"),
    ({"hu": 0, "calibration": {"hu": [0, 10], "density_g_per_ml": [2, 1]}}, "calibration"),
    ({"hu": 0, "calibration": {"hu": [0, 10]}}, "calibration"),
    ({"hu": 0, "min_density_g_per_ml": -1}, "min_density_g_per_ml"),
])
def test_hu_to_density_validation(kwargs, match):
    with pytest.raises(InputDataError, match=match):
        dose.hu_to_density_g_per_ml(**kwargs)


# ----------------------------------------------------------------------------- LED

def test_led_factor_and_voi_dose():
    assert dose.led_dose_factor_Gy_g_per_MBq_h("Lu-177") == pytest.approx(0.0853, abs=1e-4)
    # 1000 MBq·h in 100 g: 1000 × 3600 × 1e6 × 147.9 keV / 0.1 kg
    expected = 1000 * 3600 * 1e6 * LU.electron_energy_keV * 1.602176634e-16 / 0.1
    assert dose.led_dose_Gy(1000.0, 100.0, LU) == pytest.approx(expected, rel=1e-12)
    assert dose.voi_led_dose_Gy(1000.0, 100.0) == pytest.approx(expected, rel=1e-12)
    assert dose.led_dose_rate_Gy_per_h(1000.0, 100.0, "177Lu") == pytest.approx(expected, rel=1e-12)
    full = dose.led_dose_Gy(1000.0, 100.0, photon_absorbed_fraction=1.0)
    assert full / expected == pytest.approx((LU.electron_energy_keV + LU.photon_energy_keV) / LU.electron_energy_keV)


def test_led_voxelwise_with_density_map():
    tia = np.array([[[0.0, 10.0, 20.0]]])
    rho = np.array([[[1.0, 1.04, 2.0]]])
    d = dose.led_dose_Gy(tia, density_g_per_ml=rho, voxel_volume_ml=VOXEL_ML_48)
    assert d.shape == tia.shape
    assert d[0, 0, 1] == pytest.approx(10 * 0.08532 / (1.04 * VOXEL_ML_48), rel=1e-3)
    assert d[0, 0, 2] == pytest.approx(20 * 0.08532 / (2.0 * VOXEL_ML_48), rel=1e-3)
    # default density is soft tissue 1.04 g/mL
    assert dose.led_dose_Gy(tia, voxel_volume_ml=VOXEL_ML_48)[0, 0, 1] == pytest.approx(d[0, 0, 1])


@pytest.mark.parametrize("call, match", [
    (lambda: dose.led_dose_Gy(-1.0, 10.0), "tia_MBq_h"),
    (lambda: dose.led_dose_Gy(np.nan, 10.0), "tia_MBq_h"),
    (lambda: dose.led_dose_Gy(1.0, 0.0), "mass_g"),
    (lambda: dose.led_dose_Gy(1.0), "mass_g"),
    (lambda: dose.led_dose_Gy(1.0, 1.0, density_g_per_ml=1.0), "mass_g"),
    (lambda: dose.led_dose_Gy(np.ones(3), np.ones(4)), "mass_g"),
    (lambda: dose.led_dose_Gy(1.0, voxel_volume_ml=0.1, density_g_per_ml=0.0), "density_g_per_ml"),
    (lambda: dose.led_dose_Gy(1.0, 10.0, "Xx-1"), "nuclide"),
    (lambda: dose.led_dose_Gy(1.0, 10.0, photon_absorbed_fraction=1.5), "photon_absorbed_fraction"),
    (lambda: dose.led_dose_rate_Gy_per_h([1.0, -2.0], 10.0), "activity_MBq"),
    (lambda: dose.voi_led_dose_Gy(1.0, -5.0), "mass_g"),
])
def test_led_validation(call, match):
    with pytest.raises(InputDataError, match=match):
        call()


# ----------------------------------------------------------------------------- physics ingredients

def test_electron_ranges_against_estar_and_berger():
    # NIST ESTAR CSDA ranges in water (g/cm²); radiative losses are neglected (< 1 %)
    for E, R in ((0.01, 2.515e-4), (0.1, 1.431e-2), (0.5, 0.1766), (1.0, 0.4367), (2.0, 0.9785)):
        assert float(dose.electron._csda_range_g_per_cm2(E)) == pytest.approx(R, rel=0.015)
    # X90 of 90Y in water: Berger 1971 (MIRD Pamphlet 7) 5.3 mm; model 5.2 mm
    assert dose.electron_energy_radius_mm("Y-90", 0.9, 1.0) == pytest.approx(5.3, rel=0.10)
    assert dose.electron_energy_radius_mm("Lu-177", 0.9, 1.0) < 1.0  # 177Lu: sub-millimetre


def test_photon_absorption_conserves_energy():
    assert dose.photon_energy_absorbed_in_sphere_keV(LU, 0.0) < 0.05  # only sub-keV X-rays (0.025 keV), local
    # an (almost) infinite medium absorbs all photon energy: the build-up is renormalised per line
    assert dose.photon_energy_absorbed_in_sphere_keV(LU, 5000.0) == pytest.approx(LU.photon_energy_keV, rel=0.005)
    radii = [10, 30, 50, 100, 300]
    e = [dose.photon_energy_absorbed_in_sphere_keV(LU, r) for r in radii]
    assert all(np.diff(e) > 0)
    assert 0.1 < e[2] / LU.photon_energy_keV < 0.3  # ~19 % absorbed within 5 cm for 177Lu


# ----------------------------------------------------------------------------- kernels

def _photon_energy_in_box_keV(nuc, half_extent_mm, density=dose.SOFT_TISSUE_DENSITY_G_PER_ML):
    """Independent check: ∫ ε_γ(r)·(fraction of the sphere of radius r inside the box) dr."""
    n = 20000
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5 ** 0.5) * i
    s = np.sqrt(1 - z * z)
    d = np.abs(np.stack([s * np.cos(phi), s * np.sin(phi), z], 1)) / np.asarray(half_extent_mm)
    reach = 1.0 / d.max(axis=1)  # radius at which each direction leaves the box
    r = np.linspace(0, float(np.max(half_extent_mm)) * math.sqrt(3), 4001)
    rm = 0.5 * (r[1:] + r[:-1])
    inside = (reach[None, :] >= rm[:, None]).mean(axis=1)
    return float(np.sum(dose.photon._photon_radial_keV_per_mm(nuc, rm, density) * inside * np.diff(r)))


def test_kernel_energy_balance_isotropic_and_anisotropic():
    """Σ S × voxel mass = electron energy + photon energy absorbed inside the kernel box (±5 %)."""
    for vs, size in ((4.8, None), ((2.0, 2.0, 4.0), (21, 21, 11))):
        k = dose.voxel_s_value_kernel("Lu-177", vs, size)
        h = np.asarray(dose._common._voxel_size(vs))
        half = (np.asarray(k.shape[::-1]) // 2 + 0.5) * h  # (x, y, z) half extent of the box
        expected = LU.electron_energy_keV + _photon_energy_in_box_keV(LU, half)
        assert k.absorbed_energy_per_decay_keV() == pytest.approx(expected, rel=0.05)
        assert k.absorbed_energy_per_decay_keV() == pytest.approx(expected, rel=0.01)  # observed 0.01 %
        v = k.values_mGy_per_MBq_s
        assert np.allclose(v, v[::-1, ::-1, ::-1]) and v.min() >= 0
    k = dose.voxel_s_value_kernel("Lu-177", 4.8)
    assert k.shape == (43, 43, 43) and k.voxel_size_mm == (4.8, 4.8, 4.8)
    ke = dose.voxel_s_value_kernel("Lu-177", 4.8, include_photons=False)
    assert ke.absorbed_energy_per_decay_keV() == pytest.approx(LU.electron_energy_keV, rel=1e-3)
    assert ke.shape == (3, 3, 3)  # electron range 1.8 mm < one voxel
    assert dose.voxel_s_value_kernel("Lu-177", 4.8) is k  # cached
    assert not k.values_mGy_per_MBq_s.flags.writeable


def test_kernel_other_nuclides_conserve_electron_energy():
    for name, vs in (("Y-90", 4.8), ("Tb-161", 2.0), ("I-131", 4.8)):
        ke = dose.voxel_s_value_kernel(name, vs, include_photons=False)
        assert ke.absorbed_energy_per_decay_keV() == pytest.approx(get_nuclide(name).electron_energy_keV, rel=0.005)


# Lanconelli et al. 2012 (Phys Med Biol 57:517) Monte Carlo S-values, 177Lu, soft tissue, 2.21 mm
# voxels, mGy/(MBq·s); a few entries of the published 11³ octant table.
LANCONELLI_LU177_2P21 = {(0, 0, 0): 1.66, (0, 0, 1): 4.83e-2, (0, 1, 1): 2.52e-3, (0, 0, 2): 7.70e-5,
                         (2, 2, 2): 2.42e-5, (0, 0, 5): 1.18e-5, (5, 5, 5): 3.98e-6}
LANCONELLI_LU177_2P21_SUM_KEV = 140.1  # Σ S × m of that table (ρ 1.04): its source has less electron energy


def test_kernel_against_published_monte_carlo():
    k = dose.voxel_s_value_kernel("Lu-177", 2.21, 11)
    v = k.values_mGy_per_MBq_s
    S = {ijk: v[5 + ijk[2], 5 + ijk[1], 5 + ijk[0]] for ijk in LANCONELLI_LU177_2P21}
    # photon-dominated voxels (beyond the 1.8 mm electron range): absolute agreement within 10 %
    for ijk in ((0, 0, 2), (2, 2, 2), (0, 0, 5), (5, 5, 5)):
        assert S[ijk] == pytest.approx(LANCONELLI_LU177_2P21[ijk], rel=0.10), ijk
    # electron voxels: the two sources differ in electron energy per decay, so compare the fraction
    # of the kernel's energy absorbed in the source voxel (84 % vs 85 %) and next to it
    own = k.absorbed_energy_per_decay_keV()
    frac = {ijk: S[ijk] / own for ijk in ((0, 0, 0), (0, 0, 1), (0, 1, 1))}
    ref = {ijk: LANCONELLI_LU177_2P21[ijk] / LANCONELLI_LU177_2P21_SUM_KEV for ijk in frac}
    assert frac[(0, 0, 0)] == pytest.approx(ref[(0, 0, 0)], rel=0.03)
    assert frac[(0, 0, 1)] == pytest.approx(ref[(0, 0, 1)], rel=0.15)
    assert frac[(0, 1, 1)] == pytest.approx(ref[(0, 1, 1)], rel=0.25)


def test_uniform_500ml_sphere_centre_dose_led_vs_vsv():
    """Centre of a uniform 500 mL sphere (4.8 mm voxels): VSV equals LED within 3 %.

    LED deposits the electron energy only; the VSV kernel also carries photons. So compare
    electron-only VSV with LED, and the full VSV with LED plus the photon energy absorbed within
    the sphere radius (independent 1-D integral); photons add ~4 % at the centre."""
    h = 4.8
    R = (3 * 500e3 / (4 * math.pi)) ** (1 / 3)
    n = 41
    c = n // 2
    z, y, x = np.mgrid[:n, :n, :n]
    sphere = ((x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2) * h * h <= R * R
    activity = sphere * 1.0  # 1 MBq per voxel
    full = dose.vsv_dose_rate_Gy_per_h(activity, dose.voxel_s_value_kernel("Lu-177", h), voxel_size_mm=h)
    elec = dose.vsv_dose_rate_Gy_per_h(activity, dose.voxel_s_value_kernel("Lu-177", h, include_photons=False))
    led = dose.led_dose_rate_Gy_per_h(1.0, voxel_volume_ml=VOXEL_ML_48, density_g_per_ml=1.04)
    phi = dose.photon_energy_absorbed_in_sphere_keV(LU, R) / LU.photon_energy_keV
    led_ph = dose.led_dose_rate_Gy_per_h(1.0, voxel_volume_ml=VOXEL_ML_48, density_g_per_ml=1.04,
                                         photon_absorbed_fraction=phi)
    assert elec[c, c, c] == pytest.approx(led, rel=0.03)      # observed 0.00 %
    assert full[c, c, c] == pytest.approx(led_ph, rel=0.03)   # observed 0.02 %
    assert 1.02 < full[c, c, c] / led < 1.06                   # photons add 4.4 %
    assert led == pytest.approx(0.0853 * 1.0 / (1.04 * VOXEL_ML_48), rel=1e-3)


def test_kernel_validation():
    with pytest.raises(InputDataError, match="voxel_size_mm"):
        dose.voxel_s_value_kernel("Lu-177", -1.0)
    with pytest.raises(InputDataError, match="voxel_size_mm"):
        dose.voxel_s_value_kernel("Lu-177", (1.0, 2.0))
    with pytest.raises(InputDataError, match="size_voxels"):
        dose.voxel_s_value_kernel("Lu-177", 4.8, 10)
    with pytest.raises(InputDataError, match="nuclide"):
        dose.voxel_s_value_kernel("Zz-1", 4.8)
    with pytest.raises(InputDataError, match="include_"):
        dose.voxel_s_value_kernel("Lu-177", 4.8, include_electrons=False, include_photons=False)


# ----------------------------------------------------------------------------- Lanconelli files

def _write_octant(path, n, header="Lu177 - 3.00mm - Soft tissue", value=lambda i, j, k: 1.0 / (1 + i + 2 * j + 3 * k)):
    lines = [header, "i\tj\tk\tS [mGy/(MBq·s)]"]
    for i in range(n + 1):
        for j in range(n + 1):
            for k in range(n + 1):
                lines.append(f"{i}\t{j}\t{k}\t{value(i, j, k):.6E}")
    path.write_text("\n".join(lines) + "\n")


def test_load_lanconelli_kernel_mirrors_octant(tmp_path):
    p = tmp_path / "lu177_3mm.txt"
    _write_octant(p, 2)
    k = dose.load_lanconelli_kernel(p)
    v = k.values_mGy_per_MBq_s
    assert v.shape == (5, 5, 5) and k.voxel_size_mm == (3.0, 3.0, 3.0) and k.nuclide == "Lu-177"
    # array [z, y, x] = [2 + k, 2 + j, 2 + i], mirrored in every axis
    for (i, j, kk) in ((0, 0, 0), (1, 0, 0), (0, 2, 1), (2, 1, 2)):
        ref = 1.0 / (1 + i + 2 * j + 3 * kk)
        for sz in (1, -1):
            for sy in (1, -1):
                for sx in (1, -1):
                    assert v[2 + sz * kk, 2 + sy * j, 2 + sx * i] == pytest.approx(ref, rel=1e-6)
    k2 = dose.load_lanconelli_kernel(p, voxel_size_mm=2.5, nuclide="Lu-177")
    assert k2.voxel_size_mm == (2.5, 2.5, 2.5) and k2.nuclide == "Lu-177"


def test_load_lanconelli_kernel_validation(tmp_path):
    with pytest.raises(InputDataError, match="path"):
        dose.load_lanconelli_kernel(tmp_path / "missing.txt")
    p = tmp_path / "incomplete.txt"
    _write_octant(p, 2)
    p.write_text("\n".join(p.read_text().splitlines()[:-1]))
    with pytest.raises(InputDataError, match="incomplete octant"):
        dose.load_lanconelli_kernel(p)
    p = tmp_path / "negative.txt"
    _write_octant(p, 1, value=lambda i, j, k: -1.0)
    with pytest.raises(InputDataError, match="S-values"):
        dose.load_lanconelli_kernel(p)
    p = tmp_path / "nosize.txt"
    _write_octant(p, 1, header="a kernel")
    with pytest.raises(InputDataError, match="voxel_size_mm"):
        dose.load_lanconelli_kernel(p)


# ----------------------------------------------------------------------------- convolution

def test_vsv_point_source_reproduces_kernel_and_density_scaling(tmp_path):
    p = tmp_path / "k.txt"
    _write_octant(p, 2)
    k = dose.load_lanconelli_kernel(p)
    a = np.zeros((9, 9, 9))
    a[4, 4, 4] = 2.0  # MBq
    rate = dose.vsv_dose_rate_Gy_per_h(a, k, voxel_size_mm=(3, 3, 3))
    # mGy/(MBq·s) × MBq × 3.6 = Gy/h
    assert np.allclose(rate[2:7, 2:7, 2:7], 2.0 * 3.6 * k.values_mGy_per_MBq_s, rtol=1e-9, atol=1e-12)
    assert rate[0].max() == pytest.approx(0.0, abs=1e-12)
    rho = np.full(a.shape, 2.08)
    rho[4, 4, 5] = 0.0012  # air next to the source: floored at 0.1 g/mL
    scaled = dose.vsv_dose_rate_Gy_per_h(a, k, rho)
    assert scaled[4, 4, 4] == pytest.approx(rate[4, 4, 4] * 1.04 / 2.08)
    assert scaled[4, 4, 5] == pytest.approx(rate[4, 4, 5] * 1.04 / 0.1)
    tia = dose.vsv_dose_Gy(a * 10.0, k)
    assert tia[4, 4, 4] == pytest.approx(10.0 * rate[4, 4, 4])


def test_vsv_validation():
    k = dose.voxel_s_value_kernel("Lu-177", 4.8, 3, include_photons=False)
    a = np.ones((5, 5, 5))
    bad = a.copy()
    bad[0, 0, 0] = np.nan
    cases = [
        (lambda: dose.vsv_dose_rate_Gy_per_h(bad, k), "activity_MBq"),
        (lambda: dose.vsv_dose_rate_Gy_per_h(-a, k), "activity_MBq"),
        (lambda: dose.vsv_dose_rate_Gy_per_h(np.ones((5, 5)), k), "activity_MBq"),
        (lambda: dose.vsv_dose_rate_Gy_per_h(a, np.ones((3, 3, 3))), "kernel"),
        (lambda: dose.vsv_dose_rate_Gy_per_h(a, k, voxel_size_mm=4.0), "voxel_size_mm"),
        (lambda: dose.vsv_dose_rate_Gy_per_h(a, k, np.ones((4, 5, 5))), "density_g_per_ml"),
        (lambda: dose.vsv_dose_Gy(bad, k), "tia_MBq_h"),
    ]
    for call, match in cases:
        with pytest.raises(InputDataError, match=match):
            call()


def test_dose_rate_passthrough_units():
    m = np.full((2, 2, 2), 2.0)
    assert np.array_equal(dose.dose_rate_passthrough(m, "Gy/h"), m)
    assert dose.dose_rate_passthrough(m, "mGy/h")[0, 0, 0] == pytest.approx(0.002)
    assert dose.dose_rate_passthrough(m, "Gy/s")[0, 0, 0] == pytest.approx(7200.0)
    with pytest.raises(InputDataError, match="units.*activity"):
        dose.dose_rate_passthrough(m, "Bq/mL")
    with pytest.raises(InputDataError, match="dose_rate"):
        dose.dose_rate_passthrough(-m, "Gy/h")


def test_vsv_128_cubed_under_2_seconds():
    k = dose.voxel_s_value_kernel("Lu-177", 4.8)  # 43³ kernel (100 mm photon extent)
    a = np.random.default_rng(1).random((128, 128, 128))
    dose.vsv_dose_rate_Gy_per_h(a[:32, :32, :32], k)  # warm-up (FFT plans)
    t0 = time.perf_counter()
    out = dose.vsv_dose_rate_Gy_per_h(a, k)
    elapsed = time.perf_counter() - t0
    assert out.shape == a.shape and np.all(np.isfinite(out))
    assert elapsed < 2.0, f"128³ VSV took {elapsed:.2f} s"


# ----------------------------------------------------------------------------- VOI statistics

def test_dose_statistics_analytic():
    d = np.arange(1.0, 101.0).reshape(4, 5, 5)
    st = dose.voi_dose_statistics(d, np.ones(d.shape, bool))
    assert (st.mean_Gy, st.min_Gy, st.max_Gy) == (50.5, 1.0, 100.0)
    assert (st.d90_Gy, st.d50_Gy, st.d10_Gy) == (11.0, 51.0, 91.0)  # ≥ 90 % of voxels get ≥ 11 Gy
    assert st.dvh_fraction[0] == 1.0 and np.all(np.diff(st.dvh_fraction) <= 0)
    assert st.dvh_dose_Gy[-1] == 100.0 and st.dvh_fraction[-1] == pytest.approx(0.01)
    assert st.d_percent_Gy(50) == pytest.approx(50.5, abs=0.5)
    # uniform dose: every metric equals it, EUD included
    u = dose.voi_dose_statistics(np.full((3, 3, 3), 7.0), np.ones((3, 3, 3)))
    assert u.eud_Gy == pytest.approx(7.0) and u.d90_Gy == u.d10_Gy == u.mean_Gy == 7.0


def test_eud_two_level_and_mass_weighting():
    alpha, D = 0.3, 20.0
    d = np.zeros((2, 1, 1))
    d[1] = D
    st = dose.voi_dose_statistics(d, np.ones(d.shape, bool), eud_alpha_per_Gy=alpha)
    assert st.eud_Gy == pytest.approx(-math.log(0.5 * (1 + math.exp(-alpha * D))) / alpha, rel=1e-12)
    assert st.eud_Gy < st.mean_Gy
    # mass weighting: 3 g at 20 Gy, 1 g at 0 Gy -> mean 15 Gy; D50 = 20 Gy
    m = np.array([1.0, 3.0]).reshape(2, 1, 1)
    sm = dose.voi_dose_statistics(d, np.ones(d.shape, bool), voxel_mass_g=m)
    assert sm.mean_Gy == pytest.approx(15.0) and sm.d50_Gy == 20.0 and sm.d90_Gy == 0.0
    assert sm.weighting == "mass" and sm.total_mass_g == 4.0


def test_dose_statistics_validation():
    d = np.ones((2, 2, 2))
    m = np.ones((2, 2, 2), bool)
    bad = d.copy()
    bad[0, 0, 0] = np.nan
    for call, match in [
        (lambda: dose.voi_dose_statistics(d, np.ones((2, 2), bool)), "mask"),
        (lambda: dose.voi_dose_statistics(d, np.zeros((2, 2, 2), bool)), "mask"),
        (lambda: dose.voi_dose_statistics(d, np.full((2, 2, 2), 3)), "mask"),
        (lambda: dose.voi_dose_statistics(-d, m), "dose_Gy"),
        (lambda: dose.voi_dose_statistics(bad, m), "dose_Gy"),
        (lambda: dose.voi_dose_statistics(d, m, voxel_mass_g=np.zeros((2, 2, 2))), "voxel_mass_g"),
        (lambda: dose.voi_dose_statistics(d, m, voxel_mass_g=np.ones(3)), "voxel_mass_g"),
        (lambda: dose.voi_dose_statistics(d, m, eud_alpha_per_Gy=0), "eud_alpha_per_Gy"),
    ]:
        with pytest.raises(InputDataError, match=match):
            call()
