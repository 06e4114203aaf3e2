"""Read what `records list` and `records show --json` print (pure; the CLI's own formats)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup
from sessionconsole.ui.summary.tally import (
    AlarmLine,
    OutputSummary,
    SessionSummary,
    settings_text,
)

RECORD_VIEW = "from the session record (records show); energy and dose: see the export"


@dataclass(frozen=True, slots=True)
class PastSession:
    """One line of `records list`."""

    session_id: str
    started: str
    ended: str
    status: str
    entries: int
    therapist: str
    patient: str


def parse_list(stdout: str) -> list[PastSession]:
    """`records list` lines (fields two spaces apart); its 'no sessions…' line gives []."""
    sessions = []
    for line in stdout.splitlines():
        parts = line.split("  ")
        if len(parts) != 7 or not parts[4].endswith(" entries"):
            continue
        sid, started, ended, status, entries, therapist, patient = parts
        count = int(entries.removesuffix(" entries"))
        sessions.append(PastSession(sid, started, ended, status, count, therapist, patient))
    return sessions


def _settings(modality: str, raw: Any) -> str:
    """A recorded settings dict in the summary's words (as stored when it cannot be read)."""
    if raw is None:
        return "not configured"
    model = UltrasoundSettings if modality == "ultrasound" else ChannelSetup
    try:
        return settings_text(model.model_validate(raw, strict=False))
    except ValidationError:
        return json.dumps(raw, sort_keys=True)


def summary_from_entries(session_id: str, entries: list[dict[str, Any]]) -> SessionSummary:
    """A past session's summary: output runs, alarms raised, pain and notes as recorded."""
    summary = SessionSummary(session_id, RECORD_VIEW)
    started: dict[str, int] = {}
    alarms: dict[object, int] = {}  # alarm id -> its place in summary.alarms
    ran: set[str] = set()
    last_ns = 0
    for entry in entries:
        kind, payload, now_ns = entry["kind"], entry.get("payload") or {}, int(entry["mono_ns"])
        last_ns = max(last_ns, now_ns)
        if kind == "stream_descriptor":
            for modality in payload.get("modalities") or [_modality_of(payload)]:
                _output(summary, str(payload.get("device")), modality)
        elif kind == "output_start":
            out = _output(summary, payload["device"], payload.get("modality"))
            out.add_settings(_settings(out.modality, payload.get("settings")))
            started[out.device] = now_ns
            ran.add(out.device)
        elif kind == "output_stop" and payload.get("device") in started:
            device = payload["device"]
            _add_on_time(summary.outputs[device], now_ns - started.pop(device))
        elif kind == "alarm":
            _alarm_change(summary, alarms, payload)
        elif kind == "pain_score" and payload.get("when") in ("before", "after"):
            setattr(summary, f"pain_{payload['when']}", payload.get("score"))
        elif kind == "note":
            summary.notes.append(str(payload.get("text", "")))
    for device, since_ns in started.items():  # still on at the last entry: counted to it
        _add_on_time(summary.outputs[device], last_ns - since_ns)
    for out in summary.outputs.values():
        if out.device not in ran:  # sessions written before output_start entries existed
            out.on_time_s = None
        out.alarms = sum(1 for a in summary.alarms if a.device in (out.device, None))
    return summary


def _modality_of(descriptor: dict[str, Any]) -> str | None:
    """As the record's view does: ultrasound or stimulation keys name the modality."""
    keys = list(descriptor.get("keys") or {})
    if any(k.startswith(("intensity", "head_temperature")) for k in keys):
        return "ultrasound"
    if any("amplitude" in k or k.endswith("_ma") for k in keys):
        return "stimulation"
    return None


def _add_on_time(out: OutputSummary, ns: int) -> None:
    out.on_time_s = (out.on_time_s or 0.0) + ns / 1e9


def _output(summary: SessionSummary, device: str, modality: str | None) -> OutputSummary:
    out = summary.outputs.get(device)
    if out is None:
        out = summary.outputs[device] = OutputSummary(device, modality or "unknown")
    elif modality and out.modality == "unknown":
        out.modality = modality
    return out


def _alarm_change(
    summary: SessionSummary, alarms: dict[object, int], payload: dict[str, Any]
) -> None:
    """A raised alarm joins the list; an acknowledgement names who on the raised one."""
    key = payload.get("alarm_id")
    if payload.get("change") == "raised":
        alarms[key] = len(summary.alarms)
        summary.alarms.append(_alarm(payload))
    elif payload.get("change") == "acknowledged" and key in alarms:
        place = alarms[key]
        who = payload.get("acknowledged_by") or "someone"
        summary.alarms[place] = dataclasses.replace(summary.alarms[place], acknowledged_by=who)


def _alarm(payload: dict[str, Any]) -> AlarmLine:
    return AlarmLine(
        str(payload.get("priority", "?")),
        str(payload.get("rule_id", "?")),
        payload.get("device"),
        str(payload.get("message", "")),
        payload.get("acknowledged_by"),
    )
