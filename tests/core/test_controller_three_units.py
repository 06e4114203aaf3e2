"""The controller with all three reference units at once: US-1 over Modbus TCP, ES-2 on a
pty, CX-3 through a real mosquitto (issues #4 and #5: every unit runs through the console)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import (
    AcknowledgeCommand,
    ConfigureCommand,
    NoteCommand,
    PainScoreCommand,
    PatientCommand,
    StartCommand,
    StimulationSnapshot,
    StopAllCommand,
    UltrasoundSnapshot,
)
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.record.chunks import samples_columns
from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for
from sessionconsole.testing.es2 import ES2_ARGS
from sessionconsole.testing.mqtt import Mosquitto
from tests.support import ControllerProcess, entries, wait_for

US = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=100, time_s=300)
SETUP = ChannelSetup(
    waveform=StimulationSettings(mode="SYM", freq_hz=100, pw_us=200, ramp_s=1),
    amplitude_ma=10.0,
)
OUTPUTS = ("us1", "es2.ch1", "es2.ch2", "cx3.us", "cx3.stim")
PLAN = Path(__file__).resolve().parents[2] / "config" / "plans" / "PT-0042" / "low-back.toml"

PROFILES = {
    "us1": """kind = "us1"
name = "US-1 test"
era_cm2 = 5.0
bnr = 4.2
watchdog_ms = 1000
[link]
kind = "modbus_tcp"
host = "127.0.0.1"
port = {port}
[limits]
max_intensity_w_cm2 = 2.0
max_time_s = 900
""",
    "es2": """kind = "es2"
name = "ES-2 test"
watchdog_ms = 1000
[link]
kind = "serial"
port = "{port}"
telemetry_hz = 20
[limits]
max_amplitude_ma = 40.0
electrode_area_cm2 = 25.0
""",
    "cx3": """kind = "cx3"
name = "CX-3 test"
serial = "{serial}"
era_cm2 = 5.0
bnr = 4.2
watchdog_ms = 1000
[link]
kind = "mqtt"
host = "127.0.0.1"
port = {port}
keepalive_s = 2
[limits]
max_intensity_w_cm2 = 2.0
max_time_s = 900
max_amplitude_ma = 40.0
electrode_area_cm2 = 25.0
""",
}


@dataclass
class Room:
    us1: SimProcess
    es2: SimProcess
    cx3: SimProcess
    controller: ControllerProcess


@pytest.fixture
def room(tmp_path: Path, mosquitto_broker: Mosquitto) -> Iterator[Room]:
    """Three simulators and a controller driving them all."""
    us1 = SimProcess("us1").start()
    es2 = SimProcess("es2", ES2_ARGS).start()
    cx3 = cx3_sim_for(mosquitto_broker).start()
    serial = str(cx3.endpoints["mqtt"]["root"]).split("/", 1)[1]
    (tmp_path / "us1.toml").write_text(PROFILES["us1"].format(port=us1.modbus_tcp[1]))
    (tmp_path / "es2.toml").write_text(PROFILES["es2"].format(port=es2.endpoints["serial_pty"]))
    (tmp_path / "cx3.toml").write_text(
        PROFILES["cx3"].format(port=mosquitto_broker.port, serial=serial)
    )
    room_file = tmp_path / "room.toml"
    room_file.write_text(
        'name = "Three units"\n'
        + "".join(f'[devices.{d}]\nprofile = "{d}.toml"\n' for d in ("us1", "es2", "cx3"))
    )
    ctl = ControllerProcess(
        room_file,
        tmp_path / "sessions.db",
        tmp_path / "api.sock",
        ("--therapist", "Dana", "--patient", "PT-0042", "--plan", str(PLAN)),
    )
    try:
        yield Room(us1, es2, cx3, ctl.start())
    finally:
        ctl.stop()
        for sim in (us1, es2, cx3):
            sim.stop()


@pytest.fixture
async def client(room: Room) -> AsyncIterator[ControllerClient]:
    c = ControllerClient(str(room.controller.socket_path), operator="tester", client_name="t")
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


def outputs_on(room: Room) -> dict[str, bool]:
    """From the simulators' test ports: which output stage drives right now."""
    us1 = room.us1.request({"op": "state"})
    es2 = room.es2.request({"op": "state"})["channels"]
    cx3 = room.cx3.request({"op": "state"})
    return {
        "us1": bool(us1["physics"]["output_active"]),
        "es2.ch1": es2[0]["state"] in ("RAMP", "ON", "OFFPHASE"),
        "es2.ch2": es2[1]["state"] in ("RAMP", "ON", "OFFPHASE"),
        "cx3.us": bool(cx3["us"]["output_active"]),
        "cx3.stim": bool(cx3["stim"]["output_active"]),
    }


