"""The generic MQTT mapping layer: the CX-3 profile reads like the CX-3 codec; fuzzing."""

from __future__ import annotations

import contextlib
import copy
import json
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.paths import config_dir
from sessionconsole.protocols import cx3
from sessionconsole.protocols.mqtt_map import (
    MessageMap,
    MqttMapError,
    Reply,
    Status,
    configure_stim_settings,
    configure_us_settings,
)
from tests.drivers.test_cx3_driver import US
from tests.drivers.test_es2_driver import SETTINGS as STIM
from tests.protocols.test_cx3_codec import ICD_TELEMETRY, json_values, shaped

with (config_dir() / "profiles" / "cx3-generic.toml").open("rb") as _fh:
    CX3_DATA: dict[str, Any] = tomllib.load(_fh)
CX3 = MessageMap(GenericMqttProfile.model_validate(CX3_DATA))


def variant(edit: Callable[[dict[str, Any]], None]) -> MessageMap:
    data = copy.deepcopy(CX3_DATA)
    edit(data)
    return MessageMap(GenericMqttProfile.model_validate(data))


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def test_topics_fill_in_root_and_serial() -> None:
    profile = CX3.profile
    assert profile.topic("command") == "cx3/CX3-0001/cmd"
    assert profile.topic("heartbeat") == "cx3/CX3-0001/heartbeat"


def test_icd_telemetry_reads_exactly_as_the_dedicated_codec_reads_it() -> None:
    payload = dumps(ICD_TELEMETRY)
    assert CX3.parse_telemetry(payload, 3.5) == cx3.reading_from(cx3.parse_telemetry(payload), 3.5)
    unconfigured = {**ICD_TELEMETRY, "stim": {**ICD_TELEMETRY["stim"], "mode": None}}
    assert CX3.parse_telemetry(dumps(unconfigured), 0.0).stimulation.mode is None


def test_commands_are_the_dedicated_drivers_envelopes() -> None:
    cases: list[tuple[Any, dict[str, Any], bytes]] = [
        ("configure_us", configure_us_settings(US), b""),
        ("configure_stim", configure_stim_settings(STIM, "US_HEAD"), b""),
        ("start", {"output": "both"}, b""),
        ("set_amplitude", {"amplitude_ma": 12.5}, b""),
    ]
    expected = [
        cx3.configure_us_args(US),
        cx3.configure_stim_args(STIM, "US_HEAD"),
        {"output": "both"},
        {"ma": 12.5},
    ]
    for (op, settings_, _), args in zip(cases, expected, strict=True):
        sent = json.loads(CX3.encode_command(7, op, settings_))
        assert sent == {"id": 7, "op": op, "args": args}
        assert cx3.parse_command(dumps(sent)).args == args  # the ICD's own parser takes it
    assert json.loads(CX3.encode_heartbeat(41)) == {"n": 41}


def test_scaled_integer_arguments_and_flat_envelopes() -> None:
    def tenths(data: dict[str, Any]) -> None:
        data["commands"]["set_amplitude"]["args"] = {
            "amplitude_ma": {"name": "ma_x10", "scale": 10, "integer": True}
        }
        del data["commands"]["args_field"]
        data["commands"]["id_field"] = "rid"

    unit = variant(tenths)
    assert json.loads(unit.encode_command(3, "set_amplitude", {"amplitude_ma": 12.5})) == {
        "rid": 3,
        "op": "set_amplitude",
        "ma_x10": 125,
    }
    with pytest.raises(MqttMapError, match=r"set_amplitude\.amplitude_ma: 122\.5.* not a whole"):
        unit.encode_command(4, "set_amplitude", {"amplitude_ma": 12.25})


def test_a_word_the_profile_lacks_is_refused_before_sending() -> None:
    def pads_only(data: dict[str, Any]) -> None:
        data["values"]["electrode"] = {"PADS": "PADS"}

    with pytest.raises(MqttMapError, match=r"configure_stim\.electrode: 'US_HEAD' has no word"):
        variant(pads_only).encode_command(
            1, "configure_stim", configure_stim_settings(STIM, "US_HEAD")
        )
    with pytest.raises(MqttMapError, match=r"start\.output: 'left' has no word"):
        CX3.encode_command(1, "start", {"output": "left"})


