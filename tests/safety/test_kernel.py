"""The kernel tick by tick, with injected time: every rule of the foundation issue."""

from __future__ import annotations

from sessionconsole.safety import rules
from sessionconsole.safety.kernel import step
from sessionconsole.safety.types import (
    Accepted,
    Acknowledge,
    AlarmChanged,
    Configure,
    Inputs,
    Refused,
    SendConfigure,
    SendHeartbeat,
    SendIntensity,
    SendResetFault,
    SendStart,
    SendStop,
    Start,
    Stop,
    StopAll,
)
from tests.safety.helpers import SETTINGS, Harness, reading, running


def kinds(actions: list[object]) -> list[type]:
    return [type(a) for a in actions]


def started(h: Harness, *devices: str) -> None:
    """Configure and start the devices (default us1), ending with telemetry showing them on."""
    devices = devices or ("us1",)
    others = {d: reading(h.now) for d in h.state.devices}
    for device in devices:
        h.tick(others, Configure(h.next_id(), device, SETTINGS))
        actions = h.tick(others, Start(h.next_id(), device))
        assert SendStart(device) in actions
    h.tick({d: running(h.now) if d in devices else reading(h.now) for d in h.state.devices})


def test_configure_then_start_sends_both_and_accepts() -> None:
    h = Harness()
    actions = h.tick({"us1": reading(0.0)}, Configure(1, "us1", SETTINGS))
    assert SendConfigure("us1", SETTINGS) in actions and Accepted(1) in actions
    actions = h.tick({"us1": reading(h.now)}, Start(2, "us1"))
    assert SendStart("us1") in actions and Accepted(2) in actions


def test_start_refused_before_configure() -> None:
    h = Harness()
    actions = h.tick({"us1": reading(0.0)}, Start(1, "us1"))
    refusal = next(a for a in actions if isinstance(a, Refused))
    assert "not configured" in refusal.reason
    assert not any(isinstance(a, SendStart) for a in actions)


def test_setpoint_above_profile_limit_is_refused_naming_the_limit() -> None:
    h = Harness()
    too_hot = SETTINGS.model_copy(update={"intensity_w_cm2": 2.5})
    actions = h.tick({"us1": reading(0.0)}, Configure(1, "us1", too_hot))
    [refusal] = [a for a in actions if isinstance(a, Refused)]
    assert refusal.rule_id == rules.SETPOINT_LIMIT.id
    assert "2.50" in refusal.reason and "profile 'bench' max_intensity_w_cm2" in refusal.reason
    assert not any(isinstance(a, SendConfigure | SendIntensity) for a in actions)


def test_time_above_limit_is_refused() -> None:
    h = Harness()
    long = SETTINGS.model_copy(update={"time_s": 1200})
    actions = h.tick({"us1": reading(0.0)}, Configure(1, "us1", long))
    assert any(isinstance(a, Refused) and "max_time_s" in a.reason for a in actions)


def test_intensity_change_while_running_is_sent_alone_and_others_refused() -> None:
    h = Harness()
    started(h)
    lower = SETTINGS.model_copy(update={"intensity_w_cm2": 0.5})
    actions = h.tick({"us1": running(h.now)}, Configure(9, "us1", lower))
    assert SendIntensity("us1", 0.5) in actions
    other = SETTINGS.model_copy(update={"duty_pct": 100})
    actions = h.tick({"us1": running(h.now)}, Configure(10, "us1", other))
    assert any(isinstance(a, Refused) and a.rule_id == "STATE" for a in actions)


def test_operator_stop_all_stops_every_device_and_latches_until_acknowledged() -> None:
    h = Harness(("us1", "us2"))
    started(h, "us1", "us2")
    readings = {"us1": running(h.now), "us2": running(h.now)}
    actions = h.tick(readings, StopAll(1))
    assert actions[:2] == [
        SendStop("us1", "OPERATOR_STOP: STOP ALL pressed"),
        SendStop("us2", "OPERATOR_STOP: STOP ALL pressed"),
    ]
    # Latched: a start is refused while the latch holds, even after the outputs are off.
    h.tick({"us1": reading(h.now), "us2": reading(h.now)}, Configure(2, "us1", SETTINGS))
    actions = h.tick({"us1": reading(h.now), "us2": reading(h.now)}, Start(3, "us1"))
    assert any(isinstance(a, Refused) and a.rule_id == "OPERATOR_STOP" for a in actions)
    # Acknowledge clears it (the cause, a key press, is gone at once).
    actions = h.tick({"us1": reading(h.now), "us2": reading(h.now)}, Acknowledge(4, None, "ana"))
    changes = [a.change for a in actions if isinstance(a, AlarmChanged)]
    assert changes == ["acknowledged", "cleared"]
    actions = h.tick({"us1": reading(h.now), "us2": reading(h.now)}, Start(5, "us1"))
    assert SendStart("us1") in actions


