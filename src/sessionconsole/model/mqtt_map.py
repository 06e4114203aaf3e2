"""Generic MQTT units described by a profile (`kind = "mqtt_generic"`), not by code.

A profile says where a unit's topics are, which JSON field carries what, and which words the
unit uses for states, faults and events. Everything is checked at load time: a mapping that
would leave the console guessing (no stop op, no state field, a code it cannot name, a bad
dotted path) is refused with the field named, never dropped with a warning.
"""

from __future__ import annotations

import math
import re
import string
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sessionconsole.model.combination import Cx3ProfileLimits, MqttLink
from sessionconsole.model.stimulation import StimMode
from sessionconsole.model.timing import check_heartbeat_inside_watchdog

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

# ---- the console's words (what a mapping must translate the unit's words into) ----

UsState = Literal["IDLE", "RUNNING", "PAUSED", "SUSPENDED", "FAULT", "DONE"]
StimState = Literal["IDLE", "RAMP", "ON", "OFFPHASE", "FAULT"]
FaultCode = Literal[
    "PATIENT_STOP",
    "WATCHDOG",
    "OVERTEMP",
    "OUTPUT_DEVIATION",
    "HEAD_DISCONNECTED",
    "ELECTRODE",
    "OVERCURRENT",
    "INTERNAL",
]
EventCode = Literal[
    "PATIENT_STOP",
    "CONTACT_LOST",
    "CONTACT_RESTORED",
    "OVERTEMP",
    "OUTPUT_DEVIATION",
    "HEAD_DISCONNECTED",
    "ELECTRODE",
    "OVERCURRENT",
    "WATCHDOG",
    "BOOT",
]
Electrode = Literal["PADS", "US_HEAD"]
Output = Literal["us", "stim", "both"]
ConsoleOp = Literal[
    "configure_us",
    "configure_stim",
    "set_intensity",
    "set_amplitude",
    "start",
    "stop",
    "reset_fault",
    "set_watchdog",
]
STIM_MODES: Final = frozenset(get_args(StimMode))

# The console settings each op carries; a mapping must name the unit's argument for each.
CONSOLE_ARGS: Final[dict[str, tuple[str, ...]]] = {
    "configure_us": ("frequency_khz", "intensity_w_cm2", "duty_pct", "time_s"),
    "configure_stim": ("mode", "freq_hz", "pw_us", "on_s", "off_s", "ramp_s", "electrode"),
    "set_intensity": ("intensity_w_cm2",),
    "set_amplitude": ("amplitude_ma",),
    "start": ("output",),
    "stop": ("output",),
    "reset_fault": ("output",),
    "set_watchdog": ("timeout_ms",),
}
WORD_ARGS: Final = frozenset({"output", "mode", "electrode"})  # translated, never scaled
US_STATES_NEEDED: Final = ("IDLE", "FAULT")
STIM_STATES_NEEDED: Final = ("IDLE", "FAULT")


