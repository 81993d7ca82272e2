"""Synthetic patient: analytic truth has the seed-000 kinetics; images are deterministic per seed."""

import math

import numpy as np
import pytest

from LuDosimetryLib.synthetic.phantom import (PhantomConfig, ground_truth, kinetic_parameters, make_poses, region_map,
                                    segmentation_labelmap, simulate_scan)
from LuDosimetryLib.physics.radionuclides import get_nuclide


def test_truth_kinetics_match_seed000_table2():
    truth = ground_truth(PhantomConfig())
    vois = {v["name"]: v for v in truth["vois"]}
    for k in ("kidney_left", "kidney_right"):
        for c in vois[k]["cycles"]:
            assert c["ad_per_aa_Gy_per_GBq"] == pytest.approx(0.43, rel=1e-9)
            assert c["washout_half_time_h"] == 47.0
    tumours = [v for v in truth["vois"] if v["kind"] == "tumor"]
    assert len(tumours) >= 3 and all(5 <= v["volume_ml"] <= 300 for v in tumours)
    c1 = np.mean([v["cycles"][0]["ad_per_aa_Gy_per_GBq"] for v in tumours])
    c4 = np.mean([v["cycles"][3]["ad_per_aa_Gy_per_GBq"] for v in tumours])
    assert c1 == pytest.approx(3.2, abs=0.1)
    assert (c4 / c1) ** (1 / 3) == pytest.approx(0.9, abs=0.015)  # about -10 % per cycle
    assert truth["administered_activity_MBq"][0] == 7400.0
    assert all(a <= 11100.0 + 1e-6 for a in truth["administered_activity_MBq"])


def test_truth_dose_is_analytic_integral():
    cfg = PhantomConfig()
    nuc = get_nuclide("Lu-177")
    energy = nuc.local_deposition_Gy_g_per_MBq_h
    comp = next(c for c in cfg.compartments if c.name == "tumor_liver_1")
    p = kinetic_parameters(comp, 2, energy)
    # numerical integration of the concentration curve agrees with the closed form
    from scipy.integrate import quad

    f = lambda t: p["A_Bq_per_ml_per_GBq"] * (math.exp(-p["lambda_wash_per_h"] * t) - math.exp(-p["lambda_up_per_h"] * t))
    tia_Bq_h_per_ml_per_GBq = quad(f, 0, np.inf, limit=200)[0]
    dose_per_GBq = tia_Bq_h_per_ml_per_GBq * 1e-6 * energy / comp.density_g_per_ml
    assert dose_per_GBq == pytest.approx(comp.ad_per_aa_Gy_per_GBq * comp.cycle_factor, rel=1e-6)


def test_poses_reference_identity_and_small():
    cfg = PhantomConfig()
    poses = make_poses(cfg)
    assert len(poses) == 12
    ref = poses[(1, 24.0)]
    assert ref.translation_mm == (0.0, 0.0, 0.0)
    others = [p for k, p in poses.items() if k != (1, 24.0)]
    assert all(max(abs(t) for t in p.translation_mm) <= cfg.max_shift_mm for p in others)
    assert len({p.translation_mm for p in others}) == 11  # a different shift at every scan


def test_images_deterministic_and_labelled():
    cfg = PhantomConfig(shape_xyz=(64, 64, 48), spacing_mm=9.6)
    truth = ground_truth(cfg)
    pose = make_poses(cfg)[(2, 72.0)]
    a1, c1 = simulate_scan(cfg, truth, 2, 72.0, pose, np.random.default_rng(5))
    a2, c2 = simulate_scan(cfg, truth, 2, 72.0, pose, np.random.default_rng(5))
    assert np.array_equal(a1, a2) and np.array_equal(c1, c2)
    assert a1.min() >= 0 and np.isfinite(a1).all()
    labels = segmentation_labelmap(cfg)
    assert set(np.unique(labels)) >= {0, 1, 2, 3, 4, 10, 11, 12, 13}
    # adaptive-threshold ROIs are oversized relative to the true sphere
    region = region_map(cfg)
    idx = next(i for i, c in enumerate(cfg.compartments, start=1) if c.name == "tumor_liver_1")
    assert (labels == 10).sum() > (region == idx).sum()


def test_config_reference_scan_must_be_one_of_the_hours():
    with pytest.raises(ValueError) as e:
        PhantomConfig(hours=(4.0, 48.0, 96.0))  # reference_hours 24 not imaged
    msg = str(e.value)
    assert "reference_hours" in msg and "24 h" in msg and "PhantomConfig.hours" in msg and "48" in msg
    assert PhantomConfig(hours=(4.0, 48.0, 96.0), reference_hours=48.0).reference_hours == 48.0


def test_config_needs_a_kidney_compartment():
    from LuDosimetryLib.synthetic.phantom import default_compartments

    no_kidney = [c for c in default_compartments() if c.kind != "kidney"]
    with pytest.raises(ValueError, match="kidney"):
        PhantomConfig(compartments=no_kidney)
    cfg = PhantomConfig()
    cfg.compartments = no_kidney  # changed after construction: still a clear error, not StopIteration
    with pytest.raises(ValueError, match="no compartment of kind 'kidney'"):
        ground_truth(cfg)


def test_recovery_table_volumes_strictly_increasing_on_a_coarse_grid():
    from LuDosimetryLib.synthetic.phantom import recovery_coefficient_table

    for cfg in (PhantomConfig(), PhantomConfig(shape_xyz=(32, 24, 20), spacing_mm=9.6)):
        t = recovery_coefficient_table(cfg)
        assert len(t["volume_ml"]) == len(t["rc"]) >= 8
        assert all(b > a for a, b in zip(t["volume_ml"], t["volume_ml"][1:])), t