def test_stop_is_first_and_not_latched() -> None:
    h = Harness()
    started(h)
    actions = h.tick({"us1": running(h.now)}, Configure(7, "us1", SETTINGS), Stop(8, "us1"))
    assert isinstance(actions[0], SendStop)
    assert h.state.active_alarms() == ()


def test_patient_stop_latches_until_acknowledged_and_switch_released() -> None:
    h = Harness(("us1", "us2"))
    started(h)
    actions = h.tick({"us1": running(h.now, patient_stop_pressed=True), "us2": reading(h.now)})
    assert {a.device for a in actions if isinstance(a, SendStop)} == {"us1", "us2"}
    [alarm] = h.state.active_alarms()
    assert alarm.rule is rules.PATIENT_STOP and alarm.priority == "high"
    # Device latched its own fault; switch released; no ack yet: still active, no reset.
    faulted = reading(h.now, state="FAULT", fault="PATIENT_STOP")
    actions = h.tick({"us1": faulted, "us2": reading(h.now)})
    assert h.state.active_alarms() and SendResetFault("us1") not in actions
    # No heartbeats while the trip holds.
    assert not any(isinstance(a, SendHeartbeat) for a in actions)
    # Acknowledge -> the kernel resets the device's latch; alarm clears when telemetry shows it.
    actions = h.tick(
        {"us1": reading(h.now, state="FAULT", fault="PATIENT_STOP"), "us2": reading(h.now)},
        Acknowledge(20, None, "ana"),
    )
    assert SendResetFault("us1") in actions
    assert h.state.active_alarms()  # device still reports the fault
    actions = h.tick({"us1": reading(h.now), "us2": reading(h.now)})
    assert h.state.active_alarms() == ()
    assert any(isinstance(a, AlarmChanged) and a.change == "cleared" for a in actions)


def test_acknowledge_while_switch_still_pressed_does_not_clear() -> None:
    h = Harness()
    held = reading(0.0, patient_stop_pressed=True, state="FAULT", fault="PATIENT_STOP")
    h.tick({"us1": held})
    actions = h.tick(
        {"us1": reading(h.now, patient_stop_pressed=True, fault="PATIENT_STOP")},
        Acknowledge(1, None, "ana"),
    )
    assert SendResetFault("us1") not in actions
    assert h.state.active_alarms()[0].acknowledged_by == "ana"
    # Released: now the reset goes out (the ack is remembered), then the alarm clears.
    actions = h.tick({"us1": reading(h.now, state="FAULT", fault="PATIENT_STOP")})
    assert SendResetFault("us1") in actions
    h.tick({"us1": reading(h.now)})
    assert h.state.active_alarms() == ()


def test_stale_telemetry_while_running_stops_and_latches() -> None:
    h = Harness(("us1", "us2"))
    started(h)
    last = running(h.now)
    # Within the limit (0.22 s): nothing.
    for _ in range(20):
        actions = h.tick({"us1": last, "us2": reading(h.now)})
        assert not any(isinstance(a, SendStop) for a in actions)
    # Past the limit: stop all, latched.
    for _ in range(5):
        actions = h.tick({"us1": last, "us2": reading(h.now)})
    alarms = h.state.active_alarms()
    assert [a.rule for a in alarms] == [rules.COMMS_LOSS]
    assert h.now - last.received_mono_s <= 0.22 + 0.05
    # Telemetry back but no ack: still latched.
    h.tick({"us1": reading(h.now), "us2": reading(h.now)})
    assert h.state.active_alarms()
    h.tick({"us1": reading(h.now), "us2": reading(h.now)}, Acknowledge(30, None, "ana"))
    assert h.state.active_alarms() == ()


def test_stale_telemetry_when_idle_is_not_an_alarm() -> None:
    h = Harness()
    old = reading(0.0)
    for _ in range(100):
        h.tick({"us1": old})
    assert h.state.active_alarms() == ()


