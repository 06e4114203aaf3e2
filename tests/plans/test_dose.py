"""Dose helper: worked examples from CLINICAL-REFERENCE and properties of the formulas."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionconsole.model.stimulation import StimulationSettings
from sessionconsole.plans import dose


def test_watson_time_worked_example() -> None:
    # 10 cm2 with a 5 cm2 head at 20 % (1:4 -> x5): 2 x 1 min x 5 = 10 min
    assert dose.treatment_time_s(10.0, 5.0, 20) == 600
    assert dose.treatment_time_s(15.0, 5.0, 100) == 180


def test_intensity_halves_at_the_half_value_depth() -> None:
    assert dose.intensity_at_depth(1.0, 4.0, 1000) == pytest.approx(0.5)
    assert dose.intensity_at_depth(1.0, 2.5, 3000) == pytest.approx(0.5)
    assert dose.intensity_at_depth(0.8, 5.0, 3000) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no half-value depth"):
        dose.intensity_at_depth(1.0, 1.0, 2000)


@given(st.floats(0.01, 3.0), st.floats(0.0, 10.0), st.sampled_from([1000, 3000]))
def test_setpoint_for_lesion_inverts_intensity_at_depth(i: float, d: float, f: int) -> None:
    assert dose.intensity_at_depth(dose.setpoint_for_lesion(i, d, f), d, f) == pytest.approx(i)


def test_energy_and_dose_worked_example() -> None:
    # 1.0 W/cm2 x 5 cm2 x 50 % x 300 s = 750 J; over 15 cm2 = 50 J/cm2
    energy = dose.energy_j(1.0, 5.0, 50, 300)
    assert energy == pytest.approx(750.0)
    assert dose.dose_j_cm2(energy, 15.0) == pytest.approx(50.0)
    assert dose.area_in_era_range(15.0, 5.0) and not dose.area_in_era_range(25.0, 5.0)


def test_current_density_reference_example_is_at_the_threshold() -> None:
    sym = StimulationSettings(mode="SYM", freq_hz=100, pw_us=200)
    assert dose.current_density_ma_cm2(sym, 20.0, 2.0) == pytest.approx(2.0)
    assert dose.dc_density_ma_cm2(sym, 20.0, 2.0) is None


def test_hvpc_dc_density() -> None:
    hvpc = StimulationSettings(mode="HVPC", freq_hz=100, pw_us=10)
    # average = 50 mA x 2 x 10e-6 s x 100 Hz = 0.1 mA; over 0.25 cm2 = 0.4 mA/cm2
    dc = dose.dc_density_ma_cm2(hvpc, 50.0, 0.25)
    assert dc is not None and math.isclose(dc, 0.4)


def test_zero_area_is_an_error_not_an_infinity() -> None:
    with pytest.raises(ValueError, match="electrode_area_cm2 must be above 0"):
        dose.current_density_ma_cm2(StimulationSettings(mode="IFC", freq_hz=100, pw_us=200), 5, 0)
