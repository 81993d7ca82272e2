"""Single-time-point cycles (issue 12 item 2): ratio method of Hebert et al. 2024 with the VOI's fully
imaged cycle; Madsen with a stated T_eff; Hänscheid only inside its validity window (else flagged)."""

from types import SimpleNamespace as NS

import numpy as np
import pytest

from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.physics import kinetics
from LuDosimetryLib.physics.cycle_dose import voi_cycle_dose
from LuDosimetryLib.physics.radionuclides import get_nuclide
from LuDosimetryLib.physics.stp_cycle import HANSCHEID_WINDOW_H, POPULATION_T_EFF_H
from LuDosimetryLib.pipeline import PipelineOptions

LU = get_nuclide("Lu-177")
HOURS = (4.0, 24.0, 72.0, 168.0)


def _tac(t, scale=1.0, uptake_h=2.0, washout_h=60.0):
    """Bi-exponential uptake/washout curve (MBq) of one kidney."""
    t = np.asarray(t, dtype=float)
    return scale * 40.0 * (np.exp(-np.log(2) / washout_h * t) - np.exp(-np.log(2) / uptake_h * t))


def _voi(name="kidney_left", kind="kidney", mass_g=160.0):
    return NS(name=name, kind=kind, flags=[], included=True, volume_for=lambda c: mass_g / 1.05,
              mass_for=lambda c: mass_g)


def _cycle(n, hours, aa=7400.0):
    return NS(cycle=n, hours=list(hours), administered_activity_MBq=aa, timepoints=list(hours))


def _run(cyc, v, y, options, fits):
    out = voi_cycle_dose(NS(patient_id="P"), cyc, v, np.asarray(y, dtype=float), "MBq", None, options, LU, fits)
    fits[(v.name, cyc.cycle)] = out["fit"]
    return out


def test_ratio_method_within_1_percent_of_full_cycle_dose():
    opts, v, fits = PipelineOptions(), _voi(), {}
    _run(_cycle(1, HOURS), v, _tac(HOURS), opts, fits)
    # cycle 2: same kinetics, 80 % of the uptake; imaged fully (truth) and at 24 h only
    full2 = _run(_cycle(2, HOURS), v, _tac(HOURS, 0.8), opts, {})
    stp2 = _run(_cycle(2, (24.0,)), v, _tac([24.0], 0.8), opts, fits)
    row = stp2["row"]
    assert row["single_time_point_method"] == "ratio"
    assert row["absorbed_dose_Gy"] == pytest.approx(full2["row"]["absorbed_dose_Gy"], rel=0.01)
    # independent: the library's Hebert et al. scaling of the cycle-1 dose (mass unchanged)
    d1 = _run(_cycle(1, HOURS), v, _tac(HOURS), opts, {})["row"]["absorbed_dose_Gy"]
    a_ref = float(fits[(v.name, 1)].evaluate(24.0))
    assert row["absorbed_dose_Gy"] == pytest.approx(
        kinetics.later_cycle_dose_scaling(d1, a_ref, _tac([24.0], 0.8)[0], 160.0, 160.0), rel=1e-9)
    assert row["t_eff_h"] == pytest.approx(fits[(v.name, 1)].effective_half_life_h)
    assert row["t_eff_uncertainty_h"] > 0 and row["absorbed_dose_uncertainty_Gy"] > 0
    assert "ratio method" in " ".join(stp2["warnings"])


def test_madsen_bias_without_full_cycle_is_larger_than_ratio():
    """Without a full cycle: Madsen with the population T_eff, flagged, T_eff spread in the uncertainty."""
    opts, v = PipelineOptions(), _voi()
    full = _run(_cycle(2, HOURS), v, _tac(HOURS, 0.8), opts, {})["row"]["absorbed_dose_Gy"]
    out = _run(_cycle(2, (24.0,)), v, _tac([24.0], 0.8), opts, {})
    row = out["row"]
    t_pop, s_pop = POPULATION_T_EFF_H["kidney"]
    assert row["single_time_point_method"] == "madsen" and "stp:population_t_eff" in row["flags"]
    assert row["t_eff_h"] == t_pop and row["t_eff_uncertainty_h"] == s_pop
    # T_eff part of the uncertainty: |1 - kt| sigma_T / T (d ln TIA / d T_eff)
    k = np.log(2) / t_pop
    assert row["stp_t_eff_dose_uncertainty_Gy"] == pytest.approx(
        row["absorbed_dose_Gy"] * abs(1 - k * 24.0) * s_pop / t_pop, rel=1e-9)
    assert row["absorbed_dose_uncertainty_Gy"] > row["stp_t_eff_dose_uncertainty_Gy"]
    assert abs(row["absorbed_dose_Gy"] / full - 1) < 0.3


@pytest.mark.parametrize("t_h, flagged", [(24.0, True), (96.0, False), (150.0, True)])
def test_hanscheid_outside_window_is_flagged(t_h, flagged):
    opts, v = PipelineOptions(stp_method="hanscheid"), _voi()
    out = _run(_cycle(1, (t_h,)), v, _tac([t_h]), opts, {})
    row = out["row"]
    assert row["single_time_point_method"] == "hanscheid"
    assert ("stp:hanscheid_outside_window" in row["flags"]) is flagged
    text = " ".join(out["warnings"])
    assert ("outside its validity window" in text) is flagged
    if flagged:
        assert f"{HANSCHEID_WINDOW_H[0]:g}–{HANSCHEID_WINDOW_H[1]:g} h" in text
    # Hänscheid integral = value * 2t / ln2 (independent closed form)
    tia = row["time_integrated_activity_MBq_h"]
    assert tia == pytest.approx(kinetics.hanscheid_tia(_tac([t_h])[0], t_h), rel=1e-9)


def test_stp_options_validated():
    with pytest.raises(InputDataError, match="stp_method"):
        PipelineOptions(stp_method="guess")
    with pytest.raises(InputDataError, match="hanscheid_window_h"):
        PipelineOptions(hanscheid_window_h=(120.0, 72.0))