async def start_all(client: ControllerClient, room: Room) -> None:
    """Configure and start every output through the API; wait until each one drives."""
    for output in OUTPUTS:
        settings = US if output in ("us1", "cx3.us") else SETUP
        reply = await client.send(ConfigureCommand(device=output, settings=settings))
        assert reply.ok, (output, reply.error)
    await wait_for(lambda: client.latest and all(d.settings for d in client.latest.devices), 10)
    for output in ("us1", "es2.ch1", "es2.ch2", "cx3.us", "cx3.stim"):
        reply = await client.send(StartCommand(device=output, attended=output == "es2.ch1"))
        assert reply.ok, (output, reply.error)
    await wait_for(lambda: all(outputs_on(room).values()), 10)


async def test_every_output_runs_and_stop_all_reaches_every_unit(
    client: ControllerClient, room: Room
) -> None:
    snap = await wait_for(
        lambda: client.latest and len(client.latest.devices) == 5 and client.latest
    )
    kinds = {d.device: type(d) for d in snap.devices}
    assert kinds == {
        "us1": UltrasoundSnapshot,
        "es2.ch1": StimulationSnapshot,
        "es2.ch2": StimulationSnapshot,
        "cx3.us": UltrasoundSnapshot,
        "cx3.stim": StimulationSnapshot,
    }
    await start_all(client, room)
    snap = await wait_for(
        lambda: (
            client.latest
            and all(d.output_active and d.connected for d in client.latest.devices)
            and client.latest
        ),
        10,
    )
    stim = next(d for d in snap.devices if d.device == "es2.ch1")
    assert isinstance(stim, StimulationSnapshot) and stim.settings == SETUP
    assert (await client.send(StopAllCommand())).ok
    await wait_for(lambda: not any(outputs_on(room).values()), 10)
    db = room.controller.db
    stops = {e.payload["device"] for e in entries(db) if e.kind == "stop_sent"}
    assert stops >= set(OUTPUTS)
    descriptors = {
        e.payload["device"]: e.payload for e in entries(db) if e.kind == "stream_descriptor"
    }
    assert descriptors["es2.ch1"]["keys"]["amplitude_setpoint_ma"] == {"unit": "mA", "max": 40.0}
    assert descriptors["cx3.us"]["modality"] == "ultrasound"

    def sampled() -> dict[str, dict[str, list[object]]]:
        """Every output's recorded columns, all its samples entries joined in order."""
        streams: dict[str, dict[str, list[object]]] = {}
        for e in entries(db):
            if e.kind == "samples":
                columns = streams.setdefault(e.payload["device"], {})
                for key, values in samples_columns(e.payload)[1].items():
                    columns.setdefault(key, []).extend(values)
        return streams

    await wait_for(lambda: set(sampled()) >= set(OUTPUTS), 10)
    values = sampled()
    assert max(v for v in values["es2.ch1"]["amplitude_measured_ma"] if v is not None) > 0.0
    assert "head_temperature_c" in values["cx3.us"] and "impedance_ohm" in values["cx3.stim"]
    refused = await client.send(StartCommand(device="es2.ch1"))
    assert not refused.ok and refused.rule_id == "OPERATOR_STOP"


async def test_a_patient_stop_on_the_stimulator_stops_the_ultrasound_units_too(
    client: ControllerClient, room: Room
) -> None:
    await start_all(client, room)
    assert room.es2.request({"op": "inject", "fault": "patient_stop"})["ok"]
    # The ES-2 stops itself (device rule); the console stops the US-1 and the CX-3.
    await wait_for(lambda: not any(outputs_on(room).values()), 10)

    def patient_stop_alarms() -> list[dict[str, object]]:
        alarms = [e.payload for e in entries(room.controller.db) if e.kind == "alarm"]
        return [a for a in alarms if a["rule_id"] == "PATIENT_STOP"]

    [raised, *_] = await wait_for(patient_stop_alarms, 10)
    assert raised["device"] in ("es2.ch1", "es2.ch2")
    stops = [e.payload for e in entries(room.controller.db) if e.kind == "stop_sent"]
    assert {s["device"] for s in stops if "PATIENT_STOP" in str(s["reason"])} >= set(OUTPUTS)
    assert (await client.send(AcknowledgeCommand())).ok


