"""A scripted combined session written through the real Recorder with injected times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionconsole.record.recorder import Recorder
from sessionconsole.record.store import SessionStore, wall_after
from tests.record.keys import installed_key

T0 = 5_000_000_000
WALL0 = "2026-11-03T10:00:00.000000+00:00"
PSEUDONYM = "P-7Q2"
NAME = "Jane Doe"  # put into meta by mistake: the HTML report must never print it
S = 1_000_000_000

US_KEYS = {
    "intensity_setpoint_w_cm2": {"unit": "W/cm2"},
    "intensity_measured_w_cm2": {"unit": "W/cm2"},
    "head_temperature_c": {"unit": "Cel"},
    "energy_j": {"unit": "J"},
    "output_active": {"unit": None},
    "state": {"unit": None},
}
ES_KEYS = {
    "amplitude_setpoint_ma": {"unit": "mA"},
    "amplitude_measured_ma": {"unit": "mA"},
    "output_active": {"unit": None},
}


def at(offset_ns: int) -> tuple[int, str]:
    """(mono, wall) offset_ns after the session start."""
    return T0 + offset_ns, wall_after(WALL0, offset_ns)


def us_values(i: int, hz: int, on_from: int, on_to: int) -> dict[str, Any]:
    """One ultrasound reading; output on between sample indices on_from and on_to."""
    on = on_from <= i < on_to
    return {
        "intensity_setpoint_w_cm2": 1.0 if on else 0.0,
        "intensity_measured_w_cm2": 0.98 if on else 0.0,
        "head_temperature_c": round(31.0 + i / (hz * 60), 3),
        "energy_j": int(max(0, min(i, on_to) - on_from) * 4 / hz),  # 4 W while on
        "output_active": on,
        "state": "ON" if on else "IDLE",
    }


def es_values(i: int, hz: int, on_from: int, on_to: int) -> dict[str, Any]:
    """One stimulator reading."""
    on = on_from <= i < on_to
    return {
        "amplitude_setpoint_ma": 20.0 if on else 0.0,
        "amplitude_measured_ma": 19.5 if on else 0.0,
        "output_active": on,
    }


def write_session(db: Path, *, seconds: int = 60, hz: int = 50, interrupted: bool = False) -> str:
    """Write one combined session (US-1, ES-2, techniques, alarms, pain) and return its id."""
    meta = {
        "therapist": "T-01",
        "patient_pseudonym": PSEUDONYM,
        "patient_name": NAME,
        "room": "Room <2> & co",
        "plan": {"treated_area_cm2": 20, "stimulation_attended": True, "region": "knee"},
    }
    with Recorder(db) as recorder:
        sid = recorder.open_session(meta, *at(0)).result(timeout=5)
        for device, keys, model in (("us1", US_KEYS, "US-1"), ("es2", ES_KEYS, "ES-2")):
            descriptor = {"device": device, "model": model, "keys": keys}
            recorder.submit(sid, "stream_descriptor", descriptor, *at(1)).result(timeout=5)
        recorder.submit(sid, "pain_score", {"score": 6, "when": "before"}, *at(2)).result(5)
        configure = {
            "operator": "T-01",
            "command": {
                "type": "configure",
                "device": "us1",
                "settings": {
                    "frequency_khz": 1000,
                    "intensity_w_cm2": 1.0,
                    "duty_pct": 100,
                    "time_s": 600,
                },
            },
        }
        recorder.submit(sid, "operator_action", configure, *at(3)).result(timeout=5)
        technique = {"technique": "deep_tissue", "region": "knee", "side": "right"}
        recorder.submit(sid, "technique", {"action": "begin", **technique}, *at(4 * S))
        on_from, on_to = hz * 10, hz * (seconds - 10)
        for i in range(hz * seconds):
            mono = T0 + 5 * S + i * S // hz
            recorder.add_sample(sid, "us1", mono, us_values(i, hz, on_from, on_to))
            recorder.add_sample(sid, "es2", mono + 1000, es_values(i, hz, on_from, on_to))
            if i == hz * 20:
                alarm = {
                    "change": "raised",
                    "alarm_id": 1,
                    "rule_id": "US_HEAD_TEMP_WARN",
                    "priority": "medium",
                    "device": "us1",
                    "message": "head <hot>",
                    "what_to_do": "lift the head",
                    "acknowledged_by": None,
                }
                recorder.submit(sid, "alarm", alarm, *at(mono - T0))
                recorder.submit(sid, "alarm", {**alarm, "change": "acknowledged"}, *at(mono - T0))
        end = (seconds + 6) * S
        recorder.submit(sid, "technique", {"action": "end", **technique}, *at(end))
        begin = {"action": "begin", "technique": "trigger_point", "region": "upper_back"}
        recorder.submit(sid, "technique", {**begin, "side": "left", "pressure": "firm"}, *at(end))
        if interrupted:
            recorder.flush().result(timeout=5)
            return sid  # no session_end: the controller "died" here
        finish = {"action": "end", "technique": "trigger_point", "region": "upper_back"}
        recorder.submit(sid, "technique", {**finish, "side": "left"}, *at(end + 90 * S))
        recorder.submit(sid, "pain_score", {"score": 3, "when": "after"}, *at(end + 91 * S))
        recorder.submit(sid, "note", {"text": "knee <better> & calm"}, *at(end + 92 * S))
        recorder.end_session(sid, "completed", None, {"alarms": 1}, *at(end + 93 * S))
    return sid


def close_interrupted(db: Path) -> list[str]:
    """What the next controller start does: end unfinished sessions as interrupted."""
    with SessionStore(db, key=installed_key()) as store:
        return store.close_interrupted(*at(3600 * S))
