"""CX-3 MQTT payloads (ICD CX-3 v2): examples from the ICD, refusals, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sessionconsole.model.combination import Cx3Profile
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import StimulationSettings
from sessionconsole.protocols import cx3

ICD_TELEMETRY: dict[str, Any] = {
    "seq": 812,
    "t_ms": 81234,
    "us": {
        "state": "RUNNING",
        "intensity_set_w_cm2": 1.0,
        "intensity_w_cm2": 1.02,
        "power_w": 5.1,
        "head_temp_c": 36.4,
        "coupling_pct": 88,
        "remaining_s": 312,
        "energy_j": 1530,
        "era_cm2": 5.0,
        "bnr": 4.2,
    },
    "stim": {
        "state": "ON",
        "mode": "SYM",
        "electrode": "PADS",
        "ma_set": 18.5,
        "ma": 18.4,
        "impedance_ohm": 1320,
    },
    "faults": [],
}
PARSERS: list[Callable[[bytes], BaseModel]] = [
    cx3.parse_status,
    cx3.parse_telemetry,
    cx3.parse_reply,
    cx3.parse_event,
    cx3.parse_command,
]


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def test_topics_from_root_and_serial() -> None:
    topics = cx3.Topics.of("cx3", "CX3-0001")
    assert (topics.status, topics.telemetry, topics.cmd) == (
        "cx3/CX3-0001/status",
        "cx3/CX3-0001/telemetry",
        "cx3/CX3-0001/cmd",
    )
    assert (topics.reply, topics.event, topics.heartbeat) == (
        "cx3/CX3-0001/reply",
        "cx3/CX3-0001/event",
        "cx3/CX3-0001/heartbeat",
    )
    assert cx3.Topics.of("site/cx3/", "X").status == "site/cx3/X/status"


def test_icd_telemetry_becomes_a_reading_in_the_clinics_words() -> None:
    reading = cx3.reading_from(cx3.parse_telemetry(dumps(ICD_TELEMETRY)), 12.5)
    assert (reading.received_mono_s, reading.seq, reading.device_t_ms) == (12.5, 812, 81234)
    us, stim = reading.ultrasound, reading.stimulation
    assert (us.intensity_setpoint_w_cm2, us.intensity_measured_w_cm2) == (1.0, 1.02)
    assert (us.head_temperature_c, us.era_cm2, us.bnr, us.running) == (36.4, 5.0, 4.2, True)
    assert (stim.amplitude_setpoint_ma, stim.amplitude_measured_ma) == (18.5, 18.4)
    assert (stim.impedance_ohm, stim.electrode, stim.running) == (1320.0, "PADS", True)
    assert reading.faults == () and reading.running


def test_unconfigured_stimulation_has_null_mode_and_electrode() -> None:
    data = json.loads(json.dumps(ICD_TELEMETRY))
    data["stim"] |= {"state": "IDLE", "mode": None, "electrode": None, "ma_set": 0.0}
    assert cx3.parse_telemetry(dumps(data)).stim.mode is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"us": {**ICD_TELEMETRY["us"], "state": "WARM"}}, "us.state"),
        ({"stim": {**ICD_TELEMETRY["stim"], "ma": "18.4"}}, "stim.ma"),
        ({"seq": True}, "seq"),
        ({"faults": ["TOO_HOT"]}, "faults.0"),
    ],
)
def test_telemetry_of_the_wrong_shape_names_the_field(change: dict[str, Any], where: str) -> None:
    with pytest.raises(cx3.Cx3PayloadError, match=f"telemetry: {where}"):
        cx3.parse_telemetry(dumps({**ICD_TELEMETRY, **change}))


def test_status_online_and_last_will() -> None:
    online = cx3.parse_status(b'{"online": true, "boot": 3, "fw": "2.0.0", "model": "CX-3"}')
    assert (online.online, online.boot, online.fw) == (True, 3, "2.0.0")
    assert cx3.parse_status(b'{"online": false}').online is False
    with pytest.raises(cx3.Cx3PayloadError, match="boot, fw and model"):
        cx3.parse_status(b'{"online": true}')


def test_replies_ok_and_refused() -> None:
    assert cx3.parse_reply(b'{"id": 7, "ok": true}').ok
    refused = cx3.parse_reply(b'{"id": null, "ok": false, "error": "SYNTAX", "detail": "bad"}')
    assert (refused.id, refused.error, refused.detail) == (None, "SYNTAX", "bad")
    for bad in (b'{"id": 7, "ok": false}', b'{"id": null, "ok": true}', b'{"id": 7, "ok": 1}'):
        with pytest.raises(cx3.Cx3PayloadError):
            cx3.parse_reply(bad)


def test_events() -> None:
    event = cx3.parse_event(b'{"event": "CONTACT_LOST", "output": "stim", "t_ms": 5}')
    assert (event.event, event.output, event.t_ms) == ("CONTACT_LOST", "stim", 5)
    assert cx3.parse_event(b'{"event": "BOOT", "output": null, "t_ms": 0}').output is None


def test_bad_json_and_constants_are_payload_errors() -> None:
    for bad in (b"{not json", b'{"online": NaN}', b"\xff\xfe", b"[1]", b"", b'{"seq": 1'):
        with pytest.raises(cx3.Cx3PayloadError):
            cx3.parse_status(bad)


def test_commands_encode_the_icd_envelope() -> None:
    settings = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=100, time_s=60)
    command = cx3.Command(id=5, op="configure_us", args=cx3.configure_us_args(settings))
    assert json.loads(command.encode()) == {
        "id": 5,
        "op": "configure_us",
        "args": {"frequency_khz": 1000, "intensity_w_cm2": 1.0, "duty_pct": 100, "time_s": 60},
    }
    stim = StimulationSettings(mode="SYM", freq_hz=80, pw_us=200)
    args = cx3.configure_stim_args(stim, "US_HEAD")
    assert args == {
        "mode": "SYM",
        "freq_hz": 80,
        "pw_us": 200,
        "on_s": 0,
        "off_s": 0,
        "ramp_s": 2,
        "electrode": "US_HEAD",
    }
    assert cx3.parse_command(cx3.Command(id=6, op="stop", args={"output": "both"}).encode()).id == 6
    assert json.loads(cx3.encode_heartbeat(9)) == {"n": 9}


def test_request_ids_are_unique_across_restarts() -> None:
    first = cx3.RequestIds(lambda: 1_800_000_000.000)
    used = {first.next() for _ in range(500)}
    second = cx3.RequestIds(lambda: 1_800_000_000.001)  # restarted one millisecond later
    assert not used & {second.next() for _ in range(500)}
    assert max(used) < 2**53


def test_bundled_profile_validates() -> None:
    from sessionconsole.model.paths import config_dir
    from sessionconsole.model.room import read_toml

    profile = Cx3Profile.model_validate(read_toml(config_dir() / "profiles" / "cx3-mqtt.toml"))
    assert profile.link.stale_limit_s == 0.5
    assert profile.link.root == "cx3"


# ---- fuzzing: only Cx3PayloadError ever escapes ----

STATUS_AND_TELEMETRY_KEYS = ("online", "boot", "fw", "model", "seq", "t_ms", "us", "stim", "faults")
REPLY_EVENT_COMMAND_KEYS = ("id", "ok", "error", "detail", "event", "output", "op", "args")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {},
    optional={key: json_values for key in (*STATUS_AND_TELEMETRY_KEYS, *REPLY_EVENT_COMMAND_KEYS)},
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_payload_errors(data: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(cx3.Cx3PayloadError):
            parse(data)


@settings(max_examples=300, deadline=None)
@given(json_values | shaped)
def test_arbitrary_json_raises_only_payload_errors(value: object) -> None:
    for parse in PARSERS:
        with contextlib.suppress(cx3.Cx3PayloadError):
            parse(dumps(value))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(ICD_TELEMETRY["us"])), json_values))
def test_telemetry_with_fuzzed_ultrasound_fields(changes: dict[str, object]) -> None:
    data = {**ICD_TELEMETRY, "us": {**ICD_TELEMETRY["us"], **changes}}
    with contextlib.suppress(cx3.Cx3PayloadError):
        cx3.parse_telemetry(dumps(data))
