"""CX-3 MQTT messages (ICD CX-3 v2), sans I/O: topics, typed payloads, command envelopes.

Every `parse_*` takes the raw payload bytes and returns a pydantic model, or raises
`Cx3PayloadError` (bad UTF-8, bad JSON, NaN/Infinity, wrong shape) and nothing else. Inbound
models ignore fields the ICD does not name (a newer firmware may add some) but are strict
about the types and values of those it does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sessionconsole.model.combination import Cx3Reading, Cx3StimulationPart, Cx3UltrasoundPart
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import StimMode, StimulationSettings

MODEL: Final = "CX-3"
UsState = Literal["IDLE", "RUNNING", "PAUSED", "SUSPENDED", "FAULT", "DONE"]
StimState = Literal["IDLE", "RAMP", "ON", "OFFPHASE", "FAULT"]
Electrode = Literal["PADS", "US_HEAD"]
Output = Literal["us", "stim", "both"]
ErrorCode = Literal["RANGE", "STATE", "FAULT", "NOCFG", "SYNTAX", "UNKNOWN"]
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
Op = Literal[
    "configure_us",
    "configure_stim",
    "set_intensity",
    "set_amplitude",
    "start",
    "stop",
    "reset_fault",
    "set_watchdog",
]
ArgValue = str | int | float


class Cx3PayloadError(ValueError):
    """A payload that is not UTF-8 JSON of the shape the ICD gives for its topic."""


# ---- topics ----


@dataclass(frozen=True, slots=True)
class Topics:
    """The six topics of one unit under `<root>/<serial>/`."""

    base: str

    @classmethod
    def of(cls, root: str, serial: str) -> Topics:
        """Topics of unit `serial` under the configured root prefix (ICD default `cx3`)."""
        return cls(f"{root.strip('/')}/{serial}")

    @property
    def status(self) -> str:
        """Retained device status and last will (device →, QoS 1)."""
        return f"{self.base}/status"

    @property
    def telemetry(self) -> str:
        """Telemetry at 10 Hz (device →, QoS 0)."""
        return f"{self.base}/telemetry"

    @property
    def cmd(self) -> str:
        """Commands (→ device, QoS 1)."""
        return f"{self.base}/cmd"

    @property
    def reply(self) -> str:
        """Command replies (device →, QoS 1)."""
        return f"{self.base}/reply"

    @property
    def event(self) -> str:
        """Events (device →, QoS 1)."""
        return f"{self.base}/event"

    @property
    def heartbeat(self) -> str:
        """Watchdog heartbeats (→ device, QoS 0)."""
        return f"{self.base}/heartbeat"


# ---- inbound messages ----

_INBOUND = ConfigDict(extra="ignore", strict=True, frozen=True)


class Status(BaseModel):
    """The retained status: online with boot counter and firmware, or the last will."""

    model_config = _INBOUND

    online: bool
    boot: int | None = Field(default=None, ge=0)
    fw: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _online_names_itself(self) -> Status:
        if self.online and (self.boot is None or self.fw is None or self.model is None):
            raise ValueError("an online status must carry boot, fw and model")
        return self


class UsTelemetry(BaseModel):
    """The ultrasound block of a telemetry message."""

    model_config = _INBOUND

    state: UsState
    intensity_set_w_cm2: float = Field(ge=0.0, le=3.0)
    intensity_w_cm2: float = Field(ge=0.0)
    power_w: float = Field(ge=0.0)
    head_temp_c: float
    coupling_pct: int = Field(ge=0, le=100)
    remaining_s: int = Field(ge=0)
    energy_j: int = Field(ge=0)
    era_cm2: float = Field(gt=0.0)
    bnr: float = Field(ge=1.0)


class StimTelemetry(BaseModel):
    """The stimulation block of a telemetry message (mode/electrode null until configured)."""

    model_config = _INBOUND

    state: StimState
    mode: StimMode | None
    electrode: Electrode | None
    ma_set: float = Field(ge=0.0, le=100.0)
    ma: float = Field(ge=0.0)
    impedance_ohm: float = Field(ge=0.0)


class Telemetry(BaseModel):
    """One telemetry message."""

    model_config = _INBOUND

    seq: int = Field(ge=0)
    t_ms: int = Field(ge=0)
    us: UsTelemetry
    stim: StimTelemetry
    faults: list[FaultCode]


class Reply(BaseModel):
    """A command reply: ok for an id, or an error code with detail (id null if unreadable)."""

    model_config = _INBOUND

    id: int | None
    ok: bool
    error: ErrorCode | None = None
    detail: str | None = None

    @model_validator(mode="after")
    def _ok_or_error(self) -> Reply:
        if self.ok and (self.id is None or self.error is not None):
            raise ValueError("an ok reply carries an id and no error")
        if not self.ok and self.error is None:
            raise ValueError("a refusal carries an error code")
        return self


class Event(BaseModel):
    """One device event with the output it concerns (null: the whole unit)."""

    model_config = _INBOUND

    event: EventCode
    output: Literal["us", "stim"] | None
    t_ms: int = Field(ge=0)


class Command(BaseModel):
    """The command envelope `{"id", "op", "args"}` (outbound; parsed back in tests)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: int = Field(ge=0)
    op: Op
    args: dict[str, ArgValue]

    def encode(self) -> bytes:
        """The payload for the `cmd` topic."""
        return json.dumps({"id": self.id, "op": self.op, "args": self.args}).encode()