class MappingProblem(ValueError):
    """A profile mapping that cannot work: which field (dotted, in the file) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ---- small checked types ----

_SEGMENT = r"[A-Za-z0-9_-]+"
_DOTTED = re.compile(rf"{_SEGMENT}(\.{_SEGMENT})*")
_KEY = re.compile(_SEGMENT)
_TOPIC_LEVELS = re.compile(r"[^/+#\s]+(/[^/+#\s]+)*")
_SERIAL = re.compile(r"[A-Za-z0-9_.-]+")


def _check_dotted(value: str) -> str:
    if not _DOTTED.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a dotted JSON path like 'us.state' (letters, digits, '_' or '-' "
            "between single dots; a number indexes a list)"
        )
    return value


def _check_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise ValueError(f"{value!r} is not a JSON field name (letters, digits, '_' or '-')")
    return value


def _check_template(value: str) -> str:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value)]
    except ValueError as exc:  # an unmatched brace
        raise ValueError(f"topic {value!r}: {exc}") from exc
    names = set()
    for name, spec, conversion in fields:
        if name is None:
            continue
        if spec or conversion or name not in ("root", "serial"):
            raise ValueError(f"topic {value!r}: only {{root}} and {{serial}} may be filled in")
        names.add(name)
    if "serial" not in names:
        raise ValueError(f"topic {value!r} must contain {{serial}}, or two units would share it")
    sample = value.format(root="root", serial="serial")
    if not _TOPIC_LEVELS.fullmatch(sample):
        raise ValueError(
            f"topic {value!r} must be levels like '{{root}}/{{serial}}/status' "
            "(no wildcards, spaces, empty levels or outer slashes)"
        )
    return value


def _finite_nonzero(value: float) -> float:
    if not math.isfinite(value) or value == 0.0:
        raise ValueError(f"scale {value!r} must be a finite number other than 0")
    return value


DottedPath = Annotated[str, AfterValidator(_check_dotted)]
JsonKey = Annotated[str, AfterValidator(_check_key)]
TopicTemplate = Annotated[str, AfterValidator(_check_template)]
Scale = Annotated[float, AfterValidator(_finite_nonzero)]
Qos = Literal[0, 1, 2]
Scalar = bool | int | str


def _path_or_table(value: Any) -> Any:
    """`"us.power_w"` is short for `{path = "us.power_w"}`."""
    return {"path": value} if isinstance(value, str) else value


def _name_or_table(value: Any) -> Any:
    """`"intensity_w_cm2"` is short for `{name = "intensity_w_cm2"}`."""
    return {"name": value} if isinstance(value, str) else value


class WireValue(BaseModel):
    """Where a telemetry value is (dotted path) and its scale: console = wire * scale."""

    model_config = _STRICT

    path: DottedPath
    scale: Scale = 1.0


class WireArg(BaseModel):
    """A command argument: its JSON name, scale (wire = console * scale), integer on the wire."""

    model_config = _STRICT

    name: JsonKey
    scale: Scale = 1.0
    integer: bool = False


Source = Annotated[WireValue, BeforeValidator(_path_or_table)]
Arg = Annotated[WireArg, BeforeValidator(_name_or_table)]


# ---- topics ----


class TopicTemplates(BaseModel):
    """The unit's topics; `{root}` is the link's root, `{serial}` the unit's serial."""

    model_config = _STRICT

    status: TopicTemplate
    telemetry: TopicTemplate
    command: TopicTemplate
    reply: TopicTemplate
    heartbeat: TopicTemplate
    event: TopicTemplate | None = None

    @model_validator(mode="after")
    def _distinct(self) -> TopicTemplates:
        seen: dict[str, str] = {}
        for name, template in self.model_dump().items():
            if template is None:
                continue
            if template in seen:
                raise MappingProblem(name, f"same topic as {seen[template]} ({template!r})")
            seen[template] = name
        return self


class TopicQos(BaseModel):
    """MQTT QoS per topic (subscribe for inbound, publish for outbound)."""

    model_config = _STRICT

    status: Qos = 1
    telemetry: Qos = 0
    command: Qos = 1
    reply: Qos = 1
    heartbeat: Qos = 0
    event: Qos = 1


# ---- inbound mappings ----


class StatusMap(BaseModel):
    """The retained status: which field says online, its online value and its last-will value."""

    model_config = _STRICT

    online_field: DottedPath
    online_value: Scalar = True
    offline_value: Scalar = False
    model_field: DottedPath | None = None
    model_value: str | None = Field(default=None, min_length=1)
    firmware_field: DottedPath | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StatusMap:
        if self.online_value == self.offline_value and type(self.online_value) is type(
            self.offline_value
        ):
            raise MappingProblem("offline_value", "must differ from online_value")
        if (self.model_field is None) != (self.model_value is None):
            raise MappingProblem("model_value", "give model_field and model_value together")
        return self


class BootMap(BaseModel):
    """How a reboot shows: a boot counter in the status, a boot event, or both."""

    model_config = _STRICT

    status_field: DottedPath | None = None
    event: str | None = Field(default=None, min_length=1, description="the unit's word")

    @model_validator(mode="after")
    def _something(self) -> BootMap:
        if self.status_field is None and self.event is None:
            raise MappingProblem("status_field", "give status_field or event (or both)")
        return self


