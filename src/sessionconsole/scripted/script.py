"""The script file: ordered `[[step]]`s, parsed strictly (pydantic, extra keys forbidden).

Parsing checks each step's shape; `scripted/plan.py` then checks it against the room (which
units exist, which modality an output has) before anything starts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sessionconsole.api.messages import GoalStatus, Pressure, Side
from sessionconsole.model.plan import StimulationValues, UltrasoundValues
from sessionconsole.model.stimulation import StimMode
from sessionconsole.model.vocabulary import MAX_ROM_DEG, RomSide

OutputKey = Literal["us", "stim"]
Channel = Literal[1, 2]


class ScriptError(ValueError):
    """Invalid input: names the file, the step (1-based) and the field."""

    def __init__(self, path: Path | str, step: int | None, field: str, message: str) -> None:
        where = f"{path}: step {step}: " if step is not None else f"{path}: "
        super().__init__(f"{where}{field}: {message}" if field else f"{where}{message}")
        self.path, self.step, self.field = str(path), step, field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---- arguments, by the settings' own names ----


class UltrasoundArgs(_Strict):
    """`configure` of an ultrasound output (US-1, CX-3 `us`)."""

    frequency_khz: Literal[1000, 3000]
    intensity_w_cm2: float = Field(ge=0.0, le=3.0)
    duty_pct: Literal[10, 20, 50, 100]
    time_s: int = Field(ge=1, le=1800)
    treated_area_cm2: float | None = Field(default=None, gt=0.0, le=1000.0)
    max_dose_j_cm2: float | None = Field(default=None, gt=0.0, le=1000.0)


class StimulationArgs(_Strict):
    """`configure` of a stimulation output (ES-2 channel, CX-3 `stim`)."""

    channel: Channel | None = None
    mode: StimMode
    freq_hz: int = Field(ge=1, le=250)
    pw_us: int = Field(ge=5, le=400)
    on_s: int = Field(default=0, ge=0, le=60)
    off_s: int = Field(default=0, ge=0, le=60)
    ramp_s: int = Field(default=2, ge=0, le=10)
    amplitude_ma: float = Field(ge=0.0, le=100.0)
    electrode: Literal["PADS", "US_HEAD"] = "PADS"
    electrode_area_cm2: float | None = Field(default=None, gt=0.0, le=500.0)
    electrode_region: str | None = Field(default=None, min_length=1)
    electrode_side: Literal["left", "right", "bilateral", "midline"] | None = None
    attended: bool = False


class LevelArgs(_Strict):
    """`set`: the running level only, intensity or amplitude."""

    channel: Channel | None = None
    intensity_w_cm2: float | None = Field(default=None, ge=0.0, le=3.0)
    amplitude_ma: float | None = Field(default=None, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _exactly_one_level(self) -> LevelArgs:
        if (self.intensity_w_cm2 is None) == (self.amplitude_ma is None):
            raise ValueError("give exactly one of intensity_w_cm2 or amplitude_ma")
        return self


# ---- steps ----


class ConfigureStep(_Strict):
    """Settings for one output; args by modality (checked against the room in plan.py)."""

    do: Literal["configure"]
    device: str = Field(min_length=1)
    output: OutputKey | None = None
    channel: Channel | None = None
    args: dict[str, Any]


class SetStep(_Strict):
    """A new running level: the last settings of the output with that one value changed."""

    do: Literal["set"]
    device: str = Field(min_length=1)
    output: OutputKey | None = None
    channel: Channel | None = None
    args: LevelArgs


class StartStep(_Strict):
    """Start one output, or every output of the unit when neither channel nor output is given."""

    do: Literal["start"]
    device: str = Field(min_length=1)
    output: OutputKey | None = None
    channel: Channel | None = None
    attended: bool | None = None


class StopStep(_Strict):
    """Stop one output, or every output of the unit."""

    do: Literal["stop"]
    device: str = Field(min_length=1)
    output: OutputKey | None = None
    channel: Channel | None = None


class StopAllStep(_Strict):
    """STOP ALL (latched until acknowledged)."""

    do: Literal["stop_all"]


class WaitStep(_Strict):
    """Let the session run for `s` seconds."""

    do: Literal["wait"]
    s: float = Field(ge=0.0, le=3600.0)


class TechniqueStep(_Strict):
    """A manual technique: `duration_s` (begins now, ends by itself) or `action` begin/end."""

    do: Literal["technique"]
    technique: str = Field(min_length=1)
    region: str = Field(min_length=1)
    side: Side = "bilateral"
    pressure: Pressure | None = None
    notes: str = Field(default="", max_length=2000)
    duration_s: float | None = Field(default=None, gt=0.0, le=3600.0)
    action: Literal["begin", "end"] | None = None

    @model_validator(mode="after")
    def _duration_or_action(self) -> TechniqueStep:
        if (self.duration_s is None) == (self.action is None):
            raise ValueError("give exactly one of duration_s or action")
        return self


class AcknowledgeStep(_Strict):
    """Acknowledge one alarm, or every active one."""

    do: Literal["acknowledge"]
    alarm_id: int | None = Field(default=None, ge=1)


class PainStep(_Strict):
    """Pain on the 0-10 numeric rating scale."""

    do: Literal["pain"]
    when: Literal["before", "after"]
    score: int = Field(ge=0, le=10)


class ScreenedConditionSpec(_Strict):
    """A condition of the patient (a contraindications.toml id) and where (empty: anywhere)."""

    id: str = Field(min_length=1)
    regions: list[str] = Field(default_factory=list)


class ScreeningStep(_Strict):
    """The contraindication screening (what the Start screen sends): conditions, confirmations."""

    do: Literal["screening"]
    conditions: list[ScreenedConditionSpec] = Field(default_factory=list)
    confirmed: list[str] = Field(default_factory=list)


class RomStep(_Strict):
    """A range-of-motion reading (joint and movement ids of the vocabulary, degrees 0-360)."""

    do: Literal["rom"]
    joint: str = Field(min_length=1)
    movement: str = Field(min_length=1)
    side: RomSide
    degrees: int = Field(ge=0, le=MAX_ROM_DEG)
    mode: Literal["active", "passive"]
    notes: str = Field(default="", max_length=500)


class GoalStep(_Strict):
    """Where the patient stands on a functional goal."""

    do: Literal["goal"]
    goal: str = Field(min_length=1, max_length=200, pattern=r"\S")
    status: GoalStatus
    measure: str = Field(default="", max_length=200)


class NoteStep(_Strict):
    """A free-text note for the record."""

    do: Literal["note"]
    text: str = Field(min_length=1, max_length=4000)


class SimStep(_Strict):
    """One request to a unit's simulator test port (SIMULATORS.md), e.g. a fault."""

    do: Literal["sim"]
    device: str = Field(min_length=1)
    request: dict[str, Any] = Field(min_length=1)


