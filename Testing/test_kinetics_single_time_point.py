"""Single-time-point integration (Madsen 2018 / Hänscheid 2018) as a fit object."""

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.physics.kinetics import fit_single_time_point, hanscheid_tia, madsen_tia
from LuDosimetryLib.physics.radiobiology import g_factor_from_fit, lea_catcheside_g_mono

T_PHYS = 159.53


def test_madsen_exact_for_mono_exponential():
    t_eff, a0, t = 60.0, 5.0, 72.0
    value = a0 * math.exp(-math.log(2) / t_eff * t)
    fit = fit_single_time_point(t, value, physical_half_life_h=T_PHYS, effective_half_life_h=t_eff)
    assert fit.integral == pytest.approx(a0 * t_eff / math.log(2), rel=1e-12)
    assert fit.integral == pytest.approx(madsen_tia(value, t, t_eff), rel=1e-12)
    assert fit.evaluate(np.array([t]))[0] == pytest.approx(value, rel=1e-12)
    assert fit.flags == ("single_time_point:madsen",)


def test_hanscheid_without_t_eff_exact_when_scan_at_t_eff():
    t_eff, a0 = 80.0, 3.0
    value = a0 * 0.5  # measured at t = T_eff
    fit = fit_single_time_point(t_eff, value, physical_half_life_h=T_PHYS)
    assert fit.integral == pytest.approx(a0 * t_eff / math.log(2), rel=1e-12)
    assert fit.integral == pytest.approx(hanscheid_tia(value, t_eff), rel=1e-12)
    assert fit.params["method"] == "hanscheid"


def test_t_eff_bounded_by_physical_decay_and_g_factor_defined():
    fit = fit_single_time_point(24.0, 1.0, physical_half_life_h=T_PHYS, effective_half_life_h=500.0)
    assert fit.effective_half_life_h == T_PHYS
    assert any("longer than physical decay" in w for w in fit.warnings)
    assert g_factor_from_fit(fit) == pytest.approx(lea_catcheside_g_mono(T_PHYS), rel=1e-9)
    assert fit.uncertainty == pytest.approx(0.05 * fit.integral, rel=1e-9)  # default 5 % of the value


def test_single_time_point_validates_arguments():
    with pytest.raises(InputDataError, match="time_h"):
        fit_single_time_point(-1.0, 1.0, physical_half_life_h=T_PHYS)
    with pytest.raises(InputDataError, match="value"):
        fit_single_time_point(24.0, float("nan"), physical_half_life_h=T_PHYS)
    with pytest.raises(InputDataError, match="effective_half_life_h"):
        fit_single_time_point(24.0, 1.0, physical_half_life_h=T_PHYS, effective_half_life_h=0)