class ReplyMap(BaseModel):
    """A command reply: which fields carry the id, ok flag, error code and detail."""

    model_config = _STRICT

    id_field: DottedPath
    ok_field: DottedPath
    ok_value: Scalar = True
    error_field: DottedPath | None = None
    detail_field: DottedPath | None = None


class EventMap(BaseModel):
    """An event: which fields carry its code, the output it concerns and the device time."""

    model_config = _STRICT

    event_field: DottedPath
    output_field: DottedPath | None = None
    t_ms_field: DottedPath | None = None


class UltrasoundFields(BaseModel):
    """Where each ultrasound reading value is in a telemetry message."""

    model_config = _STRICT

    state: Source
    intensity_setpoint_w_cm2: Source
    intensity_measured_w_cm2: Source
    power_measured_w: Source
    head_temperature_c: Source
    coupling_pct: Source
    remaining_s: Source
    energy_j: Source
    era_cm2: Source
    bnr: Source


class StimulationFields(BaseModel):
    """Where each stimulation reading value is (mode and electrode optional)."""

    model_config = _STRICT

    state: Source
    mode: Source | None = None
    electrode: Source | None = None
    amplitude_setpoint_ma: Source
    amplitude_measured_ma: Source
    impedance_ohm: Source


class TelemetryMap(BaseModel):
    """Telemetry fields by dotted path onto the console's reading."""

    model_config = _STRICT

    seq: Source | None = None
    device_t_ms: Source | None = None
    faults: DottedPath = Field(description="a JSON list of the unit's latched fault codes")
    ultrasound: UltrasoundFields
    stimulation: StimulationFields


class ValueMaps(BaseModel):
    """The unit's words (keys; a number code is written as a string) → the console's words."""

    model_config = _STRICT

    us_state: dict[str, UsState]
    stim_state: dict[str, StimState]
    faults: dict[str, FaultCode]
    events: dict[str, EventCode] = Field(default_factory=dict)
    stim_mode: dict[str, StimMode] | None = None
    electrode: dict[str, Electrode] | None = None

    @model_validator(mode="after")
    def _states_needed(self) -> ValueMaps:
        for name, mapping, needed in (
            ("us_state", self.us_state, US_STATES_NEEDED),
            ("stim_state", self.stim_state, STIM_STATES_NEEDED),
        ):
            missing = [s for s in needed if s not in mapping.values()]
            if missing:
                raise MappingProblem(
                    name, f"no unit word maps to {', '.join(missing)} (the console needs it)"
                )
        return self


# ---- outbound mappings ----


class OpMap(BaseModel):
    """One command: the unit's op name and its argument for each console setting."""

    model_config = _STRICT

    op: str = Field(min_length=1)
    args: dict[str, Arg] = Field(default_factory=dict)


class OutputNames(BaseModel):
    """The unit's words for the console's outputs."""

    model_config = _STRICT

    us: Scalar
    stim: Scalar
    both: Scalar