def test_start_sent_but_never_confirmed_counts_as_running_for_comms_loss() -> None:
    h = Harness()
    h.tick({"us1": reading(0.0)}, Configure(1, "us1", SETTINGS))
    h.tick({"us1": reading(h.now)}, Start(2, "us1"))
    frozen = reading(h.now)  # link dies right after the start was sent
    for _ in range(30):
        h.tick({"us1": frozen})
    assert [a.rule for a in h.state.active_alarms()] == [rules.COMMS_LOSS]


def test_head_overtemp_stops_that_device_only_and_latches() -> None:
    h = Harness(("us1", "us2"))
    started(h, "us1", "us2")
    actions = h.tick({"us1": running(h.now, head_temperature_c=41.0), "us2": running(h.now)})
    stops = [a for a in actions if isinstance(a, SendStop)]
    assert [s.device for s in stops] == ["us1"]
    assert {a.rule for a in h.state.active_alarms()} == {
        rules.HEAD_OVERTEMP,
        rules.HEAD_TEMP_WARNING,
    }
    # Cooled but not acknowledged: still latched.
    h.tick(
        {
            "us1": reading(h.now, head_temperature_c=36.0, state="FAULT", fault="OVERTEMP"),
            "us2": running(h.now),
        }
    )
    assert any(a.rule is rules.HEAD_OVERTEMP for a in h.state.active_alarms())
    actions = h.tick(
        {
            "us1": reading(h.now, head_temperature_c=36.0, state="FAULT", fault="OVERTEMP"),
            "us2": running(h.now),
        },
        Acknowledge(5, None, "ana"),
    )
    assert SendResetFault("us1") in actions
    h.tick({"us1": reading(h.now, head_temperature_c=36.0), "us2": running(h.now)})
    assert h.state.active_alarms() == ()


def test_head_temp_just_below_trip_warns_but_does_not_stop() -> None:
    h = Harness()
    started(h)
    actions = h.tick({"us1": running(h.now, head_temperature_c=40.9)})
    assert not any(isinstance(a, SendStop) for a in actions)
    [alarm] = h.state.active_alarms()
    assert alarm.rule is rules.HEAD_TEMP_WARNING and alarm.priority == "medium"
    # Hysteresis: 39.8 keeps it, 39.4 clears it without an acknowledgement.
    h.tick({"us1": running(h.now, head_temperature_c=39.8)})
    assert h.state.active_alarms()
    h.tick({"us1": running(h.now, head_temperature_c=39.4)})
    assert h.state.active_alarms() == ()


def test_stop_is_resent_while_output_stays_on_and_heartbeats_withheld() -> None:
    h = Harness()
    started(h)
    h.tick({"us1": running(h.now)}, StopAll(3))
    resends = 0
    for _ in range(25):  # 0.25 s of a stuck relay, inside the stop-confirm time
        actions = h.tick({"us1": running(h.now)})
        resends += sum(isinstance(a, SendStop) for a in actions)
        assert not any(isinstance(a, SendHeartbeat) for a in actions)
    assert resends == 2  # every 100 ms, not every tick (until STOP_NOT_OBEYED locks it out)


def test_heartbeats_at_the_profile_interval_when_healthy() -> None:
    h = Harness()
    beats = 0
    for _ in range(100):  # one second
        actions = h.tick({"us1": reading(h.now)})
        beats += sum(isinstance(a, SendHeartbeat) for a in actions)
    assert beats == 10


def test_device_reboot_mid_session_forgets_settings_and_latches() -> None:
    h = Harness()
    started(h)
    h.tick({"us1": reading(h.now, boot_count=2)})
    [alarm] = h.state.active_alarms()
    assert alarm.rule is rules.DEVICE_REBOOTED
    h.tick({"us1": reading(h.now, boot_count=2)}, Acknowledge(4, None, "ana"))
    actions = h.tick({"us1": reading(h.now, boot_count=2)}, Start(5, "us1"))
    assert any(isinstance(a, Refused) and "not configured" in a.reason for a in actions)


def test_device_fault_of_its_own_is_an_alarm_and_reset_only_on_acknowledge() -> None:
    h = Harness()
    started(h)
    faulted = reading(h.now, state="FAULT", fault="WATCHDOG")
    actions = h.tick({"us1": faulted})
    assert [a.rule for a in h.state.active_alarms()] == [rules.DEVICE_FAULT]
    for _ in range(200):  # two seconds: never reset by itself
        actions = h.tick({"us1": reading(h.now, state="FAULT", fault="WATCHDOG")})
        assert SendResetFault("us1") not in actions
    actions = h.tick(
        {"us1": reading(h.now, state="FAULT", fault="WATCHDOG")}, Acknowledge(9, None, "ana")
    )
    assert SendResetFault("us1") in actions


