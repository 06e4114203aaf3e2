"""Preset library and resolution: every preset lands on a value the unit takes, inside its range."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sessionconsole.model.preset import ParamRange, StimulationPreset, UltrasoundPreset
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import StimulationSettings
from sessionconsole.plans.presets import (
    STIMULATION_STEPS,
    ULTRASOUND_STEPS,
    Steps,
    resolve_param,
    resolve_stimulation,
    resolve_ultrasound,
)
from tests.plans.support import presets

EXPECTED_IDS = {
    "tens_conventional",
    "tens_acupuncture",
    "tens_burst",
    "nmes",
    "russian",
    "interferential",
    "hvpc",
    "us_acute_1mhz",
    "us_acute_3mhz",
    "us_subacute_1mhz",
    "us_subacute_3mhz",
    "us_chronic_1mhz",
    "us_chronic_3mhz",
}


def test_library_has_every_protocol_of_the_issue_each_range_with_a_source() -> None:
    library = presets()
    assert set(library) == EXPECTED_IDS
    for preset in library.values():
        ranges = [v for v in preset.model_dump().values() if isinstance(v, dict)]
        assert all(r["source"].strip() for r in ranges), preset.id


@pytest.mark.parametrize("preset_id", sorted(EXPECTED_IDS - {"tens_burst"}))
def test_every_bundled_preset_resolves_to_valid_device_settings(preset_id: str) -> None:
    preset = presets()[preset_id]
    if isinstance(preset, UltrasoundPreset):
        r = resolve_ultrasound(preset)
        values = {k: v if k == "intensity_w_cm2" else int(v) for k, v in r.values.items()}
        UltrasoundSettings.model_validate({**values, "time_s": 300})
    else:
        assert isinstance(preset, StimulationPreset)
        r = resolve_stimulation(preset)
        waveform = {k: int(v) for k, v in r.values.items()}
        StimulationSettings.model_validate({**waveform, "mode": preset.mode})
    assert r.problems == ()


def test_subacute_duty_between_the_units_steps_resolves_to_50_and_says_so() -> None:
    r = resolve_ultrasound(presets()["us_subacute_1mhz"])  # type: ignore[arg-type]
    assert r.values["duty_pct"] == 50
    assert r.notes == (
        "duty_pct: clinical range 33-50 falls between the unit's steps (10/20/50/100); "
        "50 chosen from 50 inside the range",
    )


def test_worked_values_of_the_bundled_presets() -> None:
    lib = presets()
    assert resolve_stimulation(lib["tens_conventional"]).values == {  # type: ignore[arg-type]
        "freq_hz": 100,
        "pw_us": 150,
        "on_s": 0,
        "off_s": 0,
        "ramp_s": 2,
    }
    russian = resolve_stimulation(lib["russian"])  # type: ignore[arg-type]
    on_off = (russian.values["freq_hz"], russian.values["on_s"], russian.values["off_s"])
    assert on_off == (50, 10, 50)
    acute = resolve_ultrasound(lib["us_acute_3mhz"])  # type: ignore[arg-type]
    assert acute.values == {"frequency_khz": 3000, "duty_pct": 20, "intensity_w_cm2": 0.2}


def test_burst_tens_is_refused_with_the_reason_not_replaced() -> None:
    r = resolve_stimulation(presets()["tens_burst"])  # type: ignore[arg-type]
    assert r.values == {}
    assert len(r.problems) == 1 and "no burst mode" in r.problems[0]


def test_range_outside_the_unit_is_a_problem_never_clipped() -> None:
    rng = ParamRange(min=260, max=300, preferred=280, source="test")
    value, why = resolve_param("freq_hz", rng, STIMULATION_STEPS["freq_hz"])
    assert value is None
    assert why == (
        "freq_hz: clinical range 260-300 has no value the unit takes (1-250 in steps of 1)"
    )


def test_preferred_value_off_the_grid_moves_to_the_nearest_and_says_so() -> None:
    rng = ParamRange(min=10, max=30, preferred=15, source="test")
    value, why = resolve_param("duty_pct", rng, ULTRASOUND_STEPS["duty_pct"])
    assert value == 10  # 10 and 20 are equally near: the lower, the cautious one
    assert why is not None and "so 10" in why


def test_param_range_needs_preferred_inside() -> None:
    with pytest.raises(ValidationError, match="min <= preferred <= max"):
        ParamRange(min=1, max=5, preferred=6, source="x")


def test_device_steps_agree_with_the_settings_models() -> None:
    for name, steps in ULTRASOUND_STEPS.items():
        for v in steps.values or (steps.low, steps.high):
            base = {"frequency_khz": 1000, "intensity_w_cm2": 1.0, "duty_pct": 100, "time_s": 60}
            base[name] = v if name == "intensity_w_cm2" else int(v)
            UltrasoundSettings.model_validate(base)
    for name, steps in STIMULATION_STEPS.items():
        for v, ok in ((steps.low, True), (steps.high, True), (steps.high + 1, False)):
            waveform: dict[str, object] = {"mode": "SYM", "freq_hz": 100, "pw_us": 200}
            waveform[name] = int(v)
            if ok:
                StimulationSettings.model_validate(waveform)
            else:
                with pytest.raises(ValidationError):
                    StimulationSettings.model_validate(waveform)


@st.composite
def ranges_and_steps(draw: st.DrawFn) -> tuple[ParamRange, Steps]:
    if draw(st.booleans()):
        values = tuple(sorted(draw(st.sets(st.integers(0, 200), min_size=1, max_size=6))))
        steps = Steps(values[0], values[-1], values=tuple(float(v) for v in values))
    else:
        low = draw(st.integers(0, 100))
        grid = draw(st.sampled_from([1, 0.5, 0.01]))
        steps = Steps(low, low + draw(st.integers(0, 200)), step=grid)
    a, b, c = sorted(draw(st.floats(-10, 320, allow_nan=False)) for _ in range(3))
    return ParamRange(min=a, max=c, preferred=b, source="h"), steps


@given(ranges_and_steps())
def test_resolution_is_an_allowed_value_inside_the_range(case: tuple[ParamRange, Steps]) -> None:
    rng, steps = case
    value, why = resolve_param("x", rng, steps)
    if value is None:
        assert why is not None and steps.inside(rng.min, rng.max) == []
        return
    assert rng.min - 1e-9 <= value <= rng.max + 1e-9
    assert steps.low - 1e-9 <= value <= steps.high + 1e-9
    if steps.values is not None:
        assert value in steps.values
    else:
        assert abs(value / steps.step - round(value / steps.step)) < 1e-6
