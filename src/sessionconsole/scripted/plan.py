"""A script checked against the room and turned into API commands, before anything starts.

Names are resolved here (`es2` + channel 1 -> output `es2.ch1`, `cx3` + `us` -> `cx3.us`),
arguments are validated by the output's modality, and `set` becomes a configure of the last
settings with one value changed, so a script that cannot run is refused with exit 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from sessionconsole.api.guide_messages import (
    GuideAdjustCommand,
    GuidePauseCommand,
    GuideResumeCommand,
    GuideSkipCommand,
    GuideStartCommand,
)
from sessionconsole.api.messages import (
    AcknowledgeCommand,
    Command,
    ConfigureCommand,
    GoalStatusCommand,
    LogTechniqueCommand,
    NoteCommand,
    PainScoreCommand,
    RangeOfMotionCommand,
    ScreenedCondition,
    ScreeningCommand,
    StartCommand,
    StopAllCommand,
    StopCommand,
)
from sessionconsole.model.room import Room
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.model.validation import AnyProfile
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.scripted import script as s

Modality = Literal["ultrasound", "stimulation"]
PLACEMENT = ("electrode", "electrode_area_cm2", "electrode_region", "electrode_side")


def unit_outputs(unit: str, kind: str) -> dict[str, Modality]:
    """The console's outputs of one unit (as core/units.py names them) and their modality."""
    if kind == "es2":
        return {f"{unit}.ch1": "stimulation", f"{unit}.ch2": "stimulation"}
    if kind in ("cx3", "mqtt_generic"):
        return {f"{unit}.us": "ultrasound", f"{unit}.stim": "stimulation"}
    return {unit: "ultrasound"}  # us1, modbus_generic


@dataclass(frozen=True)
class RoomUnits:
    """What a script may name: each unit's outputs and its simulator test port."""

    outputs: dict[str, dict[str, Modality]]
    sim_control: dict[str, str | None]

    @classmethod
    def of(cls, room: Room, profiles: dict[str, AnyProfile]) -> RoomUnits:
        """From a loaded room and its profiles."""
        return cls(
            {name: unit_outputs(name, p.kind) for name, p in profiles.items()},
            {name: d.sim_control for name, d in room.devices.items()},
        )

    def modality(self, output: str) -> Modality:
        """The modality of an output."""
        return next(o[output] for o in self.outputs.values() if output in o)


# ---- planned steps ----


@dataclass(frozen=True)
class Send:
    """Commands to send in order; `outputs` they act on (for the summary's refusals)."""

    number: int
    do: str
    commands: tuple[Command, ...]
    notes: tuple[str, ...] = ()  # arguments the API does not carry, recorded as notes


@dataclass(frozen=True)
class Wait:
    """Let the session run."""

    number: int
    s: float
    do: str = "wait"


@dataclass(frozen=True)
class Technique:
    """Begin a technique; end it after `duration_s` while the script goes on (when given)."""

    number: int
    begin_or_end: LogTechniqueCommand
    duration_s: float | None
    do: str = "technique"


@dataclass(frozen=True)
class Sim:
    """One test-port request to a unit's simulator."""

    number: int
    unit: str
    control: str
    request: dict[str, Any]
    do: str = "sim"


@dataclass(frozen=True)
class Expect:
    """One condition; `outputs` resolved for output_on / output_off."""

    number: int
    step: s.ExpectStep
    outputs: tuple[str, ...] = ()
    do: str = "expect"


PlannedStep = Send | Wait | Technique | Sim | Expect


