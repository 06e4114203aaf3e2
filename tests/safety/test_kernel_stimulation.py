"""The kernel with a stimulation output beside an ultrasound one, tick by tick (issue #5)."""

from __future__ import annotations

from dataclasses import replace

from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings, rms_ma
from sessionconsole.safety import rules
from sessionconsole.safety.kernel import held_devices
from sessionconsole.safety.types import (
    Accepted,
    Acknowledge,
    AlarmChanged,
    Configure,
    Reading,
    Refused,
    SendAmplitude,
    SendConfigure,
    SendHeartbeat,
    SendResetFault,
    SendStart,
    SendStop,
    Start,
)
from tests.safety.helpers import (
    SETTINGS,
    SETUP,
    STIM_LIMITS,
    WAVEFORM,
    Harness,
    reading,
    stim_reading,
)

CH = "es2.ch1"


def harness() -> Harness:
    return Harness(("us1", CH), {CH: STIM_LIMITS})


def idle(h: Harness, **stim: object) -> dict[str, Reading | None]:
    return {"us1": reading(h.now), CH: stim_reading(h.now, **stim)}


def refusal(actions: list[object]) -> Refused:
    return next(a for a in actions if isinstance(a, Refused))


def started(h: Harness) -> None:
    h.tick(idle(h), Configure(h.next_id(), CH, SETUP))
    actions = h.tick(idle(h), Start(h.next_id(), CH))
    assert SendStart(CH) in actions
    h.tick(idle(h, state="ON", running=True, output_active=True))


def test_rms_by_the_console_conventions() -> None:
    # CLINICAL-REFERENCE worked example: SYM 100 Hz, 200 us, 20 mA peak -> 4.0 mA rms.
    assert round(rms_ma(WAVEFORM, 20.0), 3) == 4.0
    ifc = StimulationSettings(mode="IFC", freq_hz=100, pw_us=200)
    assert round(rms_ma(ifc, 80.0), 1) == 56.6
    russ = StimulationSettings(mode="RUSS", freq_hz=50, pw_us=200)
    assert rms_ma(russ, 80.0) == 40.0
    asym = StimulationSettings(mode="ASYM", freq_hz=100, pw_us=200)
    assert round(rms_ma(asym, 20.0), 3) == round(20.0 * (0.0002 * 100) ** 0.5, 3)


def test_configure_then_start_a_stimulation_output() -> None:
    h = harness()
    actions = h.tick(idle(h), Configure(1, CH, SETUP))
    assert SendConfigure(CH, SETUP) in actions and Accepted(1) in actions
    actions = h.tick(idle(h), Start(2, CH))
    assert SendStart(CH) in actions and Accepted(2) in actions


def test_peak_above_the_profile_limit_is_refused_naming_it() -> None:
    h = harness()
    over = SETUP.model_copy(update={"amplitude_ma": 100.5})
    actions = h.tick(idle(h), Configure(1, CH, over))
    r = refusal(actions)
    assert r.rule_id == rules.SETPOINT_LIMIT.id
    assert "100.5 mA peak is above 100.0 mA (profile 'bench' max_amplitude_ma)" in r.reason
    assert not any(isinstance(a, SendConfigure) for a in actions)


def test_rms_above_the_clinical_limit_is_refused_naming_it() -> None:
    h = harness()
    ifc = ChannelSetup(
        waveform=StimulationSettings(mode="IFC", freq_hz=100, pw_us=200), amplitude_ma=80.0
    )
    actions = h.tick(idle(h), Configure(1, CH, ifc))
    r = refusal(actions)
    assert r.rule_id == rules.SETPOINT_LIMIT.id
    assert "is 56.6 mA rms, above 50.0 mA rms (clinical limit stimulation.max_rms_ma)" in r.reason
    allowed = ifc.model_copy(update={"amplitude_ma": 70.5})  # 49.9 mA rms
    assert SendConfigure(CH, allowed) in h.tick(idle(h), Configure(2, CH, allowed))


def test_settings_of_the_other_modality_are_refused() -> None:
    h = harness()
    r = refusal(h.tick(idle(h), Configure(1, CH, SETTINGS)))
    assert r.rule_id == "WRONG_MODALITY" and "stimulation output" in r.reason
    r = refusal(h.tick(idle(h), Configure(2, "us1", SETUP)))
    assert r.rule_id == "WRONG_MODALITY" and "ultrasound output" in r.reason


def test_while_running_only_the_amplitude_may_change() -> None:
    h = harness()
    started(h)
    on = idle(h, state="ON", running=True, output_active=True)
    louder = SETUP.model_copy(update={"amplitude_ma": 25.0})
    actions = h.tick(on, Configure(h.next_id(), CH, louder))
    assert SendAmplitude(CH, 25.0) in actions
    assert not any(isinstance(a, SendConfigure) for a in actions)
    faster = ChannelSetup(waveform=WAVEFORM.model_copy(update={"freq_hz": 150}), amplitude_ma=25.0)
    r = refusal(h.tick(on, Configure(h.next_id(), CH, faster)))
    assert r.rule_id == "STATE" and "only amplitude may change" in r.reason