class CommandMap(BaseModel):
    """The JSON shape of a command and each op; `args_field` unset puts args at the top level."""

    model_config = _STRICT

    id_field: JsonKey
    op_field: JsonKey
    args_field: JsonKey | None = None
    outputs: OutputNames
    stop: OpMap
    start: OpMap
    configure_us: OpMap
    set_watchdog: OpMap
    set_intensity: OpMap | None = None
    configure_stim: OpMap | None = None
    set_amplitude: OpMap | None = None
    reset_fault: OpMap | None = None

    def op(self, name: ConsoleOp) -> OpMap | None:
        """The mapping of console op `name`, or None when the unit has no such command."""
        value = getattr(self, name)
        assert value is None or isinstance(value, OpMap)
        return value

    @model_validator(mode="after")
    def _args_complete(self) -> CommandMap:
        envelope = {self.id_field, self.op_field} | (
            {self.args_field} if self.args_field else set()
        )
        if len(envelope) < (3 if self.args_field else 2):
            raise MappingProblem("op_field", "id_field, op_field and args_field must differ")
        for op_name, wanted in CONSOLE_ARGS.items():
            mapping = getattr(self, op_name)
            if mapping is None:
                continue
            for console in mapping.args:
                if console not in wanted:
                    raise MappingProblem(
                        f"{op_name}.args.{console}",
                        f"not a console setting of {op_name} (known: {', '.join(wanted)})",
                    )
            for console in wanted:
                if console not in mapping.args:
                    raise MappingProblem(
                        f"{op_name}.args", f"console setting {console!r} is not mapped"
                    )
            names = [arg.name for arg in mapping.args.values()]
            if len(set(names)) != len(names):
                raise MappingProblem(f"{op_name}.args", "two settings map to the same argument")
            if self.args_field is None and envelope & set(names):
                raise MappingProblem(
                    f"{op_name}.args", "an argument name collides with id_field or op_field"
                )
            for console in WORD_ARGS & set(mapping.args):
                arg = mapping.args[console]
                if arg.scale != 1.0 or arg.integer:
                    raise MappingProblem(
                        f"{op_name}.args.{console}", "a word is translated, not scaled"
                    )
        return self


class HeartbeatMap(BaseModel):
    """The heartbeat payload: `{<counter_field>: n}`."""

    model_config = _STRICT

    counter_field: JsonKey


# ---- the profile ----


class GenericMqttProfile(BaseModel):
    """An MQTT therapy unit (ultrasound + stimulation) described entirely by its mapping."""

    model_config = _STRICT

    kind: Literal["mqtt_generic"]
    name: str = Field(min_length=1)
    serial: str = Field(description="the unit's serial: fills {serial} in the topics")
    era_cm2: float = Field(gt=0.0, le=20.0, description="effective radiating area on the head")
    bnr: float = Field(ge=1.0, le=8.0, description="beam non-uniformity ratio on the head")
    watchdog_ms: int = Field(default=1000, ge=100, le=5000)
    heartbeat_interval_ms: int = Field(default=100, ge=20, le=2500)
    link: MqttLink
    limits: Cx3ProfileLimits
    topics: TopicTemplates
    qos: TopicQos = Field(default_factory=TopicQos)
    status: StatusMap
    boot: BootMap
    commands: CommandMap
    replies: ReplyMap
    heartbeat: HeartbeatMap
    events: EventMap | None = None
    telemetry: TelemetryMap
    values: ValueMaps

    @model_validator(mode="after")
    def _fits_together(self) -> GenericMqttProfile:
        if not _SERIAL.fullmatch(self.serial):
            raise MappingProblem("serial", "must be letters, digits, '-', '_' or '.'")
        check_heartbeat_inside_watchdog(self.heartbeat_interval_ms, self.watchdog_ms)
        if (self.events is None) != (self.topics.event is None):
            raise MappingProblem("events", "give [events] and topics.event together")
        if self.boot.event is not None:
            if self.events is None:
                raise MappingProblem("boot.event", "a boot event needs [events] and topics.event")
            if self.values.events.get(self.boot.event) != "BOOT":
                raise MappingProblem(
                    "boot.event",
                    f"{self.boot.event!r} is not mapped to BOOT in [values.events]",
                )
        for name, source in (
            ("mode", self.telemetry.stimulation.mode),
            ("electrode", self.telemetry.stimulation.electrode),
        ):
            table = "stim_mode" if name == "mode" else "electrode"
            configured = self.commands.configure_stim is not None
            if (source is not None or configured) and getattr(self.values, table) is None:
                raise MappingProblem(f"values.{table}", f"needed to translate the {name}")
        return self

    def topic(self, name: str) -> str:
        """Topic `name` (status, telemetry, command, reply, heartbeat, event) of this unit."""
        template = getattr(self.topics, name)
        if template is None:
            raise KeyError(f"{self.name}: no {name} topic in the profile")
        assert isinstance(template, str)
        return template.format(root=self.link.root.strip("/"), serial=self.serial)
