"""Controller process + US-1 simulator over Modbus TCP on loopback: the foundation's scenarios."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from sessionconsole.api.client import ControllerClient, ControllerUnavailable
from sessionconsole.api.messages import (
    AcknowledgeCommand,
    ClearLockoutCommand,
    ConfigureCommand,
    LogTechniqueCommand,
    PatientCommand,
    StartCommand,
    StopAllCommand,
    StopCommand,
)
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.record.session_view import load_session_view
from sessionconsole.record.store import SessionStore
from sessionconsole.testing import SimProcess
from tests.conftest import BIOMED_PIN
from tests.record.keys import installed_key
from tests.support import ControllerProcess, entries, wait_for, write_room

SETTINGS = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=100, time_s=300)


async def start_output(client: ControllerClient, sim: SimProcess) -> None:
    """Configure and start the US-1 through the API; wait until the simulator emits."""
    reply = await client.send(ConfigureCommand(device="us1", settings=SETTINGS))
    assert reply.ok, reply.error
    await wait_for(lambda: sim.request({"op": "state"})["holding"][1] == 100)
    reply = await client.send(StartCommand(device="us1"))
    assert reply.ok, reply.error
    await wait_for(lambda: sim.request({"op": "state"})["state"] == "RUNNING")


def alarm_entries(db: Path, rule_id: str) -> list[dict[str, object]]:
    return [e.payload for e in entries(db) if e.kind == "alarm" and e.payload["rule_id"] == rule_id]


async def test_session_runs_and_snapshots_show_live_values(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    snap = await wait_for(
        lambda: (
            client.latest
            and client.latest.devices[0].intensity_measured_w_cm2
            and client.latest.devices[0].intensity_measured_w_cm2 > 0.2
            and client.latest
        )
    )
    us = snap.devices[0]
    assert us.state == "RUNNING" and us.output_active and us.connected
    assert us.settings == SETTINGS and us.intensity_setpoint_w_cm2 == 1.0
    # Snapshots arrive at least ten times a second.
    first = (await client.wait_snapshot()).seq
    await asyncio.sleep(1.0)
    assert client.latest is not None and client.latest.seq - first >= 10
    # Techniques are validated against the vocabulary and recorded before the reply.
    ok = await client.send(
        LogTechniqueCommand(action="begin", technique="deep_tissue", region="lumbar")
    )
    assert ok.ok
    bad = await client.send(LogTechniqueCommand(action="begin", technique="reiki", region="lumbar"))
    assert not bad.ok and "unknown technique 'reiki'" in (bad.error or "")
    kinds = [e.kind for e in entries(controller.db)]
    assert kinds[0] == "session_start" and "stream_descriptor" in kinds
    assert kinds.count("operator_action") >= 2 and "technique" in kinds


async def test_setpoint_above_limit_is_refused_and_never_reaches_the_device(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    too_high = SETTINGS.model_copy(update={"intensity_w_cm2": 2.5})
    reply = await client.send(ConfigureCommand(device="us1", settings=too_high))
    assert not reply.ok and reply.rule_id == "SETPOINT_LIMIT"
    assert "max_intensity_w_cm2" in (reply.error or "")
    await asyncio.sleep(0.2)
    assert sim.request({"op": "state"})["holding"][1] == 0
    assert any(e.kind == "refusal" for e in entries(controller.db))


async def test_injected_overtemp_stops_the_device_and_latches_an_alarm(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    assert sim.request({"op": "inject", "fault": "overtemp"})["ok"]
    await wait_for(lambda: alarm_entries(controller.db, "HEAD_OVERTEMP"), timeout_s=5)
    stops = [e for e in entries(controller.db) if e.kind == "stop_sent"]
    [stop] = [s for s in stops if "HEAD_OVERTEMP" in str(s.payload["reason"])]
    [raised] = [
        e
        for e in entries(controller.db)
        if e.kind == "alarm" and e.payload["rule_id"] == "HEAD_OVERTEMP"
    ]
    # The reading that raised it arrived before the tick that stopped the unit (issue #5's
    # telemetry-in to stop-out figure is measured from these two stamps); the stop is
    # written first in the tick, then the alarm.
    arrived = raised.payload["reading_received_mono_ns"]
    assert isinstance(arrived, int) and arrived <= stop.mono_ns <= raised.mono_ns
    assert stop.mono_ns - arrived < 1_000_000_000  # a liveness bound, not a timing claim
    state = sim.request({"op": "state"})
    assert not state["physics"]["output_active"]
    snap = await client.wait_snapshot()
    [alarm] = [a for a in snap.alarms if a.rule_id == "HEAD_OVERTEMP"]
    assert alarm.latched and alarm.active and alarm.priority == "high"
    # Acknowledge while still hot: recorded, but the latch holds.
    assert (await client.send(AcknowledgeCommand())).ok
    await asyncio.sleep(0.3)
    snap = await client.wait_snapshot()
    assert any(a.rule_id == "HEAD_OVERTEMP" and a.active for a in snap.alarms)
    refused = await client.send(StartCommand(device="us1"))
    assert not refused.ok and refused.rule_id == "HEAD_OVERTEMP"


async def test_link_drop_stops_and_alarms(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    assert sim.request({"op": "link", "mode": "drop"})["ok"]
    dropped_at = time.monotonic()
    await wait_for(lambda: alarm_entries(controller.db, "COMMS_LOSS"), timeout_s=3)
    detected_s = time.monotonic() - dropped_at
    assert detected_s < 2.0, detected_s
    assert any(e.kind == "stop_sent" for e in entries(controller.db))
    # The link is dead, so the stop cannot arrive; no heartbeat can either: the device's
    # watchdog (300 ms) stops the output.
    await wait_for(lambda: not sim.request({"op": "state"})["physics"]["output_active"], 3)
    assert sim.request({"op": "link", "mode": "ok"})["ok"]
    snap = await wait_for(
        lambda: client.latest and client.latest.devices[0].connected and client.latest, 5
    )
    assert any(a.rule_id == "COMMS_LOSS" and a.active for a in snap.alarms)


async def test_stop_all_over_the_api_stops_and_latches(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    assert (await client.send(StopAllCommand())).ok
    await wait_for(lambda: sim.request({"op": "state"})["state"] == "IDLE", 2)
    await wait_for(lambda: client.latest and client.latest.devices[0].state == "IDLE", 2)
    refused = await client.send(StartCommand(device="us1"))
    assert not refused.ok and refused.rule_id == "OPERATOR_STOP"
    assert (await client.send(AcknowledgeCommand())).ok
    assert (await client.send(StartCommand(device="us1"))).ok


async def test_controller_killed_the_device_watchdog_stops_the_output(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    controller.kill()
    killed_at = time.monotonic()
    await wait_for(lambda: not sim.request({"op": "state"})["physics"]["output_active"], 3, 0.01)
    elapsed = time.monotonic() - killed_at
    # Watchdog 300 ms; the ICD contract allows +250 ms; the last heartbeat was <= 50 ms before.
    assert elapsed <= 0.3 + 0.25, elapsed
    assert sim.request({"op": "state"})["fault"] == "WATCHDOG"


async def test_restarted_controller_stops_a_running_output_first_thing(
    sim: SimProcess, tmp_path: Path
) -> None:
    _, port = sim.modbus_tcp
    room = write_room(tmp_path, port, watchdog_ms=5000)
    db, sock = tmp_path / "s.db", tmp_path / "api.sock"
    first = ControllerProcess(room, db, sock).start()
    client = ControllerClient(str(sock), operator="tester")
    await client.connect()
    await start_output(client, sim)
    await client.close()
    first.kill()
    # The output keeps running (a 5 s watchdog) until the new controller stops it.
    assert sim.request({"op": "state"})["physics"]["output_active"]
    started = time.monotonic()
    second = ControllerProcess(room, db, sock).start()
    try:
        await wait_for(
            lambda: not sim.request({"op": "state"})["physics"]["output_active"], 3, 0.01
        )
        assert time.monotonic() - started < 3.0  # far inside the 5 s watchdog
        assert sim.request({"op": "state"})["fault"] == "NONE"  # a stop, not the watchdog
        ends = [e.payload for e in entries(db) if e.kind == "session_end"]
        assert ends and ends[0]["exit_status"] == "interrupted"
        # Read before the stop: the output found running is an alarm, not only a log line.
        await wait_for(lambda: alarm_entries(db, "OUTPUT_FOUND_RUNNING"), 3)
        start = [e.payload for e in entries(db) if e.kind == "session_start"][-1]
        assert start["startup"]["us1"]["outputs_running_before_stop"] == ["us1"]
    finally:
        second.stop()


async def test_a_second_controller_on_the_same_database_is_refused(
    controller: ControllerProcess, tmp_path: Path
) -> None:
    second = ControllerProcess(controller.room, controller.db, tmp_path / "other.sock")
    with pytest.raises(RuntimeError, match="controller exited"):
        second.start(timeout_s=5)
    assert "another controller is using" in second.stderr_path.read_text()
    assert second.proc is not None and second.proc.returncode == 2


async def test_shutdown_stops_the_output_and_records_how_it_ended(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    await client.close()
    assert controller.stop() == 0
    assert not sim.request({"op": "state"})["physics"]["output_active"]
    kinds = {e.kind: e.payload for e in entries(controller.db)}
    assert kinds["shutdown"]["stops_taken"] == ["us1"]
    assert kinds["session_end"]["exit_status"] == "completed"


async def test_a_silent_client_is_lost_and_every_output_stops(
    sim: SimProcess, controller: ControllerProcess
) -> None:
    # A frozen UI sends nothing: no heartbeats from this client after its commands.
    frozen = ControllerClient(
        str(controller.socket_path), operator="tester", heartbeat_interval_s=None
    )
    await frozen.connect()
    await start_output(frozen, sim)
    started = time.monotonic()
    await wait_for(lambda: alarm_entries(controller.db, "CLIENT_LOST"), timeout_s=5)
    assert time.monotonic() - started >= 1.5  # the 2 s client timeout, from the last request
    await wait_for(lambda: not sim.request({"op": "state"})["physics"]["output_active"], 3)
    await frozen.close()


async def test_a_heartbeating_client_keeps_the_session_supervised(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    await asyncio.sleep(3.0)  # longer than the client timeout, with heartbeats flowing
    assert sim.request({"op": "state"})["physics"]["output_active"]
    assert not alarm_entries(controller.db, "CLIENT_LOST")


async def test_a_stop_not_obeyed_locks_out_until_biomedical_staff_clear_it(
    client: ControllerClient, sim: SimProcess, controller: ControllerProcess
) -> None:
    await start_output(client, sim)
    assert sim.request({"op": "inject", "fault": "ignore_stop"})["ok"]  # a stuck relay
    assert (await client.send(StopCommand(device="us1"))).ok
    await wait_for(lambda: alarm_entries(controller.db, "STOP_NOT_OBEYED"), timeout_s=3)
    assert sim.request({"op": "clear"})["ok"]  # the relay lets go: the re-sent stop works
    await wait_for(lambda: client.latest and client.latest.devices[0].state == "IDLE", 3)
    assert (await client.send(AcknowledgeCommand())).ok
    # OUTPUT_NOT_COMMANDED clears (acknowledged, output off); the lock-out stays.
    snap = await wait_for(
        lambda: (
            client.latest
            and [a.rule_id for a in client.latest.alarms if a.active] == ["STOP_NOT_OBEYED"]
            and client.latest
        ),
        3,
    )
    assert snap.alarms[-1].latched
    refused = await client.send(StartCommand(device="us1"))
    assert not refused.ok and refused.rule_id == "STOP_NOT_OBEYED"
    refused = await client.send(ClearLockoutCommand(device="us1"))
    assert not refused.ok and refused.rule_id == "ROLE"  # a therapist may not
    claimed = ControllerClient(str(controller.socket_path), operator="bo", role="biomedical")
    with pytest.raises(ControllerUnavailable, match="needs the controller's PIN"):
        await claimed.connect()  # a role merely claimed is refused
    biomed = ControllerClient(
        str(controller.socket_path), operator="bo", role="biomedical", pin=BIOMED_PIN
    )
    await biomed.connect()
    try:
        reply = await biomed.send(ClearLockoutCommand(device="us1"))
        assert reply.ok, reply.error
    finally:
        await biomed.close()
    cleared = [
        a for a in alarm_entries(controller.db, "STOP_NOT_OBEYED") if a["change"] == "cleared"
    ]
    assert cleared and cleared[0]["acknowledged_by"] == "tester"
    assert (await client.send(StartCommand(device="us1"))).ok


async def test_a_session_opened_without_a_patient_is_named_once_and_never_switched(
    client: ControllerClient, controller: ControllerProcess
) -> None:
    snap = await client.wait_snapshot()
    assert snap.patient is None  # the fixture's controller has no --patient
    named = await client.send(PatientCommand(pseudonym="PT-0007"))
    assert named.ok, named.error
    await wait_for(lambda: client.latest is not None and client.latest.patient == "PT-0007")
    again = await client.send(PatientCommand(pseudonym="PT-0007"))  # the Start screen's check
    other = await client.send(PatientCommand(pseudonym="PT-0008"))
    assert again.ok and not other.ok and other.rule_id == "PATIENT"
    assert "this session is for PT-0007" in (other.error or "")
    with pytest.raises(ValidationError, match="never the patient's name"):
        PatientCommand(pseudonym="Jane Doe")  # refused before it is sent; the controller alike
    everything = entries(controller.db)
    patients = [
        (e.payload["pseudonym"], e.payload["confirmed"]) for e in everything if e.kind == "patient"
    ]
    assert patients == [("PT-0007", False), ("PT-0007", True)]
    [refusal] = [e.payload for e in everything if e.kind == "refusal"]
    assert (refusal["pseudonym"], refusal["rule_id"]) == ("PT-0008", "PATIENT")
    # The record lists and shows the session as that patient's.
    with SessionStore(controller.db, create=False, key=installed_key()) as store:
        [meta] = store.start_meta().values()
        view = load_session_view(store, everything[0].session_id)
    assert meta["patient_pseudonym"] == "PT-0007" and view.patient_pseudonym == "PT-0007"
