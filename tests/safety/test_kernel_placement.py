"""Stimulation electrodes tick by tick (issue #5): current density, DC density, combination
mode, the current's path across the thorax, and a technique logged over running electrodes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.safety import rules
from sessionconsole.safety.types import (
    Acknowledge,
    AlarmChanged,
    Configure,
    DeviceLimits,
    Limit,
    Reading,
    Refused,
    SendConfigure,
    SendStart,
    SendStop,
    Start,
    Stop,
)
from tests.safety.helpers import SETUP, STIM_LIMITS, Harness, stim_reading

CH, CH2 = "es2.ch1", "es2.ch2"
CAPPED = replace(
    STIM_LIMITS,
    max_density=Limit(3.0, "clinical limit stimulation.max_current_density_ma_cm2"),
)


def harness(limits: DeviceLimits = CAPPED) -> Harness:
    return Harness((CH, CH2), {CH: limits, CH2: limits})


def idle(h: Harness, **on: object) -> dict[str, Reading | None]:
    return {CH: stim_reading(h.now, **on), CH2: stim_reading(h.now)}


def placed(**changes: object) -> ChannelSetup:
    return SETUP.model_copy(update=changes)


def refused(actions: list[object]) -> Refused | None:
    return next((a for a in actions if isinstance(a, Refused)), None)


def active(h: Harness) -> list[str]:
    return [a.rule.id for a in h.state.active_alarms()]


def configure(h: Harness, setup: ChannelSetup, device: str = CH) -> list[object]:
    return list(h.tick(idle(h), Configure(h.next_id(), device, setup)))


def test_density_above_two_ma_per_cm2_warns_and_clears_with_a_larger_electrode() -> None:
    # SYM 100 Hz, 200 us: 20 mA peak is 4.0 mA rms (CLINICAL-REFERENCE example).
    h = harness()
    at_threshold = placed(electrode_area_cm2=2.0)  # exactly 2.0 mA rms/cm2: no warning
    assert SendConfigure(CH, at_threshold) in configure(h, at_threshold)
    h.tick(idle(h))
    assert active(h) == []
    above = placed(amplitude_ma=20.5, electrode_area_cm2=2.0)  # 2.05 mA rms/cm2
    assert SendConfigure(CH, above) in configure(h, above)
    h.tick(idle(h))
    assert active(h) == ["CURRENT_DENSITY"]
    alarm = h.state.active_alarms()[0]
    assert alarm.device == CH and "2.05 mA rms/cm² over 2 cm² (electrode)" in alarm.message
    configure(h, placed(amplitude_ma=20.5, electrode_area_cm2=4.0))
    h.tick(idle(h))
    assert active(h) == []  # condition gone: a warning clears by itself


def test_density_above_the_cap_is_refused_naming_it_and_nothing_is_sent() -> None:
    h = harness()
    actions = configure(h, placed(electrode_area_cm2=1.0))  # 4.0 mA rms/cm2
    r = refused(actions)
    assert r is not None and r.rule_id == rules.SETPOINT_LIMIT.id
    assert "is 4.00 mA rms/cm², above 3 mA rms/cm² (clinical limit" in r.reason
    assert not any(isinstance(a, SendConfigure) for a in actions)


def test_without_any_electrode_area_the_setup_is_refused() -> None:
    h = harness(replace(CAPPED, electrode_area_cm2=None))
    r = refused(configure(h, SETUP))
    assert r is not None and r.rule_id == "NO_ELECTRODE_AREA"
    assert SendConfigure(CH, placed(electrode_area_cm2=10.0)) in configure(
        h, placed(electrode_area_cm2=10.0)
    )


def test_the_profile_area_counts_when_the_setup_gives_none() -> None:
    h = harness(replace(CAPPED, electrode_area_cm2=1.0))  # 4.0 mA rms/cm2 over 1 cm2
    r = refused(configure(h, SETUP))
    assert r is not None and "(the profile's electrode)" in r.reason


def test_combination_mode_uses_the_head_era_and_needs_a_head() -> None:
    h = harness()
    r = refused(configure(h, placed(electrode="US_HEAD")))
    assert r is not None and r.rule_id == "WRONG_ELECTRODE"
    head = replace(CAPPED, head_era_cm2=1.5)  # 4.0 mA rms over 1.5 cm2 = 2.67: warn, not refuse
    h = harness(head)
    setup = placed(electrode="US_HEAD", electrode_area_cm2=25.0)  # the head is smaller: it counts
    assert SendConfigure(CH, setup) in configure(h, setup)
    h.tick(idle(h))
    assert active(h) == ["CURRENT_DENSITY"]
    assert "(the ultrasound head's ERA)" in h.state.active_alarms()[0].message


def test_monophasic_dc_density_above_the_advice_warns() -> None:
    hvpc = StimulationSettings(mode="HVPC", freq_hz=250, pw_us=400, ramp_s=2)
    # 10 mA: rms 10 x sqrt(2 x 400e-6 x 250) = 4.47 mA -> 1.49 mA rms/cm2 over 3 cm2 (no
    # warning); DC 10 x 2 x 400e-6 x 250 = 2.0 mA -> 0.67 mA/cm2, above the advised 0.2.
    h = harness()
    configure(h, ChannelSetup(waveform=hvpc, amplitude_ma=10.0, electrode_area_cm2=3.0))
    h.tick(idle(h))
    assert active(h) == ["DC_DENSITY"]
    configure(h, ChannelSetup(waveform=hvpc, amplitude_ma=10.0, electrode_area_cm2=12.0))
    h.tick(idle(h))
    assert active(h) == []
    sym = StimulationSettings(mode="SYM", freq_hz=250, pw_us=400, ramp_s=2)
    configure(h, ChannelSetup(waveform=sym, amplitude_ma=10.0, electrode_area_cm2=4.0))
    h.tick(idle(h))
    assert "DC_DENSITY" not in active(h)  # charge-balanced: no DC advice


@pytest.mark.parametrize(
    ("first", "second", "allowed"),
    [
        (("upper_back", "left"), ("anterior_thorax", "left"), False),  # front and back
        (("upper_back", "left"), ("upper_back", "right"), False),  # both sides
        (("upper_back", "left"), ("upper_back", "left"), True),  # one face, one side
        (("upper_back", "left"), ("lumbar", "right"), True),  # not over the thorax
        (("lumbar", "left"), ("lumbar", "right"), True),
    ],
)
def test_electrodes_whose_current_could_cross_the_chest_are_refused(
    first: tuple[str, str], second: tuple[str, str], allowed: bool
) -> None:
    h = harness()
    one = placed(electrode_region=first[0], electrode_side=first[1])
    assert SendConfigure(CH, one) in configure(h, one)
    two = placed(electrode_region=second[0], electrode_side=second[1])
    actions = configure(h, two, device=CH2)
    r = refused(actions)
    if allowed:
        assert r is None and SendConfigure(CH2, two) in actions
    else:
        assert r is not None and r.rule_id == rules.TRANSTHORACIC.id, actions
        assert f"{CH} on {first[0]} ({first[1]})" in r.reason
        assert not any(isinstance(a, SendConfigure) for a in actions)


def test_a_bilateral_or_sideless_thoracic_placement_is_refused_alone() -> None:
    h = harness()
    r = refused(configure(h, placed(electrode_region="upper_back", electrode_side="bilateral")))
    assert r is not None and r.rule_id == rules.TRANSTHORACIC.id and "both sides" in r.reason
    r = refused(configure(h, placed(electrode_region="anterior_thorax")))
    assert r is not None and "need electrode_side" in r.reason


def start(h: Harness, setup: ChannelSetup) -> None:
    configure(h, setup)
    assert SendStart(CH) in h.tick(idle(h), Start(h.next_id(), CH))
    h.tick(idle(h, state="ON", running=True, output_active=True, level_measured=20.0))


def on(h: Harness, techniques: tuple[tuple[str, str], ...] = ()) -> list[object]:
    readings = idle(h, state="ON", running=True, output_active=True, level_measured=20.0)
    return list(h.tick(readings, techniques=techniques))


def test_a_technique_over_running_electrodes_asks_and_acknowledging_confirms() -> None:
    h = harness()
    start(h, placed(electrode_region="lumbar", electrode_side="left"))
    on(h, (("lumbar", "right"),))
    assert active(h) == []  # the other side of the body
    on(h, (("thigh", "left"),))
    assert active(h) == []  # another region
    actions = on(h, (("lumbar", "left"),))
    assert active(h) == ["TECHNIQUE_OVER_ELECTRODES"]
    assert not any(isinstance(a, SendStop) for a in actions)  # asks, does not stop
    alarm = h.state.active_alarms()[0]
    assert alarm.device == CH and "confirm (acknowledge) or stop the channel" in alarm.message
    readings = idle(h, state="ON", running=True, output_active=True, level_measured=20.0)
    h.tick(readings, Acknowledge(h.next_id(), alarm.id, "ana"))
    actions = on(h)
    assert active(h) == []
    cleared = [a.alarm for a in actions if isinstance(a, AlarmChanged) and a.change == "cleared"]
    assert [a.rule.id for a in cleared] == ["TECHNIQUE_OVER_ELECTRODES"]
    assert cleared[0].acknowledged_by == "ana"  # recorded: who confirmed
    assert h.state.alarms[-1].cleared_s is not None


def test_a_technique_over_running_electrodes_clears_when_the_channel_is_stopped() -> None:
    h = harness()
    start(h, placed(electrode_region="lumbar", electrode_side="bilateral"))
    on(h, (("lumbar", "right"),))
    assert active(h) == ["TECHNIQUE_OVER_ELECTRODES"]
    readings = idle(h, state="ON", running=True, output_active=True, level_measured=20.0)
    assert SendStop(CH, "operator stop") in h.tick(readings, Stop(h.next_id(), CH))
    h.tick(idle(h))
    h.tick(idle(h))
    assert active(h) == []
    assert h.state.alarms[-1].acknowledged_s is None  # paused, not confirmed


def test_no_prompt_when_the_electrodes_are_not_running() -> None:
    h = harness()
    configure(h, placed(electrode_region="lumbar", electrode_side="left"))
    h.tick(idle(h), techniques=(("lumbar", "left"),))
    assert active(h) == []