async def test_stimulation_limits_are_enforced_before_anything_is_sent(
    client: ControllerClient, room: Room
) -> None:
    over = SETUP.model_copy(update={"amplitude_ma": 45.0})
    reply = await client.send(ConfigureCommand(device="es2.ch1", settings=over))
    assert not reply.ok and reply.rule_id == "SETPOINT_LIMIT"
    assert "profile 'ES-2 test' max_amplitude_ma" in (reply.error or "")
    wrong = await client.send(ConfigureCommand(device="cx3.stim", settings=US))
    assert not wrong.ok and wrong.rule_id == "WRONG_MODALITY"
    channel = room.es2.request({"op": "state"})["channels"][0]
    assert channel["target_ma"] == 0 and not channel["configured"]


async def test_the_record_carries_people_pain_notes_and_output_runs(
    client: ControllerClient, room: Room
) -> None:
    # Issue #6 item 1: session start with therapist and pseudonym; pain before/after; notes;
    # output start/stop from telemetry with the attended mark billing needs.
    assert (await client.send(PainScoreCommand(when="before", score=6))).ok
    assert (await client.send(PatientCommand(pseudonym="PT-0042"))).ok  # the identity check
    switched = await client.send(PatientCommand(pseudonym="PT-0007"))
    assert not switched.ok and switched.rule_id == "PATIENT"
    await start_all(client, room)
    louder = US.model_copy(update={"intensity_w_cm2": 1.2})  # a change with its reason
    assert (
        await client.send(ConfigureCommand(device="us1", settings=louder, why="plan step 1"))
    ).ok
    await wait_for(  # the console has seen every output on in telemetry
        lambda: client.latest and all(d.output_active for d in client.latest.devices), 10
    )
    assert (await client.send(NoteCommand(text="left calf tender at the insertion"))).ok
    assert (await client.send(StopAllCommand())).ok
    await wait_for(lambda: not any(outputs_on(room).values()), 10)
    assert (await client.send(PainScoreCommand(when="after", score=3))).ok
    with pytest.raises(ValidationError, match="less than or equal to 10"):
        PainScoreCommand(when="after", score=11)  # NPRS is 0-10 (the controller parses alike)
    db = room.controller.db

    def runs() -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        for e in entries(db):
            if e.kind in ("output_start", "output_stop"):
                seen.setdefault(str(e.payload["device"]), []).append(e.kind)
        return seen

    await wait_for(
        lambda: all(runs().get(o) == ["output_start", "output_stop"] for o in OUTPUTS), 10
    )
    everything = entries(db)
    start = next(e.payload for e in everything if e.kind == "session_start")
    assert (start["therapist"], start["patient_pseudonym"]) == ("Dana", "PT-0042")
    assert start["plan"]["pseudonym"] == "PT-0042" and start["plan"]["steps"]
    changes = [
        e.payload["command"]
        for e in everything
        if e.kind == "operator_action" and e.payload["command"]["type"] == "configure"
    ]
    assert {"device": "us1", "why": "plan step 1"}.items() <= changes[-1].items()
    pains = [(e.payload["when"], e.payload["score"]) for e in everything if e.kind == "pain_score"]
    assert pains == [("before", 6), ("after", 3)]
    assert [e.payload["text"] for e in everything if e.kind == "note"] == [
        "left calf tender at the insertion"
    ]
    starts = {e.payload["device"]: e.payload for e in everything if e.kind == "output_start"}
    assert starts["es2.ch1"]["attended"] is True and starts["es2.ch2"]["attended"] is False
    assert starts["es2.ch1"]["settings"]["amplitude_ma"] == 10.0
    assert starts["cx3.us"]["modality"] == "ultrasound" and "attended" not in starts["cx3.us"]