def test_electrode_fault_stops_that_output_only() -> None:
    h = harness()
    started(h)
    actions = h.tick(idle(h, state="FAULT", fault="ELECTRODE"))
    raised = [a.alarm for a in actions if isinstance(a, AlarmChanged) and a.change == "raised"]
    assert [(a.rule.id, a.device) for a in raised] == [(rules.DEVICE_FAULT.id, CH)]
    assert SendStop(CH, f"DEVICE_FAULT: {CH}: device fault ELECTRODE") in actions
    assert not any(isinstance(a, SendStop) and a.device == "us1" for a in actions)
    assert held_devices(h.state) == {CH}
    later = h.tick(idle(h, state="FAULT", fault="ELECTRODE"), dt=0.2)
    beats = {a.device for a in later if isinstance(a, SendHeartbeat)}
    assert CH not in beats and "us1" in beats  # the charge pump stops for the held output


def test_patient_stop_on_the_stimulator_stops_every_output() -> None:
    h = harness()
    started(h)
    actions = h.tick(idle(h, state="FAULT", fault="PATIENT_STOP"))
    assert {a.device for a in actions if isinstance(a, SendStop)} == {"us1", CH}
    assert held_devices(h.state) == {"us1", CH}
    h.tick(idle(h), Acknowledge(h.next_id(), None, "tester"))
    h.tick(idle(h))
    assert held_devices(h.state) == set()


def test_no_head_temperature_rules_for_an_output_without_a_head() -> None:
    h = harness()
    started(h)
    for _ in range(20):
        actions = h.tick(idle(h, state="ON", running=True, output_active=True))
        assert not any(isinstance(a, AlarmChanged) for a in actions)
    assert h.state.active_alarms() == ()


def test_a_stimulation_output_running_uncommanded_is_stopped() -> None:
    h = harness()
    h.tick(idle(h))
    actions = h.tick(idle(h, state="ON", running=True, output_active=True))
    raised = [a.alarm.rule.id for a in actions if isinstance(a, AlarmChanged)]
    assert raised == [rules.OUTPUT_NOT_COMMANDED.id]
    assert any(isinstance(a, SendStop) and a.device == CH for a in actions)


def test_an_output_is_not_started_while_a_sibling_of_its_unit_is_held() -> None:
    # The unit's watchdog is shared: while ch1 is held (no heartbeats for the unit), ch2
    # would run unfed and trip the unit's watchdog, so its start is refused up front.
    ch2 = "es2.ch2"
    sibling = replace(STIM_LIMITS, unit="es2")
    h = Harness(("us1", CH, ch2), {CH: sibling, ch2: sibling})
    readings: dict[str, Reading | None] = {
        "us1": reading(h.now),
        CH: stim_reading(h.now),
        ch2: stim_reading(h.now),
    }
    h.tick(readings, Configure(h.next_id(), ch2, SETUP))
    readings[CH] = stim_reading(h.now, state="FAULT", fault="ELECTRODE")
    h.tick(readings)
    actions = h.tick(readings, Start(h.next_id(), ch2))
    r = refusal(actions)
    assert (
        r.rule_id == rules.DEVICE_FAULT.id and "shares unit es2, held by DEVICE_FAULT" in r.reason
    )
    assert not any(isinstance(a, SendStart) for a in actions)
    # another unit's output is not affected
    h.tick(readings, Configure(h.next_id(), "us1", SETTINGS))
    assert SendStart("us1") in h.tick(readings, Start(h.next_id(), "us1"))


def test_both_channels_latched_by_a_patient_stop_are_reset_after_acknowledgement() -> None:
    # Both ES-2 channels latch PATIENT_STOP together. Each output's reset used to wait for
    # the other's alarm to clear, which needed the other's reset: neither could restart.
    ch2 = "es2.ch2"
    sibling = replace(STIM_LIMITS, unit="es2")
    h = Harness(("us1", CH, ch2), {CH: sibling, ch2: sibling})

    def world(fault: str | None, pressed: bool = False) -> dict[str, Reading | None]:
        state = "FAULT" if fault else "IDLE"
        return {
            "us1": reading(h.now),
            CH: stim_reading(h.now, state=state, fault=fault, patient_stop_pressed=pressed),
            ch2: stim_reading(h.now, state=state, fault=fault, patient_stop_pressed=pressed),
        }

    h.tick(world("PATIENT_STOP", pressed=True))
    h.tick(world("PATIENT_STOP", pressed=True), Acknowledge(h.next_id(), None, "tester"))
    held = h.tick(world("PATIENT_STOP", pressed=True))
    assert not any(isinstance(a, SendResetFault) for a in held)  # the switch is still held
    released = h.tick(world("PATIENT_STOP"))
    assert {a.device for a in released if isinstance(a, SendResetFault)} == {CH, ch2}
    h.tick(world(None))
    h.tick(world(None))
    assert held_devices(h.state) == set()
    h.tick(world(None), Configure(h.next_id(), ch2, SETUP))
    assert SendStart(ch2) in h.tick(world(None), Start(h.next_id(), ch2))
