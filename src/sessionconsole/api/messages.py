"""Messages of the local API: JSON lines over a Unix socket between controller and clients.

Client -> controller: `Request` (an id and one command). Controller -> client: `Reply` to each
request, and `Snapshot`s of the whole state pushed at least ten times a second.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from sessionconsole.api.guide_messages import (
    GuideAdjustCommand,
    GuidePauseCommand,
    GuideResumeCommand,
    GuideSkipCommand,
    GuideSnapshot,
    GuideStartCommand,
)
from sessionconsole.model.session import check_pseudonym
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup
from sessionconsole.model.vocabulary import MAX_ROM_DEG, RomSide

Role = Literal["therapist", "biomedical"]
Side = Literal["left", "right", "bilateral", "midline"]
Pressure = Literal["light", "moderate", "firm", "deep"]
_ID = r"^[a-z][a-z_]*$"  # a vocabulary id


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- commands ----


class Hello(_Msg):
    """First message of a client: who operates it (the controller stamps every entry with it)."""

    type: Literal["hello"] = "hello"
    operator: str = Field(min_length=1, max_length=64)
    role: Role = "therapist"
    client: str = Field(default="unknown", max_length=64)
    # The biomedical role needs the controller's PIN ($SESSIONCONSOLE_BIOMED_PIN): a role
    # a client merely claims would let any therapist clear a lock-out. Never recorded.
    pin: str | None = Field(default=None, max_length=64)


class HeartbeatCommand(_Msg):
    """A client is alive and supervising (sent every 0.5 s by ControllerClient).

    While an output may be on, the controller stops everything when no client has been
    heard from within its client timeout (rule CLIENT_LOST): a frozen UI counts as lost.
    """

    type: Literal["heartbeat"] = "heartbeat"


class ConfigureCommand(_Msg):
    """Set an output's settings: ultrasound settings, or a stimulation waveform and amplitude."""

    type: Literal["configure"] = "configure"
    device: str
    settings: UltrasoundSettings | ChannelSetup
    why: str = Field(default="", max_length=500, description="recorded with the change")


class StartCommand(_Msg):
    """Start a device's output; `attended` marks stimulation given with the therapist present
    (billing: 97032 attended, else 97014/G0283)."""

    type: Literal["start"] = "start"
    device: str
    attended: bool = False


class StopCommand(_Msg):
    """Stop one device's output."""

    type: Literal["stop"] = "stop"
    device: str


class StopAllCommand(_Msg):
    """STOP ALL: every output of every device, latched until acknowledged."""

    type: Literal["stop_all"] = "stop_all"


class AcknowledgeCommand(_Msg):
    """The operator saw an alarm (or every active alarm when `alarm_id` is None)."""

    type: Literal["acknowledge"] = "acknowledge"
    alarm_id: int | None = None


class ClearLockoutCommand(_Msg):
    """Biomedical staff release an output locked out after a stop it did not obey."""

    type: Literal["clear_lockout"] = "clear_lockout"
    device: str


class LogTechniqueCommand(_Msg):
    """A manual technique begins or ends on a body region."""

    type: Literal["log_technique"] = "log_technique"
    action: Literal["begin", "end"]
    technique: str
    region: str
    side: Side = "bilateral"
    pressure: Pressure | None = None
    notes: str = Field(default="", max_length=2000)


class PainScoreCommand(_Msg):
    """The patient's pain on the 0-10 numeric rating scale (NPRS), before or after treatment."""

    type: Literal["pain"] = "pain"
    when: Literal["before", "after"]
    score: int = Field(ge=0, le=10)


class RangeOfMotionCommand(_Msg):
    """A goniometer reading: how far a joint moves, from neutral, on one side.

    Shape is checked here; the joint, the movement and the side are checked by the controller
    against the vocabulary's joints (config/vocabulary.toml), which also give the normal range.
    """

    type: Literal["rom"] = "rom"
    joint: str = Field(pattern=_ID, max_length=64)
    movement: str = Field(pattern=_ID, max_length=64)
    side: RomSide
    degrees: int = Field(ge=0, le=MAX_ROM_DEG)
    mode: Literal["active", "passive"]
    notes: str = Field(default="", max_length=500)


GoalStatus = Literal["not-started", "progressing", "met"]


class GoalStatusCommand(_Msg):
    """Where the patient stands on one functional goal; the goal's text names it across
    sessions (the progress report groups by it), `measure` says what was observed."""

    type: Literal["goal"] = "goal"
    goal: str = Field(min_length=1, max_length=200, pattern=r"\S")
    status: GoalStatus
    measure: str = Field(default="", max_length=200)


class PatientCommand(_Msg):
    """Who the session is for: sets the pseudonym of a session opened without one, or confirms
    the one it was opened for (a different one is refused: one session, one patient)."""

    type: Literal["patient"] = "patient"
    pseudonym: Annotated[str, AfterValidator(check_pseudonym)]