@dataclass
class Plan:
    """The steps to run, and what the summary needs to know about the settings."""

    steps: list[PlannedStep] = field(default_factory=list)
    treated_area_cm2: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _Planner:
    def __init__(
        self, path: Path, units: RoomUnits, vocabulary: Vocabulary, has_plan: bool = False
    ) -> None:
        self.path, self.units, self.vocabulary = path, units, vocabulary
        self.has_plan = has_plan
        self.plan = Plan()
        self.settings: dict[str, UltrasoundSettings | ChannelSetup] = {}
        self.attended: dict[str, bool] = {}
        self.number = 0

    def error(self, fld: str, message: str) -> s.ScriptError:
        return s.ScriptError(self.path, self.number, fld, message)

    def outputs_of(
        self, unit: str, output: s.OutputKey | None, channel: int | None, fld: str = "device"
    ) -> list[str]:
        """The outputs a step names: one (channel/output given) or all of the unit."""
        if unit not in self.units.outputs:
            known = ", ".join(sorted(self.units.outputs))
            raise self.error(fld, f"no unit {unit!r} in the room (units: {known})")
        names = list(self.units.outputs[unit])
        if channel is not None:
            wanted = f"{unit}.ch{channel}"
            if wanted not in names:
                raise self.error("channel", f"{unit} has no channel {channel} (outputs: {names})")
            names = [wanted]
        if output is not None:
            wanted = f"{unit}.{output}"
            if wanted not in names:
                raise self.error("output", f"{unit} has no output {output!r} (outputs: {names})")
            names = [wanted]
        return names

    def output_ref(self, ref: str, fld: str) -> list[str]:
        """`us1`, `es2:1`, `es2.ch1`, `cx3:us`, `cx3.stim`, or a unit for all its outputs."""
        unit, sep, rest = ref.partition(":") if ":" in ref else ref.partition(".")
        if not sep:
            return self.outputs_of(unit, None, None, fld)
        if rest.isdigit():
            rest = f"ch{rest}"
        output = f"{unit}.{rest}"
        if output not in self.units.outputs.get(unit, {}):
            raise self.error(fld, f"no output {ref!r} in the room")
        return [output]

    def one(self, unit: str, output: s.OutputKey | None, channel: int | None) -> str:
        names = self.outputs_of(unit, output, channel)
        if len(names) != 1:
            raise self.error(
                "channel" if unit in self.units.outputs else "output",
                (f"{unit} has several outputs {names}: give channel or output"),
            )
        return names[0]

    def add(self, step: Any) -> None:
        self.number += 1
        match step:
            case s.ConfigureStep():
                self.configure(step)
            case s.SetStep():
                self.set_level(step)
            case s.StartStep():
                outs = self.outputs_of(step.device, step.output, step.channel)
                cmds = tuple(
                    StartCommand(
                        device=o,
                        attended=self.attended.get(o, False)
                        if step.attended is None
                        else step.attended,
                    )
                    for o in outs
                )
                self.push(Send(self.number, "start", cmds))
            case s.StopStep():
                outs = self.outputs_of(step.device, step.output, step.channel)
                self.push(Send(self.number, "stop", tuple(StopCommand(device=o) for o in outs)))
            case s.StopAllStep():
                self.push(Send(self.number, "stop_all", (StopAllCommand(),)))
            case s.AcknowledgeStep():
                cmd = AcknowledgeCommand(alarm_id=step.alarm_id)
                self.push(Send(self.number, "acknowledge", (cmd,)))
            case s.PainStep():
                cmd_p = PainScoreCommand(when=step.when, score=step.score)
                self.push(Send(self.number, "pain", (cmd_p,)))
            case s.ScreeningStep():
                conditions = [
                    ScreenedCondition(id=c.id, regions=list(c.regions)) for c in step.conditions
                ]
                cmd_s = ScreeningCommand(conditions=conditions, confirmed=list(step.confirmed))
                self.push(Send(self.number, "screening", (cmd_s,)))
            case s.RomStep():
                self.push(Send(self.number, "rom", (self.range_of_motion(step),)))
            case s.GoalStep():
                cmd_g = GoalStatusCommand(goal=step.goal, status=step.status, measure=step.measure)
                self.push(Send(self.number, "goal", (cmd_g,)))
            case s.NoteStep():
                self.push(Send(self.number, "note", (NoteCommand(text=step.text),)))
            case s.WaitStep():
                self.push(Wait(self.number, step.s))
            case s.TechniqueStep():
                self.technique(step)
            case s.SimStep():
                self.outputs_of(step.device, None, None)
                control = self.units.sim_control.get(step.device)
                if control is None:
                    raise self.error(
                        "device", f"unit {step.device!r} has no sim_control in the room"
                    )
                self.push(Sim(self.number, step.device, control, step.request))
            case s.GuideStep():
                if not self.has_plan:
                    raise self.error("do", "a guide step needs a plan: run with --plan FILE")
                self.push(Send(self.number, "guide", (_guide_command(step),)))
            case s.ExpectStep():
                if step.current_step is not None and not self.has_plan:
                    raise self.error("current_step", "needs a plan: run with --plan FILE")
                ref = step.output_off or step.output_on
                fld = "output_off" if step.output_off else "output_on"
                targets = tuple(self.output_ref(ref, fld)) if ref else ()
                self.push(Expect(self.number, step, targets))

    def push(self, planned: PlannedStep) -> None:
        self.plan.steps.append(planned)

    def configure(self, step: s.ConfigureStep) -> None:
        channel = step.channel
        arg_channel = step.args.get("channel")
        if channel is not None and arg_channel is not None and arg_channel != channel:
            raise self.error("args.channel", f"{arg_channel!r} disagrees with channel = {channel}")
        output_key = step.output
        if output_key is None and step.device in self.units.outputs:
            kinds = set(self.units.outputs[step.device].values())
            if len(self.units.outputs[step.device]) > 1 and kinds == {"ultrasound", "stimulation"}:
                output_key = "us" if "frequency_khz" in step.args else "stim"
        name = self.one(step.device, output_key, channel or _int_or_none(arg_channel))
        settings: UltrasoundSettings | ChannelSetup
        try:
            if self.units.modality(name) == "ultrasound":
                us = s.UltrasoundArgs.model_validate(step.args)
                settings = UltrasoundSettings(**us.model_dump())
                if us.treated_area_cm2 is not None:
                    self.plan.treated_area_cm2[name] = us.treated_area_cm2
            else:
                st = s.StimulationArgs.model_validate(step.args)
                wave = st.model_dump(
                    include={"mode", "freq_hz", "pw_us", "on_s", "off_s", "ramp_s"}
                )
                settings = ChannelSetup(
                    waveform=StimulationSettings(**wave),
                    amplitude_ma=st.amplitude_ma,
                    **st.model_dump(include=set(PLACEMENT)),
                )
                self.attended[name] = st.attended
        except ValidationError as exc:
            raise s.script_error(self.path, exc, self.number, prefix="args.") from exc
        region = settings.electrode_region if isinstance(settings, ChannelSetup) else None
        if region is not None and region not in self.vocabulary.region_ids():
            raise self.error("args.electrode_region", f"unknown body region '{region}'")
        self.settings[name] = settings
        cmd = ConfigureCommand(device=name, settings=settings)
        self.push(Send(self.number, "configure", (cmd,)))

    def set_level(self, step: s.SetStep) -> None:
        name = self.one(step.device, step.output, step.channel or step.args.channel)
        last = self.settings.get(name)
        if last is None:
            raise self.error("device", f"{name} has no settings yet: configure it before `set`")
        new: UltrasoundSettings | ChannelSetup
        if isinstance(last, UltrasoundSettings):
            if step.args.intensity_w_cm2 is None:
                raise self.error("args", f"{name} is an ultrasound output: set intensity_w_cm2")
            new = last.model_copy(update={"intensity_w_cm2": step.args.intensity_w_cm2})
        else:
            if step.args.amplitude_ma is None:
                raise self.error("args", f"{name} is a stimulation output: set amplitude_ma")
            try:
                new = ChannelSetup.model_validate(
                    {**last.model_dump(), "amplitude_ma": step.args.amplitude_ma}
                )
            except ValidationError as exc:
                raise self.error("args.amplitude_ma", exc.errors()[0]["msg"]) from exc
        self.settings[name] = new
        self.push(Send(self.number, "set", (ConfigureCommand(device=name, settings=new),)))

    def technique(self, step: s.TechniqueStep) -> None:
        if step.technique not in self.vocabulary.technique_ids():
            raise self.error("technique", f"unknown technique {step.technique!r}")
        if step.region not in self.vocabulary.region_ids():
            raise self.error("region", f"unknown body region {step.region!r}")
        cmd = LogTechniqueCommand(
            action=step.action or "begin",
            technique=step.technique,
            region=step.region,
            side=step.side,
            pressure=step.pressure,
            notes=step.notes,
        )
        self.push(Technique(self.number, cmd, step.duration_s))

    def range_of_motion(self, step: s.RomStep) -> RangeOfMotionCommand:
        """The ROM command, the joint, movement and side checked against the vocabulary."""
        problem = self.vocabulary.rom_problem(step.joint, step.movement, step.side)
        if problem is not None:
            raise self.error("joint", problem)
        fields = step.model_dump(exclude={"do"})
        return RangeOfMotionCommand(**fields)


def _guide_command(
    step: s.GuideStep,
) -> (
    GuideStartCommand
    | GuidePauseCommand
    | GuideResumeCommand
    | GuideSkipCommand
    | GuideAdjustCommand
):
    """The API command of a guide step."""
    match step.action:
        case "start":
            return GuideStartCommand(attended=step.attended)
        case "resume":
            return GuideResumeCommand(attended=step.attended)
        case "pause":
            return GuidePauseCommand(reason=step.reason)
        case "skip":
            return GuideSkipCommand(reason=step.reason)
    return GuideAdjustCommand(
        step=step.step,
        duration_s=step.duration_s,
        ultrasound=step.ultrasound,
        stimulation=step.stimulation,
        amplitude_ma=step.amplitude_ma,
        reason=step.reason,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def make_plan(
    path: Path,
    script: s.Script,
    units: RoomUnits,
    vocabulary: Vocabulary,
    has_plan: bool = False,
) -> Plan:
    """Check every step against the room and vocabulary (guide steps need a treatment plan,
    `has_plan`); raises ScriptError (exit 2)."""
    planner = _Planner(path, units, vocabulary, has_plan)
    for step in script.step:
        planner.add(step)
    return planner.plan