class GuideStep(_Strict):
    """A guided-session request (the run needs `--plan`): start, pause, resume, skip, adjust."""

    do: Literal["guide"]
    action: Literal["start", "pause", "resume", "skip", "adjust"]
    reason: str = Field(default="", max_length=500)
    attended: bool = False
    step: int | None = Field(default=None, ge=1)
    duration_s: int | None = Field(default=None, ge=1, le=3600)
    ultrasound: UltrasoundValues | None = None
    stimulation: StimulationValues | None = None
    amplitude_ma: float | None = Field(default=None, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _reason_and_change(self) -> GuideStep:
        if self.action in ("skip", "adjust") and not self.reason.strip():
            raise ValueError(f"{self.action} needs a reason (it is recorded as a deviation)")
        changes = (self.step, self.duration_s, self.ultrasound, self.stimulation, self.amplitude_ma)
        if self.action == "adjust" and all(v is None for v in changes[1:]):
            raise ValueError("adjust needs duration_s, ultrasound, stimulation or amplitude_ma")
        if self.action != "adjust" and any(v is not None for v in changes):
            raise ValueError(f"{self.action} takes no step or settings (only adjust does)")
        return self


class ExpectStep(_Strict):
    """One condition that must hold within `within_s`; the script ends at once if it does not."""

    do: Literal["expect"]
    within_s: float = Field(default=2.0, ge=0.0, le=600.0)
    alarm: str | None = Field(default=None, min_length=1)
    output_off: str | None = Field(default=None, min_length=1)
    output_on: str | None = Field(default=None, min_length=1)
    refused: Literal[True] | None = None
    no_alarm: Literal[True] | None = None
    current_step: int | None = Field(default=None, ge=0, description="0: the plan finished")

    @model_validator(mode="after")
    def _one_condition(self) -> ExpectStep:
        given = [n for n in CONDITIONS if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(CONDITIONS)} (got {given or 'none'})")
        return self

    @property
    def condition(self) -> str:
        """The condition as written, e.g. `alarm = "HEAD_OVERTEMP"`."""
        name = next(n for n in CONDITIONS if getattr(self, n) is not None)
        value = getattr(self, name)
        return f"{name} = {'true' if value is True else repr(value)}"


CONDITIONS = ("alarm", "output_off", "output_on", "refused", "no_alarm", "current_step")

Step = Annotated[
    ConfigureStep
    | SetStep
    | StartStep
    | StopStep
    | StopAllStep
    | WaitStep
    | TechniqueStep
    | AcknowledgeStep
    | PainStep
    | ScreeningStep
    | RomStep
    | GoalStep
    | NoteStep
    | SimStep
    | GuideStep
    | ExpectStep,
    Field(discriminator="do"),
]


class Script(_Strict):
    """A whole script: an optional description and the ordered steps."""

    description: str = ""
    step: list[Step] = Field(min_length=1)


def load_script(path: Path) -> Script:
    """Read and validate a script; raises ScriptError (file, step, field) on any problem."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ScriptError(path, None, "", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(path, None, "", f"not valid TOML: {exc}") from exc
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        raise script_error(path, exc) from exc


def script_error(
    path: Path, exc: ValidationError, step: int | None = None, prefix: str = ""
) -> ScriptError:
    """The first validation error as a ScriptError; `step` and `prefix` (e.g. `args.`) when
    validating part of one step."""
    err = exc.errors()[0]
    loc: list[str | int] = list(err["loc"])
    if step is None and len(loc) >= 2 and loc[0] == "step" and isinstance(loc[1], int):
        step, loc = loc[1] + 1, loc[2:]
        if loc and isinstance(loc[0], str) and loc[0] in _TAGS:
            loc = loc[1:]  # the discriminator's branch name, not a field
    field = ".".join(str(p) for p in loc) or ("do" if err["type"].startswith("union_tag") else "")
    value = f" (got {err['input']!r})" if err["type"] not in _NO_INPUT else ""
    return ScriptError(path, step, prefix + field, f"{err['msg']}{value}")


_TAGS = frozenset(
    {"configure", "set", "start", "stop", "stop_all", "wait", "technique"}
    | {"acknowledge", "pain", "screening", "rom", "goal", "note", "sim", "expect", "guide"}
)
_NO_INPUT = frozenset({"missing", "extra_forbidden", "value_error", "union_tag_not_found"})