class ScreenedCondition(_Msg):
    """A condition the patient has (an id of config/contraindications.toml), and where."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    regions: list[str] = Field(default_factory=list, max_length=32)  # empty: anywhere


class ScreeningCommand(_Msg):
    """The Start screen's contraindication screening: the patient's conditions and the CONFIRM
    rules the therapist confirmed (`rule@step N:modality`). A guided step starts only after
    one, and is checked against it again (BLOCK refuses it; an unconfirmed CONFIRM too)."""

    type: Literal["screening"] = "screening"
    conditions: list[ScreenedCondition] = Field(default_factory=list, max_length=64)
    confirmed: list[str] = Field(default_factory=list, max_length=256)


class NoteCommand(_Msg):
    """A free-text note for the session record."""

    type: Literal["note"] = "note"
    text: str = Field(min_length=1, max_length=4000)


Command = Annotated[
    Hello
    | HeartbeatCommand
    | ConfigureCommand
    | StartCommand
    | StopCommand
    | StopAllCommand
    | AcknowledgeCommand
    | ClearLockoutCommand
    | LogTechniqueCommand
    | PainScoreCommand
    | RangeOfMotionCommand
    | GoalStatusCommand
    | NoteCommand
    | PatientCommand
    | ScreeningCommand
    # guided sessions (api/guide_messages.py)
    | GuideStartCommand
    | GuidePauseCommand
    | GuideResumeCommand
    | GuideSkipCommand
    | GuideAdjustCommand,
    Field(discriminator="type"),
]


class Request(_Msg):
    """One command with the client's id for matching the reply."""

    kind: Literal["request"] = "request"
    id: int = Field(ge=0)
    command: Command


# ---- controller -> client ----


class Reply(_Msg):
    """Outcome of one request: accepted (and recorded), or refused with the reason."""

    kind: Literal["reply"] = "reply"
    id: int | None
    ok: bool
    error: str | None = None
    rule_id: str | None = None


class UltrasoundSnapshot(_Msg):
    """One ultrasound output as the therapist sees it: requested next to measured."""

    modality: Literal["ultrasound"] = "ultrasound"
    device: str
    name: str
    model: str
    connected: bool
    telemetry_age_ms: float | None
    state: str | None
    fault: str | None
    output_active: bool
    settings: UltrasoundSettings | None
    intensity_setpoint_w_cm2: float | None
    intensity_measured_w_cm2: float | None
    head_temperature_c: float | None
    coupling_pct: int | None
    remaining_s: int | None
    energy_j: int | None
    last_error: str | None
    era_cm2: float | None = None  # the head's effective radiating area (profile): planned energy


class StimulationSnapshot(_Msg):
    """One stimulation output (an ES-2 channel, a CX-3's stimulation): set next to measured."""

    modality: Literal["stimulation"] = "stimulation"
    device: str
    name: str
    model: str
    connected: bool
    telemetry_age_ms: float | None
    state: str | None
    fault: str | None
    output_active: bool
    settings: ChannelSetup | None
    amplitude_setpoint_ma: float | None
    amplitude_measured_ma: float | None
    impedance_ohm: float | None
    last_error: str | None


OutputSnapshot = Annotated[
    UltrasoundSnapshot | StimulationSnapshot, Field(discriminator="modality")
]


class AlarmSnapshot(_Msg):
    """One alarm of the session."""

    id: int
    rule_id: str
    priority: Literal["high", "medium", "low"]
    device: str | None
    message: str
    what_to_do: str
    latched: bool
    cause_present: bool
    active: bool
    acknowledged: bool
    acknowledged_by: str | None
    raised_wall: str


class TechniqueSnapshot(_Msg):
    """A manual technique in progress."""

    technique: str
    region: str
    side: Side
    started_wall: str


class LoopStats(_Msg):
    """Core loop timing since the controller started."""

    period_ms: float
    ticks: int
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    overruns: int


class Snapshot(_Msg):
    """The whole console state, pushed to every client."""

    kind: Literal["snapshot"] = "snapshot"
    seq: int
    wall: str
    session_id: str
    room: str
    patient: str | None = None  # the session's patient pseudonym, once known
    devices: list[OutputSnapshot]
    alarms: list[AlarmSnapshot]
    techniques: list[TechniqueSnapshot]
    loop: LoopStats
    guide: GuideSnapshot | None = None  # the guided session, when the session follows a plan


class ErrorMessage(_Msg):
    """A line the controller could not understand (bad JSON, unknown command)."""

    kind: Literal["error"] = "error"
    error: str


ServerMessage = Annotated[Reply | Snapshot | ErrorMessage, Field(discriminator="kind")]

REQUEST_ADAPTER: TypeAdapter[Request] = TypeAdapter(Request)
SERVER_ADAPTER: TypeAdapter[Reply | Snapshot | ErrorMessage] = TypeAdapter(ServerMessage)

MAX_LINE_BYTES = 64 * 1024