def test_scaled_telemetry_and_number_codes() -> None:
    def coded(data: dict[str, Any]) -> None:
        data["telemetry"]["ultrasound"]["intensity_measured_w_cm2"] = {
            "path": "us.intensity_w_cm2",
            "scale": 0.01,
        }
        data["values"]["us_state"] = {"0": "IDLE", "1": "RUNNING", "9": "FAULT"}

    raw = {**ICD_TELEMETRY, "us": {**ICD_TELEMETRY["us"], "state": 1, "intensity_w_cm2": 102}}
    reading = variant(coded).parse_telemetry(dumps(raw), 0.0)
    assert (reading.ultrasound.state, reading.ultrasound.intensity_measured_w_cm2) == (
        "RUNNING",
        pytest.approx(1.02),
    )
    raw["us"]["state"] = 4
    with pytest.raises(MqttMapError, match=r"us\.state: '4' is not listed in \[values\.us_state\]"):
        variant(coded).parse_telemetry(dumps(raw), 0.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"faults": ["MELTDOWN"]}, r"faults: 'MELTDOWN' is not listed in \[values\.faults\]"),
        ({"faults": "OVERTEMP"}, "faults: expected a list"),
        ({"us": {**ICD_TELEMETRY["us"], "coupling_pct": 101}}, "us.coupling_pct: 101 is above"),
        ({"us": {**ICD_TELEMETRY["us"], "power_w": True}}, "us.power_w: expected a number"),
        ({"us": {**ICD_TELEMETRY["us"], "energy_j": 1.5}}, "us.energy_j: 1.5 is not a whole"),
        (
            {"stim": {k: v for k, v in ICD_TELEMETRY["stim"].items() if k != "ma_set"}},
            "stim.ma_set: missing",
        ),
    ],
)
def test_unusable_telemetry_names_the_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(MqttMapError, match=f"telemetry: {message}"):
        CX3.parse_telemetry(dumps({**ICD_TELEMETRY, **change}), 0.0)


def test_status_online_last_will_and_neither() -> None:
    online = {"online": True, "boot": 2, "fw": "2.1", "model": "CX-3"}
    assert CX3.parse_status(dumps(online)) == Status(True, 2, "CX-3", "2.1")
    assert CX3.parse_status(b'{"online": false}') == Status(False)
    with pytest.raises(MqttMapError, match="neither the online value"):
        CX3.parse_status(b'{"online": 1}')
    with pytest.raises(MqttMapError, match="status: boot: missing"):
        CX3.parse_status(b'{"online": true, "fw": "1", "model": "CX-3"}')


def test_replies_ok_refused_and_unreadable() -> None:
    assert CX3.parse_reply(b'{"id": 5, "ok": true}') == Reply(5, True)
    refused = CX3.parse_reply(b'{"id": null, "ok": false, "error": "SYNTAX", "detail": "x"}')
    assert refused == Reply(None, False, "SYNTAX", "x")
    with pytest.raises(MqttMapError, match="an ok reply carries no id"):
        CX3.parse_reply(b'{"ok": true}')
    with pytest.raises(MqttMapError, match="ok: 'yes' has the wrong type"):
        CX3.parse_reply(b'{"id": 5, "ok": "yes"}')
    with pytest.raises(MqttMapError, match="reply: error: missing"):
        CX3.parse_reply(b'{"id": 5, "ok": false}')


def test_events_in_the_consoles_words() -> None:
    event = CX3.parse_event(b'{"event": "CONTACT_LOST", "output": "us", "t_ms": 9}')
    assert (event.event, event.output, event.t_ms) == ("CONTACT_LOST", "us", 9)
    with pytest.raises(MqttMapError, match=r"'both' is not in commands\.outputs"):
        CX3.parse_event(b'{"event": "BOOT", "output": "both", "t_ms": 0}')
    with pytest.raises(MqttMapError, match=r"not listed in \[values\.events\]"):
        CX3.parse_event(b'{"event": "LUNCH", "output": null, "t_ms": 0}')


# ---- fuzzing: only MqttMapError ever escapes ----


def _another_vendor(data: dict[str, Any]) -> None:
    """The CX-3 map bent the way other units differ: scaled readings, number codes for
    states, a flat command envelope under another id field."""
    data["telemetry"]["ultrasound"]["intensity_measured_w_cm2"] = {
        "path": "us.intensity_w_cm2",
        "scale": 0.01,
    }
    data["values"]["us_state"] = {"0": "IDLE", "1": "RUNNING", "9": "FAULT"}
    del data["commands"]["args_field"]
    data["commands"]["id_field"] = "rid"


PARSERS: list[Callable[[bytes], object]] = [
    parser
    for unit in (CX3, variant(_another_vendor))
    for parser in (
        unit.parse_status,
        unit.parse_reply,
        unit.parse_event,
        lambda payload, unit=unit: unit.parse_telemetry(payload, 0.0),
    )
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_mapping_errors(data: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(MqttMapError):
            parse(data)


@settings(max_examples=300, deadline=None)
@given(json_values | shaped)
def test_arbitrary_json_raises_only_mapping_errors(value: object) -> None:
    for parse in PARSERS:
        with contextlib.suppress(MqttMapError):
            parse(dumps(value))


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(ICD_TELEMETRY["us"])), json_values | st.integers()),
    st.dictionaries(st.sampled_from(sorted(ICD_TELEMETRY["stim"])), json_values),
    st.none() | json_values,
)
def test_telemetry_with_fuzzed_fields(
    us: dict[str, Any], stim: dict[str, Any], faults: Any
) -> None:
    data = {
        **ICD_TELEMETRY,
        "us": {**ICD_TELEMETRY["us"], **us},
        "stim": {**ICD_TELEMETRY["stim"], **stim},
    }
    if faults is not None:
        data["faults"] = faults
    with contextlib.suppress(MqttMapError):
        CX3.parse_telemetry(dumps(data), 0.0)