def test_acknowledge_unknown_alarm_is_refused() -> None:
    h = Harness()
    actions = h.tick({"us1": reading(0.0)}, Acknowledge(1, 99, "ana"))
    assert any(isinstance(a, Refused) and a.rule_id == "UNKNOWN_ALARM" for a in actions)


def test_stops_come_before_every_other_action() -> None:
    h = Harness(("us1", "us2"))
    h.tick({"us1": reading(0.0), "us2": reading(0.0)}, Configure(1, "us2", SETTINGS))
    actions = h.tick(
        {"us1": reading(h.now, patient_stop_pressed=True), "us2": reading(h.now)},
        Configure(2, "us2", SETTINGS),
    )
    first_other = next(i for i, a in enumerate(actions) if not isinstance(a, SendStop))
    assert all(isinstance(a, SendStop) for a in actions[:first_other])
    assert not any(isinstance(a, SendStop) for a in actions[first_other:])


# ---- found in review: each a regression test ----


def test_start_and_stop_in_one_tick_never_leave_the_output_running() -> None:
    h = Harness()
    h.tick({"us1": reading(0.0)}, Configure(1, "us1", SETTINGS))
    actions = h.tick({"us1": reading(h.now)}, Start(2, "us1"), Stop(3, "us1"))
    assert SendStop("us1", "operator stop") in actions
    assert SendStart("us1") not in actions  # withdrawn: stops go out first
    # And stop-then-start means start (the operator's last word), stop first on the wire.
    actions = h.tick({"us1": reading(h.now)}, Stop(4, "us1"), Start(5, "us1"))
    assert actions.index(SendStop("us1", "operator stop")) < actions.index(SendStart("us1"))


def test_stale_telemetry_never_reports_a_cause_as_gone() -> None:
    h = Harness()
    started(h)
    hot = reading(h.now, head_temperature_c=42.0, state="FAULT", fault="OVERTEMP")
    h.tick({"us1": hot}, Acknowledge(7, None, "ana"))
    for _ in range(50):  # the link dies while the head is hot: half a second of silence
        h.tick({"us1": hot})
    overtemp = [a for a in h.state.alarms if a.rule is rules.HEAD_OVERTEMP]
    assert overtemp and overtemp[0].active and overtemp[0].cause_present


def test_comms_loss_holds_until_fresh_telemetry_shows_the_output_off() -> None:
    h = Harness()
    started(h)
    frozen = running(h.now)
    for _ in range(30):
        h.tick({"us1": frozen})
    h.tick({"us1": frozen}, Acknowledge(8, None, "ana"))
    for _ in range(5):
        actions = h.tick({"us1": frozen})
        assert not any(isinstance(a, SendHeartbeat) for a in actions)
    assert any(a.rule is rules.COMMS_LOSS for a in h.state.active_alarms())
    h.tick({"us1": running(h.now)})  # back, but still on: still present
    assert any(a.rule is rules.COMMS_LOSS for a in h.state.active_alarms())
    h.tick({"us1": reading(h.now)})  # fresh and off: now it clears (acknowledged)
    assert not any(a.rule is rules.COMMS_LOSS for a in h.state.active_alarms())


def test_output_the_console_did_not_start_is_stopped_and_starved() -> None:
    h = Harness()
    actions = h.tick({"us1": running(0.0)})
    [alarm] = h.state.active_alarms()
    assert alarm.rule is rules.OUTPUT_NOT_COMMANDED and "did not start it" in alarm.message
    assert SendStop in [type(a) for a in actions]
    for _ in range(20):
        actions = h.tick({"us1": running(h.now)})
        assert not any(isinstance(a, SendHeartbeat) for a in actions)


def test_a_plain_stop_that_is_not_obeyed_raises_the_alarm_after_the_confirm_time() -> None:
    h = Harness()
    started(h)
    h.tick({"us1": running(h.now)}, Stop(9, "us1"))
    for _ in range(25):  # 0.25 s: still inside the 0.3 s stop-confirm time
        h.tick({"us1": running(h.now)})
    assert h.state.active_alarms() == ()
    for _ in range(10):
        actions = h.tick({"us1": running(h.now)})
    alarm, lockout = h.state.active_alarms()
    assert alarm.rule is rules.OUTPUT_NOT_COMMANDED and "stopped it" in alarm.message
    assert lockout.rule is rules.STOP_NOT_OBEYED and "locked out" in lockout.message
    assert not any(isinstance(a, SendHeartbeat) for a in actions)


