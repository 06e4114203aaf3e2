"""The settings form's text to settings: electrode fields left empty mean "not given"."""

from __future__ import annotations

import pytest

from sessionconsole.ui.settings_parse import SettingsProblem, channel_setup

WAVE = {
    "mode": "SYM",
    "freq_hz": "100",
    "pw_us": "200",
    "on_s": "0",
    "off_s": "0",
    "ramp_s": "2",
    "amplitude_ma": "10",
}


def test_empty_electrode_fields_leave_the_profile_pads_and_no_region() -> None:
    setup = channel_setup(
        {**WAVE, "electrode_area_cm2": " ", "electrode_region": "", "electrode_side": ""}
    )
    assert (setup.electrode_area_cm2, setup.electrode_region, setup.electrode_side) == (
        None,
        None,
        None,
    )


def test_electrode_fields_are_carried() -> None:
    setup = channel_setup(
        {**WAVE, "electrode_area_cm2": "9", "electrode_region": "calf", "electrode_side": "right"}
    )
    assert (setup.electrode_area_cm2, setup.electrode_region, setup.electrode_side) == (
        9.0,
        "calf",
        "right",
    )


@pytest.mark.parametrize(
    ("area", "reason"),
    [("big", "electrode area cm2 'big' must be a number"), ("0", "electrode_area_cm2:")],
)
def test_a_bad_electrode_area_is_a_readable_problem(area: str, reason: str) -> None:
    with pytest.raises(SettingsProblem, match=reason):
        channel_setup({**WAVE, "electrode_area_cm2": area})
