"""CX-3 command envelope and argument shapes (ICD CX-3 v2): parsing only, no device state.

Shape errors (bad JSON, missing id/op, wrong argument types, missing or unknown arguments)
become `SYNTAX`; an unknown op becomes `UNKNOWN`. Value ranges are the unit's business.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

INT, NUM, STR = "integer", "number", "string"
ARGS: dict[str, dict[str, str]] = {
    "configure_us": {
        "frequency_khz": INT,
        "intensity_w_cm2": NUM,
        "duty_pct": INT,
        "time_s": INT,
    },
    "configure_stim": {
        "mode": STR,
        "freq_hz": INT,
        "pw_us": INT,
        "on_s": NUM,
        "off_s": NUM,
        "ramp_s": NUM,
        "electrode": STR,
    },
    "set_intensity": {"intensity_w_cm2": NUM},
    "set_amplitude": {"ma": NUM},
    "start": {"output": STR},
    "stop": {"output": STR},
    "reset_fault": {"output": STR},
    "set_watchdog": {"timeout_ms": INT},
}

Reply = dict[str, Any]


@dataclass(frozen=True)
class Command:
    """A well-shaped command: integer id, known op, arguments of the right types."""

    id: int
    op: str
    args: dict[str, Any]

    def key(self) -> str:
        """Canonical text of op and args, to recognise an identical repeat."""
        return json.dumps([self.op, self.args], sort_keys=True)


class CommandError(Exception):
    """A refused command: error code, human detail and the id (None if unreadable)."""

    def __init__(self, code: str, detail: str, cmd_id: int | None = None) -> None:
        """Remember the code, detail and id for the reply."""
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.cmd_id = code, detail, cmd_id


def ok_reply(cmd_id: int) -> Reply:
    """`{"id": n, "ok": true}`."""
    return {"id": cmd_id, "ok": True}


def error_reply(cmd_id: int | None, code: str, detail: str) -> Reply:
    """`{"id": n|null, "ok": false, "error": code, "detail": text}`."""
    return {"id": cmd_id, "ok": False, "error": code, "detail": detail}


def is_int(value: object) -> bool:
    """A JSON integer (bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite JSON number (int or float, not bool)."""
    if is_int(value):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _type_ok(kind: str, value: object) -> bool:
    """Whether `value` has the argument type `kind`."""
    if kind == INT:
        return is_int(value)
    if kind == NUM:
        return is_number(value)
    return isinstance(value, str)


def _no_constant(name: str) -> None:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not JSON")


def decode_json(payload: bytes) -> object:
    """Decode UTF-8 JSON strictly (no NaN/Infinity); raises ValueError."""
    return json.loads(payload.decode("utf-8"), parse_constant=_no_constant)


def load_object(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, or None if it is not one."""
    try:
        message = decode_json(payload)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def parse_command(payload: bytes) -> Command:
    """Parse one `cmd` payload; raise CommandError(SYNTAX|UNKNOWN) for a bad shape."""
    try:
        message = decode_json(payload)
    except ValueError as exc:
        raise CommandError("SYNTAX", f"bad JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise CommandError("SYNTAX", "payload must be a JSON object")
    cmd_id = message.get("id")
    if not is_int(cmd_id):
        raise CommandError("SYNTAX", "missing or non-integer 'id'")
    assert isinstance(cmd_id, int)
    op = message.get("op")
    if not isinstance(op, str):
        raise CommandError("SYNTAX", "missing or non-string 'op'", cmd_id)
    if op not in ARGS:
        raise CommandError("UNKNOWN", f"unknown op {op!r}", cmd_id)
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise CommandError("SYNTAX", "'args' must be a JSON object", cmd_id)
    shape = ARGS[op]
    unknown = sorted(set(args) - set(shape))
    if unknown:
        raise CommandError("SYNTAX", f"{op}: unknown argument(s) {unknown}", cmd_id)
    for name, kind in shape.items():
        if name not in args:
            raise CommandError("SYNTAX", f"{op}: missing argument {name!r}", cmd_id)
        if not _type_ok(kind, args[name]):
            raise CommandError("SYNTAX", f"{op}: {name} must be a {kind}", cmd_id)
    return Command(cmd_id, op, dict(args))