def test_stop_is_not_resent_from_stale_telemetry() -> None:
    h = Harness()
    started(h)
    frozen = running(h.now)
    stops = 0
    for _ in range(100):  # one second of a dead link
        stops += sum(isinstance(a, SendStop) for a in h.tick({"us1": frozen}))
    assert stops == 1  # the COMMS_LOSS trip's stop; the driver keeps it pending until delivered


def test_a_device_that_finished_is_not_commanded_any_more() -> None:
    h = Harness()
    started(h)
    h.tick({"us1": reading(h.now, state="DONE")})
    assert h.state.devices["us1"].commanded_on is False
    h.tick({"us1": running(h.now)})  # it starts by itself: not allowed
    [alarm] = h.state.active_alarms()
    assert alarm.rule is rules.OUTPUT_NOT_COMMANDED


def test_uncommanded_output_alarm_holds_while_the_relay_sticks_even_if_acknowledged() -> None:
    # Found by the state machine: the alarm's own stop reset the settle timer and the alarm
    # looked "gone" one tick later, so an acknowledgement cleared it with the output on.
    h = Harness()
    started(h)
    h.tick({"us1": running(h.now)}, StopAll(20))
    h.tick({"us1": running(h.now)}, Acknowledge(21, None, "ana"))  # clears OPERATOR_STOP
    for _ in range(40):
        h.tick({"us1": running(h.now)}, Acknowledge(h.next_id() + 100, None, "ana"))
    assert [a.rule for a in h.state.active_alarms()] == [
        rules.OUTPUT_NOT_COMMANDED,
        rules.STOP_NOT_OBEYED,
    ]
    h.tick({"us1": reading(h.now)})  # finally off: acknowledged and gone -> cleared
    # ... but the lock-out stays until biomedical staff clear it.
    assert [a.rule for a in h.state.active_alarms()] == [rules.STOP_NOT_OBEYED]


def test_repeating_a_stop_does_not_postpone_the_stuck_output_alarm() -> None:
    # Found by the state machine: each Stop restarted the 300 ms confirm time.
    h = Harness()
    started(h)
    for i in range(5):  # the operator presses stop every 100 ms on a stuck relay
        h.tick({"us1": running(h.now)}, Stop(40 + i, "us1"))
        for _ in range(9):
            h.tick({"us1": running(h.now)})
    assert [a.rule for a in h.state.active_alarms()] == [
        rules.OUTPUT_NOT_COMMANDED,
        rules.STOP_NOT_OBEYED,
    ]


def test_client_lost_while_an_output_runs_stops_everything_and_latches() -> None:
    h = Harness(("us1", "us2"))
    started(h)
    for silence in (0.5, 1.0, 1.9, 2.0):  # within the 2 s client timeout: nothing
        h.state, actions = step(
            h.state,
            Inputs({"us1": running(h.now), "us2": reading(h.now)}, client_silence_s=silence),
            h.now + 0.01,
        )
        h.now += 0.01
        assert not any(isinstance(a, SendStop) for a in actions)
    h.now += 0.01
    h.state, actions = step(
        h.state, Inputs({"us1": running(h.now), "us2": reading(h.now)}, client_silence_s=2.1), h.now
    )
    assert {a.device for a in actions if isinstance(a, SendStop)} == {"us1", "us2"}
    [alarm] = h.state.active_alarms()
    assert alarm.rule is rules.CLIENT_LOST and alarm.priority == "high"
    # A client is back but nobody acknowledged: still latched; then acknowledged: cleared.
    h.now += 0.01
    h.state, _ = step(
        h.state, Inputs({"us1": reading(h.now), "us2": reading(h.now)}, client_silence_s=0.1), h.now
    )
    assert h.state.active_alarms()
    h.now += 0.01
    h.state, _ = step(
        h.state,
        Inputs(
            {"us1": reading(h.now), "us2": reading(h.now)}, (Acknowledge(60, None, "ana"),), 0.1
        ),
        h.now,
    )
    assert h.state.active_alarms() == ()


def test_no_client_is_not_an_alarm_while_every_output_is_off() -> None:
    h = Harness()
    for _ in range(10):
        h.now += 0.01
        h.state, _ = step(h.state, Inputs({"us1": reading(h.now)}, client_silence_s=60.0), h.now)
    assert h.state.active_alarms() == ()