_M = TypeVar("_M", bound=BaseModel)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse(model: type[_M], payload: bytes, topic: str) -> _M:
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Cx3PayloadError(f"{topic}: not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Cx3PayloadError(f"{topic}: expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except (ValidationError, RecursionError) as exc:
        raise Cx3PayloadError(f"{topic}: {_first_problem(exc)}") from exc


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errs = exc.errors()
        where = ".".join(str(p) for p in errs[0]["loc"]) or "(message)"
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        return f"{where}: {errs[0]['msg']}{more}"
    return str(exc)


def parse_status(payload: bytes) -> Status:
    """A `status` payload."""
    return _parse(Status, payload, "status")


def parse_telemetry(payload: bytes) -> Telemetry:
    """A `telemetry` payload."""
    return _parse(Telemetry, payload, "telemetry")


def parse_reply(payload: bytes) -> Reply:
    """A `reply` payload."""
    return _parse(Reply, payload, "reply")


def parse_event(payload: bytes) -> Event:
    """An `event` payload."""
    return _parse(Event, payload, "event")


def parse_command(payload: bytes) -> Command:
    """A `cmd` payload (what the console sends; used to check encoders)."""
    return _parse(Command, payload, "cmd")


def encode_heartbeat(n: int) -> bytes:
    """The payload for the `heartbeat` topic."""
    return json.dumps({"n": n}).encode()


# ---- request ids ----


class RequestIds:
    """Command ids unique across console restarts: wall-clock milliseconds times 1000, then + 1.

    The device answers a remembered (id, op, args) from its memory without executing it, so a
    restarted console must never reuse an id of its previous run. A new run starts above any
    id the last one could have reached unless it sent over 1000 commands per millisecond of
    its lifetime. Ids stay below 2**53 (exact in any JSON parser) until the 23rd century.
    """

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._next = int(wall_clock() * 1000.0) * 1000

    def next(self) -> int:
        """The next id."""
        value = self._next
        self._next += 1
        return value


# ---- translation to the console's words ----


def configure_us_args(settings: UltrasoundSettings) -> dict[str, ArgValue]:
    """`configure_us` arguments from validated ultrasound settings."""
    s = settings
    return {
        "frequency_khz": s.frequency_khz,
        "intensity_w_cm2": s.intensity_w_cm2,
        "duty_pct": s.duty_pct,
        "time_s": s.time_s,
    }


def configure_stim_args(settings: StimulationSettings, electrode: Electrode) -> dict[str, ArgValue]:
    """`configure_stim` arguments; `US_HEAD` makes the ultrasound head the electrode."""
    s = settings
    return {
        "mode": s.mode,
        "freq_hz": s.freq_hz,
        "pw_us": s.pw_us,
        "on_s": s.on_s,
        "off_s": s.off_s,
        "ramp_s": s.ramp_s,
        "electrode": electrode,
    }


def reading_from(telemetry: Telemetry, received_mono_s: float) -> Cx3Reading:
    """The console's reading from one telemetry message (wire names translated once, here)."""
    us, stim = telemetry.us, telemetry.stim
    return Cx3Reading(
        received_mono_s=received_mono_s,
        seq=telemetry.seq,
        device_t_ms=telemetry.t_ms,
        ultrasound=Cx3UltrasoundPart(
            state=us.state,
            intensity_setpoint_w_cm2=us.intensity_set_w_cm2,
            intensity_measured_w_cm2=us.intensity_w_cm2,
            power_measured_w=us.power_w,
            head_temperature_c=us.head_temp_c,
            coupling_pct=us.coupling_pct,
            remaining_s=us.remaining_s,
            energy_j=us.energy_j,
            era_cm2=us.era_cm2,
            bnr=us.bnr,
        ),
        stimulation=Cx3StimulationPart(
            state=stim.state,
            mode=stim.mode,
            electrode=stim.electrode,
            amplitude_setpoint_ma=stim.ma_set,
            amplitude_measured_ma=stim.ma,
            impedance_ohm=stim.impedance_ohm,
        ),
        faults=tuple(telemetry.faults),
    )
