"""Messages of a generic MQTT unit, sans I/O: built and read through its profile's mapping.

Every `parse_*` takes the raw payload bytes and returns a typed value, or raises
`MqttMapError` and nothing else (bad UTF-8, bad JSON, NaN/Infinity, a missing field, a wrong
type, a value out of range, a word the profile does not list). Telemetry becomes the same
`Cx3Reading` the dedicated CX-3 driver produces. Commands are built from console settings; a
setting the mapping cannot express (an unlisted word, a scaled value that is not whole where
the unit wants an integer) raises `MqttMapError` before anything is sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sessionconsole.model.combination import Cx3Reading, Cx3StimulationPart, Cx3UltrasoundPart
from sessionconsole.model.mqtt_map import (
    CONSOLE_ARGS,
    ConsoleOp,
    GenericMqttProfile,
    Output,
    WireValue,
)
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import StimulationSettings

ArgValue = str | int | float | bool
Settings = Mapping[str, ArgValue]
_INTEGRAL_TOLERANCE = 1e-6


class MqttMapError(ValueError):
    """A payload the profile's mapping cannot read, or a command it cannot express."""


@dataclass(frozen=True, slots=True)
class Status:
    """The retained status: online (with boot counter, model, firmware if mapped) or last will."""

    online: bool
    boot: int | None = None
    model: str | None = None
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A command reply: ok for an id, or a refusal with code and detail (id None if unread)."""

    id: int | None
    ok: bool
    error: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A unit event in the console's words, with the output it concerns (None: the unit)."""

    event: str
    output: Literal["us", "stim"] | None
    t_ms: int | None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _load(payload: bytes, topic: str) -> dict[str, Any]:
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MqttMapError(f"{topic}: not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MqttMapError(f"{topic}: expected a JSON object, got {type(data).__name__}")
    return data


_ABSENT = object()


def _find(data: Any, path: str) -> Any:
    """The value at dotted `path`, or `_ABSENT`."""
    here = data
    for segment in path.split("."):
        if isinstance(here, dict) and segment in here:
            here = here[segment]
        elif isinstance(here, list) and segment.isdigit() and int(segment) < len(here):
            here = here[int(segment)]
        else:
            return _ABSENT
    return here


def _need(data: Any, path: str, topic: str) -> Any:
    value = _find(data, path)
    if value is _ABSENT:
        raise MqttMapError(f"{topic}: {path}: missing")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MqttMapError(f"{where}: expected a number, got {value!r:.40}")
    try:
        result = float(value)
    except OverflowError as exc:  # an integer beyond any float
        raise MqttMapError(f"{where}: {value!r:.40} is out of range") from exc
    if not math.isfinite(result):
        raise MqttMapError(f"{where}: {value!r} is not finite")
    return result


def _integral(value: float, where: str) -> int:
    whole = round(value)
    if abs(value - whole) > _INTEGRAL_TOLERANCE:
        raise MqttMapError(f"{where}: {value!r} is not a whole number")
    return int(whole)


def _key(value: Any, where: str) -> str:
    """A unit word as a value-map key: a string, or a number code written as a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MqttMapError(f"{where}: expected a word or number code, got {value!r:.40}")


def _same(value: Any, expected: Any) -> bool:
    """JSON equality that keeps true apart from 1."""
    return type(value) is type(expected) and bool(value == expected)


class MessageMap:
    """One unit's mapping, ready to read and build messages (inverse word tables built once)."""

    def __init__(self, profile: GenericMqttProfile) -> None:
        self.profile = profile
        self.outputs_out: dict[str, ArgValue] = profile.commands.outputs.model_dump()
        self.outputs_in = {
            _key(word, "commands.outputs"): console
            for console, word in self.outputs_out.items()
            if console != "both" and isinstance(word, str | int) and not isinstance(word, bool)
        }
        values = profile.values
        self.mode_out = _inverse(values.stim_mode or {})
        self.electrode_out = _inverse(values.electrode or {})

    # ---- outbound ----

    def encode_command(self, command_id: int, op: ConsoleOp, settings: Settings) -> bytes:
        """The command payload for console `op` with `settings` (console names and units)."""
        commands = self.profile.commands
        mapping = commands.op(op)
        if mapping is None:
            raise MqttMapError(f"{self.profile.name}: the profile maps no {op} command")
        args: dict[str, ArgValue] = {}
        for console in CONSOLE_ARGS[op]:
            if console not in settings:
                raise MqttMapError(f"{op}: setting {console!r} not given")
            arg = mapping.args[console]
            args[arg.name] = self._wire_arg(op, console, settings[console], arg.scale, arg.integer)
        envelope: dict[str, Any] = {commands.id_field: command_id, commands.op_field: mapping.op}
        if commands.args_field is None:
            envelope.update(args)
        else:
            envelope[commands.args_field] = args
        return json.dumps(envelope).encode()

    def _wire_arg(
        self, op: str, console: str, value: ArgValue, scale: float, integer: bool
    ) -> ArgValue:
        where = f"{op}.{console}"
        if console == "output":
            return _translate(self.outputs_out, value, where, "commands.outputs")
        if console == "mode":
            return _translate(self.mode_out, value, where, "values.stim_mode")
        if console == "electrode":
            return _translate(self.electrode_out, value, where, "values.electrode")
        number = _number(value, where)
        scaled = number * scale
        if integer:
            return _integral(scaled, where)
        if isinstance(value, int) and not isinstance(value, bool) and scale == 1.0:
            return value  # keep a whole-number setting whole on the wire
        return scaled

    def encode_heartbeat(self, n: int) -> bytes:
        """The heartbeat payload."""
        return json.dumps({self.profile.heartbeat.counter_field: n}).encode()

    # ---- inbound ----

    def parse_status(self, payload: bytes) -> Status:
        """A status payload: online (reading boot, model, firmware if mapped) or the last will."""
        data = _load(payload, "status")
        mapping = self.profile.status
        flag = _need(data, mapping.online_field, "status")
        if _same(flag, mapping.offline_value):
            return Status(online=False)
        if not _same(flag, mapping.online_value):
            raise MqttMapError(
                f"status: {mapping.online_field}: {flag!r:.40} is neither the online value "
                f"{mapping.online_value!r} nor the offline value {mapping.offline_value!r}"
            )
        boot = None
        if self.profile.boot.status_field is not None:
            path = self.profile.boot.status_field
            boot = self._count(_need(data, path, "status"), f"status: {path}")
        model = self._text(data, mapping.model_field, "status")
        firmware = self._text(data, mapping.firmware_field, "status")
        return Status(online=True, boot=boot, model=model, firmware=firmware)

    def parse_reply(self, payload: bytes) -> Reply:
        """A reply payload; an ok reply must carry an id, a refusal its error code if mapped."""
        data = _load(payload, "reply")
        mapping = self.profile.replies
        raw_id = _find(data, mapping.id_field)
        command_id = (
            None
            if raw_id is _ABSENT or raw_id is None
            else self._count(raw_id, f"reply: {mapping.id_field}")
        )
        flag = _need(data, mapping.ok_field, "reply")
        if type(flag) is not type(mapping.ok_value):
            raise MqttMapError(f"reply: {mapping.ok_field}: {flag!r:.40} has the wrong type")
        ok = _same(flag, mapping.ok_value)
        if ok:
            if command_id is None:
                raise MqttMapError("reply: an ok reply carries no id")
            return Reply(id=command_id, ok=True)
        error = None
        if mapping.error_field is not None:
            error = _key(_need(data, mapping.error_field, "reply"), f"reply: {mapping.error_field}")
        detail = self._text(data, mapping.detail_field, "reply", required=False)
        return Reply(id=command_id, ok=False, error=error, detail=detail)

    def parse_event(self, payload: bytes) -> Event:
        """An event payload, its code translated with `[values.events]`."""
        events = self.profile.events
        if events is None:
            raise MqttMapError(f"{self.profile.name}: the profile maps no events")
        data = _load(payload, "event")
        where = f"event: {events.event_field}"
        code = self._word(_need(data, events.event_field, "event"), "events", where)
        output: Literal["us", "stim"] | None = None
        if events.output_field is not None:
            raw = _find(data, events.output_field)
            if raw is not _ABSENT and raw is not None:
                console = self.outputs_in.get(_key(raw, f"event: {events.output_field}"))
                if console not in ("us", "stim"):
                    raise MqttMapError(
                        f"event: {events.output_field}: {raw!r:.40} is not in commands.outputs"
                    )
                output = "us" if console == "us" else "stim"
        t_ms = None
        if events.t_ms_field is not None:
            t_ms = self._count(
                _need(data, events.t_ms_field, "event"), f"event: {events.t_ms_field}"
            )
        return Event(event=code, output=output, t_ms=t_ms)

    def parse_telemetry(self, payload: bytes, received_mono_s: float) -> Cx3Reading:
        """A telemetry payload as the console's reading, stamped on arrival."""
        data = _load(payload, "telemetry")
        tm = self.profile.telemetry
        us, stim = tm.ultrasound, tm.stimulation
        num = _Reader(data)
        faults_raw = _need(data, tm.faults, "telemetry")
        if not isinstance(faults_raw, list):
            raise MqttMapError(f"telemetry: {tm.faults}: expected a list of fault codes")
        faults = tuple(self._word(code, "faults", f"telemetry: {tm.faults}") for code in faults_raw)
        return Cx3Reading(
            received_mono_s=received_mono_s,
            seq=0 if tm.seq is None else num.count(tm.seq),
            device_t_ms=0 if tm.device_t_ms is None else num.count(tm.device_t_ms),
            ultrasound=Cx3UltrasoundPart(
                state=self._word(num.raw(us.state), "us_state", f"telemetry: {us.state.path}"),
                intensity_setpoint_w_cm2=num.value(us.intensity_setpoint_w_cm2, 0.0, 3.0),
                intensity_measured_w_cm2=num.value(us.intensity_measured_w_cm2, 0.0),
                power_measured_w=num.value(us.power_measured_w, 0.0),
                head_temperature_c=num.value(us.head_temperature_c),
                coupling_pct=num.count(us.coupling_pct, 100),
                remaining_s=num.count(us.remaining_s),
                energy_j=num.count(us.energy_j),
                era_cm2=num.value(us.era_cm2, 1e-9),
                bnr=num.value(us.bnr, 1.0),
            ),
            stimulation=Cx3StimulationPart(
                state=self._word(
                    num.raw(stim.state), "stim_state", f"telemetry: {stim.state.path}"
                ),
                mode=self._optional_word(num, stim.mode, "stim_mode"),
                electrode=self._optional_word(num, stim.electrode, "electrode"),
                amplitude_setpoint_ma=num.value(stim.amplitude_setpoint_ma, 0.0, 100.0),
                amplitude_measured_ma=num.value(stim.amplitude_measured_ma, 0.0),
                impedance_ohm=num.value(stim.impedance_ohm, 0.0),
            ),
            faults=faults,
        )

    # ---- helpers ----

    def _word(self, value: Any, table: str, where: str) -> str:
        mapping: dict[str, str] | None = getattr(self.profile.values, table)
        key = _key(value, where)
        if mapping is None or key not in mapping:
            raise MqttMapError(f"{where}: {key!r:.40} is not listed in [values.{table}]")
        return mapping[key]

    def _optional_word(self, num: _Reader, source: WireValue | None, table: str) -> str | None:
        if source is None:
            return None
        raw = num.raw(source)
        return None if raw is None else self._word(raw, table, f"telemetry: {source.path}")

    @staticmethod
    def _count(value: Any, where: str) -> int:
        number = _integral(_number(value, where), where)
        if number < 0:
            raise MqttMapError(f"{where}: {number} is negative")
        return number

    @staticmethod
    def _text(data: Any, path: str | None, topic: str, required: bool = True) -> str | None:
        if path is None:
            return None
        value = _find(data, path)
        if value is _ABSENT or value is None:
            if required:
                raise MqttMapError(f"{topic}: {path}: missing")
            return None
        if not isinstance(value, str):
            raise MqttMapError(f"{topic}: {path}: expected text, got {value!r:.40}")
        return value


class _Reader:
    """Reads scaled numbers from one telemetry message, naming the path in every error."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def raw(self, source: WireValue) -> Any:
        return _need(self.data, source.path, "telemetry")

    def value(
        self, source: WireValue, low: float | None = None, high: float | None = None
    ) -> float:
        where = f"telemetry: {source.path}"
        result = _number(self.raw(source), where) * source.scale
        if (low is not None and result < low) or (high is not None and result > high):
            raise MqttMapError(f"{where}: {result:g} is outside {low}..{high}")
        return result

    def count(self, source: WireValue, high: int | None = None) -> int:
        where = f"telemetry: {source.path}"
        result = _integral(self.value(source, 0.0), where)
        if high is not None and result > high:
            raise MqttMapError(f"{where}: {result} is above {high}")
        return result


def _inverse(mapping: Mapping[str, str]) -> dict[str, ArgValue]:
    """Console word → the unit's word (the first listed where several map to one)."""
    result: dict[str, ArgValue] = {}
    for unit_word, console in mapping.items():
        result.setdefault(console, unit_word)
    return result


def _translate(table: Mapping[str, ArgValue], value: ArgValue, where: str, name: str) -> ArgValue:
    if not isinstance(value, str) or value not in table:
        raise MqttMapError(f"{where}: {value!r} has no word in {name}")
    return table[value]


# ---- console settings by op ----


def configure_us_settings(settings: UltrasoundSettings) -> dict[str, ArgValue]:
    """Settings of `configure_us` in the console's names."""
    return {
        "frequency_khz": settings.frequency_khz,
        "intensity_w_cm2": settings.intensity_w_cm2,
        "duty_pct": settings.duty_pct,
        "time_s": settings.time_s,
    }


def configure_stim_settings(settings: StimulationSettings, electrode: str) -> dict[str, ArgValue]:
    """Settings of `configure_stim` in the console's names; `US_HEAD` is combination mode."""
    return {
        "mode": settings.mode,
        "freq_hz": settings.freq_hz,
        "pw_us": settings.pw_us,
        "on_s": settings.on_s,
        "off_s": settings.off_s,
        "ramp_s": settings.ramp_s,
        "electrode": electrode,
    }


def output_settings(output: Output) -> dict[str, ArgValue]:
    """Settings of `start`, `stop` and `reset_fault`."""
    return {"output": output}
