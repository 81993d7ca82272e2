"""Uncertainty budget (physics/uncertainty.py, Gear et al. EJNMMI 2018): the reported 1σ covers the
truth in about 68 % of noisy realisations; components, closed forms and speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from LuDosimetryLib.physics import kinetics, uncertainty

LN2 = math.log(2)
T_PHYS_H = 159.5  # 177Lu (ICRP-107: 6.647 d)
HOURS = np.array([4.0, 24.0, 72.0])


def _true_curve(t, a0, t_wash_h, t_up_h):
    """Uptake-washout activity (MBq) with physical decay, and its integral 0..inf (closed form)."""
    lw, lu, lp = LN2 / t_wash_h, LN2 / t_up_h, LN2 / T_PHYS_H
    y = a0 * (np.exp(-(lw + lp) * t) - np.exp(-(lu + lw + lp) * t))
    return y, a0 * (1 / (lw + lp) - 1 / (lu + lw + lp))


def test_reported_sigma_covers_the_truth_in_60_to_80_percent():
    """200 realisations of a 2-cycle tumour: calibration σ 3 % (one factor for the patient), RC σ 5 %
    (one factor for the VOI), 5 % noise per measured point; VOI/TAC level (fit + budget), not 200 runs."""
    rng = np.random.default_rng(7)
    inputs = uncertainty.budget_inputs({"calibration_rel": 0.03, "rc_rel": 0.05, "volume_rel": 0.0,
                                        "registration_mm": 0.0})
    kinetics_by_cycle = {1: (400.0, 60.0, 1.5), 2: (600.0, 55.0, 1.5)}  # MBq scale, T_wash h, T_up h
    hit_rows, hit_cad, n = 0, 0, 200
    t0 = time.perf_counter()
    for _ in range(n):
        cal = 1 + 0.03 * rng.standard_normal()
        rc = 1 + 0.05 * rng.standard_normal()
        rows, true_cum = [], 0.0
        for cycle, (a0, tw, tu) in kinetics_by_cycle.items():
            y_true, integral_true = _true_curve(HOURS, a0, tw, tu)
            true_cum += integral_true
            y = y_true * cal / rc * (1 + 0.05 * rng.standard_normal(HOURS.size))
            fit = kinetics.fit_time_activity(HOURS, y, physical_half_life_h=T_PHYS_H, value_uncertainty=0.05)
            rows.append({"patient_id": "P", "voi": "t1", "kind": "tumor", "cycle": cycle,
                         "administered_activity_MBq": 7400.0, "absorbed_dose_Gy": fit.integral,
                         "absorbed_dose_uncertainty_Gy": fit.integral * fit.relative_uncertainty,
                         "recovery_coefficient": 0.8, "volume_ml": 50.0, "time_integrated_activity_MBq_h": fit.integral,
                         "fit_model": fit.model})
        uncertainty.add_row_uncertainties(rows, inputs, voxel_mm=4.8)
        for r, (a0, tw, tu) in zip(rows, kinetics_by_cycle.values()):
            hit_rows += abs(r["absorbed_dose_Gy"] - _true_curve(HOURS, a0, tw, tu)[1]) <= r["absorbed_dose_uncertainty_Gy"]
        s = uncertainty.summary_uncertainty(rows, inputs, n=2000)
        cad = sum(r["absorbed_dose_Gy"] for r in rows)
        hit_cad += abs(cad - true_cum) <= s["metrics"]["cumulative_tumor_dose_Gy"]["sigma"]
    elapsed = time.perf_counter() - t0
    row_coverage, cad_coverage = hit_rows / (2 * n), hit_cad / n
    print(f"coverage per VOI-cycle {100 * row_coverage:.1f} %, cumulative dose {100 * cad_coverage:.1f} %, "
          f"{elapsed:.1f} s")
    assert 0.60 <= row_coverage <= 0.80, row_coverage
    assert 0.60 <= cad_coverage <= 0.80, cad_coverage
    assert elapsed < 30.0


def test_components_closed_forms():
    # displaced fraction of a sphere: 1 - overlap of two equal spheres (3d/4r - d^3/16r^3), 1 at d = 2r
    r = uncertainty.sphere_radius_mm(10.0)
    assert uncertainty.displaced_fraction(0.0, 10.0) == 0.0
    assert uncertainty.displaced_fraction(2 * r, 10.0) == pytest.approx(1.0)
    assert uncertainty.displaced_fraction(r, 10.0) == pytest.approx(0.75 - 1 / 16)
    # boundary model: 3 sigma_r / r with sigma_r = voxel / sqrt(12)
    assert uncertainty.boundary_volume_rel(10.0, 4.8) == pytest.approx(3 * 4.8 / math.sqrt(12) / r)
    row = {"voi": "k", "kind": "kidney", "cycle": 1, "absorbed_dose_Gy": 4.0, "absorbed_dose_uncertainty_Gy": 0.2,
           "recovery_coefficient": 1.0, "volume_ml": 150.0, "time_integrated_activity_MBq_h": 1.0,
           "fit_model": "single_time_point", "t_eff_h": 50.0, "t_eff_uncertainty_h": 10.0}
    uncertainty.add_row_uncertainties([row], uncertainty.budget_inputs(None), voxel_mm=4.8)
    assert row["u_fit_Gy"] == pytest.approx(0.2) and row["u_rc_Gy"] == 0.0  # no PVC: no RC term
    assert row["u_teff_Gy"] == pytest.approx(4.0 * 0.2) and row["u_calibration_Gy"] == pytest.approx(0.12)
    parts = [row[f"u_{c}_Gy"] for c in uncertainty.COMPONENTS]
    assert row["absorbed_dose_uncertainty_Gy"] == pytest.approx(math.sqrt(sum(p * p for p in parts)))


def test_calibration_cancels_in_delta_and_adds_linearly_over_cycles():
    rows = [{"voi": "t", "kind": "tumor", "cycle": c, "administered_activity_MBq": 7400.0, "absorbed_dose_Gy": d,
             "absorbed_dose_uncertainty_Gy": 0.0, "recovery_coefficient": 1.0, "volume_ml": 50.0,
             "time_integrated_activity_MBq_h": 1.0} for c, d in ((1, 10.0), (2, 8.0))]
    inputs = uncertainty.budget_inputs({"volume_rel": 0.0, "registration_mm": 0.0})
    uncertainty.add_row_uncertainties(rows, inputs, 4.8)
    s = uncertainty.summary_uncertainty(rows, inputs)["metrics"]
    # fully correlated calibration: sigma(cAD) = 3 % x (10 + 8) Gy (Monte Carlo, 4000 samples: 5 %)
    assert s["cumulative_tumor_dose_Gy"]["components"]["calibration"] == pytest.approx(0.03 * 18.0, rel=0.05)
    assert s["delta_ad_per_aa_percent"]["components"]["calibration"] < 1e-9


def test_monte_carlo_under_two_seconds_for_a_large_patient():
    rows = [{"voi": f"v{i}", "kind": "tumor" if i < 18 else "kidney", "cycle": c, "administered_activity_MBq": 7400.0,
             "absorbed_dose_Gy": 5.0 + i, "absorbed_dose_uncertainty_Gy": 0.5, "recovery_coefficient": 0.7,
             "volume_ml": 20.0, "time_integrated_activity_MBq_h": 1.0, "lea_catcheside_g": 0.05 if i >= 18 else None}
            for i in range(20) for c in (1, 2, 3, 4)]
    inputs = uncertainty.budget_inputs(None)
    uncertainty.add_row_uncertainties(rows, inputs, 4.8)
    t0 = time.perf_counter()
    s = uncertainty.summary_uncertainty(rows, inputs)
    assert time.perf_counter() - t0 < 2.0
    assert set(s["metrics"]) == {"cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent", "kidney_cumulative_dose_Gy",
                                 "kidney_bed_Gy"}


def test_manifest_uncertainty_object_read_and_checked(coarse_patient, tmp_path):
    import json
    import shutil

    from LuDosimetryLib.errors import ManifestError
    from LuDosimetryLib.io.study import load_study

    dst = tmp_path / "p"
    shutil.copytree(coarse_patient.parent, dst)
    d = json.loads((dst / "study.json").read_text())
    d["uncertainty"] = {"calibration_rel": 0.1, "registration_mm": 3.0}
    (dst / "study.json").write_text(json.dumps(d))
    study = load_study(dst / "study.json")
    inputs = uncertainty.budget_inputs(study.uncertainty)
    assert inputs["calibration_rel"] == 0.1 and inputs["registration_mm"] == 3.0 and inputs["rc_rel"] == 0.05
    d["uncertainty"] = {"calibration": 0.1}
    (dst / "study.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError, match="did you mean 'calibration_rel'"):
        load_study(dst / "study.json")


def test_teff_component_is_the_dose_sensitivity_counted_once():
    """A single-time-point row: u_teff_Gy is the stp_cycle dose sensitivity to T_eff (not σ_T/T), u_fit_Gy
    is the rest of the row's uncertainty, and the total is unchanged by the split (quadrature)."""
    from LuDosimetryLib.physics import uncertainty as u

    row = {"voi": "kidney_left", "cycle": 2, "absorbed_dose_Gy": 4.0, "volume_ml": 150.0,
           "fit_model": "single_time_point", "time_integrated_activity_MBq_h": 1.0, "recovery_coefficient": 1.0,
           "t_eff_h": 50.0, "t_eff_uncertainty_h": 12.0,  # σ_T/T = 24 %
           "stp_t_eff_dose_uncertainty_Gy": 0.2,  # the dose moves 5 % (scan near the optimal time)
           "absorbed_dose_uncertainty_Gy": 4.0 * (0.03 ** 2 + 0.05 ** 2) ** 0.5}  # 3 % value, 5 % T_eff
    inputs = u.budget_inputs(None)
    rel = u.relative_components(row, inputs, 4.8, 0.0)
    assert abs(rel["teff"] - 0.05) < 1e-12  # not 0.24
    assert abs(rel["fit"] - 0.03) < 1e-12  # the T_eff part removed from the fit component
