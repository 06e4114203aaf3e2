"""The controller's side of a guided session: plan steps become kernel commands, never writes.

`GuidedSession` holds the pure guide (`plans/guide.py`) and the plan's steps as adjusted so
far. For each therapist request it prepares an `Intent`: the new guide, the kernel commands
that carry it out (configure, start, stop, a level change), the entries to record. The
controller tries the commands on the kernel first and commits the intent only if the kernel
accepts every one of them, so a combined step starts whole or not at all, and every limit,
latch and interlock of the kernel still applies. The guide never energises anything by itself:
outputs start only on the therapist's start or resume. When a step's time is up its outputs
are stopped through the kernel; any other stop of a running step's output pauses the guide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessionconsole.api.guide_messages import (
    GuideAdjustCommand,
    GuideCommand,
    GuidePauseCommand,
    GuideResumeCommand,
    GuideSkipCommand,
    GuideSnapshot,
    GuideStartCommand,
    GuideStepSnapshot,
)
from sessionconsole.api.messages import ConfigureCommand
from sessionconsole.model.contraindication import load_contraindications
from sessionconsole.model.limits import ClinicalLimits
from sessionconsole.model.paths import config_dir
from sessionconsole.model.plan import (
    ManualStep,
    PatientCondition,
    PlanStep,
    StimulationValues,
    TreatmentPlan,
    UltrasoundValues,
)
from sessionconsole.model.preset import load_presets
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup
from sessionconsole.model.validation import AnyProfile
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.plans import guide as g
from sessionconsole.plans.screening import screen
from sessionconsole.plans.step_settings import (
    RULE_PLAN_LIMIT,
    OutputSettings,
    PlanContext,
    StepChange,
    StepSettingsError,
    changed_step,
    step_outputs,
    step_refusals,
    step_settings,
)
from sessionconsole.safety import types as k

RULE_GUIDE_OUTPUT = "GUIDE_OUTPUT"  # a plain start of the output of a running/paused step
RULE_NOT_SCREENED = "NOT_SCREENED"  # no screening recorded yet: no step may start
RULE_CONTRAINDICATED = "CONTRAINDICATED"  # a BLOCK rule applies to the step
RULE_CONFIRM_NEEDED = "CONFIRM_NEEDED"  # a CONFIRM rule applies and was not confirmed
DEVICE_TIMER_GRACE_S = 1.0  # an output ending by itself this close to the step's end: its timer
RULE_SETTINGS = "GUIDE_SETTINGS"  # a step whose settings cannot be built or changed that way


@dataclass
class Intent:
    """A guide request ready to be tried on the kernel and then committed."""

    action: str
    step: int  # 0-based index of the step it acts on
    guide: g.Guide
    commands: tuple[k.Command, ...] = ()
    new_step: PlanStep | None = None  # an adjusted step
    attended: dict[str, bool] = field(default_factory=dict)  # stimulation outputs started
    payload: dict[str, Any] = field(default_factory=dict)


def guided_session(
    plan: TreatmentPlan,
    profiles: Mapping[str, AnyProfile],
    clinical: ClinicalLimits,
    vocabulary: Vocabulary,
) -> GuidedSession:
    """A guided session of `plan` in this room, with the installation's presets and rules."""
    base = config_dir()
    ctx = PlanContext(
        plan,
        profiles,
        clinical,
        load_contraindications(base / "contraindications.toml"),
        load_presets(base / "protocols"),
        vocabulary,
    )
    return GuidedSession(ctx)


def label(step: PlanStep) -> str:
    """A step in a few words: kind, region and side, outputs or technique."""
    what = step.technique if isinstance(step, ManualStep) else " + ".join(step_outputs(step))
    return f"{step.kind} {step.region} ({step.side}) {what}"


class GuidedSession:
    """The plan being run: the guide, the steps as adjusted, and what each step drives."""

    def __init__(self, ctx: PlanContext) -> None:
        self.ctx = ctx
        self.steps: list[PlanStep] = list(ctx.plan.steps)
        self.guide = g.new_guide([s.duration_s for s in self.steps])
        self._seen_running: dict[str, bool] = {}
        # The screening (conditions, confirmed rule keys); None until one is recorded.
        self.screening: tuple[tuple[PatientCondition, ...], frozenset[str]] | None = None

    def plain_start(self, output: str) -> None:
        """Refuse (GuideRefused) a plain start of `output` (not through the guide) when it
        would go around the guide: a step driving it is running or paused (GUIDE_OUTPUT), or,
        once a screening is recorded, a step not yet finished that drives it there is blocked
        or waits for a confirmation (the plan says where that output is applied). Without a
        screening a plain start is the therapist's own, as in a session without a plan."""
        for index, (step, clock) in enumerate(zip(self.steps, self.guide.steps, strict=True)):
            if output not in step_outputs(step) or clock.state in g.FINISHED:
                continue
            if clock.state in ("active", "paused"):
                raise g.GuideRefused(
                    RULE_GUIDE_OUTPUT,
                    f"{output} is step {index + 1}'s now: pause, resume or skip it with the guide",
                )
            if self.screening is not None:
                self.contraindications(index, step)

    def screened(self, conditions: Sequence[PatientCondition], confirmed: Collection[str]) -> None:
        """The newest screening: every later step start is checked against it."""
        self.screening = (tuple(conditions), frozenset(confirmed))

    def contraindications(self, index: int, step: PlanStep) -> None:
        """Refuse (GuideRefused) a step the screening forbids or has not cleared: no screening
        yet, a BLOCK rule, or a CONFIRM rule without its confirmation (the Start screen's key
        `rule@step N:modality`). The same rules as at screening, applied again at the step."""
        n = index + 1
        if self.screening is None:
            raise g.GuideRefused(
                RULE_NOT_SCREENED,
                f"step {n}: the patient has not been screened for contraindications in this "
                "session: screen on the Start screen (Ctrl+P, Start), then 'To session'",
            )
        conditions, confirmed = self.screening
        found = screen(self.ctx.rules, conditions, step)
        for f in found.blocks:
            cond = f" ({f.condition})" if f.condition else ""
            raise g.GuideRefused(
                RULE_CONTRAINDICATED,
                f"step {n}: {f.modality} on {f.region}{cond}: {f.reason} [{f.source}]",
            )
        for f in found.confirmations:
            if f"{f.rule_id}@step {n}:{f.modality}" not in confirmed:
                raise g.GuideRefused(
                    RULE_CONFIRM_NEEDED,
                    f"step {n}: confirm first on the Start screen: {f.rule_id}, {f.modality} "
                    f"on {f.region}: {f.reason}",
                )

    # ---- requests ----

    def prepare(
        self,
        command: GuideCommand,
        now: float,
        operator: str,
        rid: Callable[[], int],
        kernel_settings: Mapping[str, OutputSettings | None],
    ) -> Intent:
        """The intent for one request; GuideRefused (rule id, why) when it cannot be done."""
        match command:
            case GuideStartCommand(attended=attended):
                new = g.start(self.guide, now)
                return self._energise("start", new, now, rid, attended)
            case GuideResumeCommand(attended=attended):
                new = g.resume(self.guide, now)
                return self._energise("resume", new, now, rid, attended)
            case GuidePauseCommand(reason=reason):
                new = g.pause(self.guide, now)
                index = self._current_index()
                return Intent(
                    "pause", index, new, self._stops(index, rid), payload={"reason": reason}
                )
            case GuideSkipCommand(reason=reason):
                index = self._current_index()
                new = g.skip(self.guide, now, operator, reason)
                stops = self._stops(index, rid)
                return Intent("skip", index, new, stops, payload={"reason": reason})
            case GuideAdjustCommand():
                c = command
                change = StepChange(c.duration_s, c.ultrasound, c.stimulation, c.amplitude_ma)
                index = self._current_index() if c.step is None else c.step - 1
                return self._adjust(index, change, c.reason, now, operator, rid, kernel_settings)
        raise AssertionError(f"not a guide command: {command!r}")

    def configure_as_adjust(
        self,
        command: ConfigureCommand,
        now: float,
        operator: str,
        rid: Callable[[], int],
    ) -> Intent | None:
        """A plain configure of an output the current step drives is an adjustment of that
        step: held to the plan's limits and recorded as a deviation. None: not the guide's."""
        index = self.guide.current
        if index is None or command.device not in step_outputs(self.steps[index]):
            return None
        settings = command.settings
        if isinstance(settings, UltrasoundSettings):
            change = StepChange(
                ultrasound=UltrasoundValues(
                    frequency_khz=settings.frequency_khz,
                    intensity_w_cm2=settings.intensity_w_cm2,
                    duty_pct=settings.duty_pct,
                )
            )
        else:
            w = settings.waveform
            change = StepChange(
                stimulation=StimulationValues(**w.model_dump()), amplitude_ma=settings.amplitude_ma
            )
        why = command.why or "settings changed outside the guide (settings form)"
        intent = self._adjust(index, change, why, now, operator, rid, None, allow_same=True)
        intent.commands = (k.Configure(rid(), command.device, settings),)  # as the operator sent
        return intent

    # ---- the tick ----

    def time_up(self, now: float, rid: Callable[[], int]) -> Intent | None:
        """The current step's time is up: the intent that stops its outputs, else None."""
        new, index = g.tick(self.guide, now)
        if index is None:
            return None
        return Intent("step_end", index, new, self._stops(index, rid))

    def stopped(self, stops: Mapping[str, str], now: float) -> Intent | None:
        """Outputs the kernel is stopping this tick (output → reason): a running step whose
        output is among them is paused (a stop, a trip, STOP ALL). Never restarts anything."""
        index = self.guide.current
        if index is None or self.guide.step(index).state != "active":
            return None
        hit = [o for o in step_outputs(self.steps[index]) if o in stops]
        if not hit:
            return None
        why = "; ".join(f"{o}: {stops[o]}" for o in hit)
        return Intent("paused_by_stop", index, g.pause(self.guide, now), payload={"reason": why})

    def readings(self, running: Mapping[str, bool], now: float) -> Intent | None:
        """An output of the running step seen turning off by itself pauses the guide, unless the
        step is within a second of its end (the unit's own timer)."""
        index = self.guide.current
        outputs = step_outputs(self.steps[index]) if index is not None else ()
        turned_off = [o for o in outputs if self._seen_running.get(o) and not running.get(o)]
        self._seen_running.update({o: running.get(o, False) for o in outputs})
        if index is None or not turned_off or self.guide.step(index).state != "active":
            return None
        if self.guide.step(index).remaining(now) <= DEVICE_TIMER_GRACE_S:
            return None
        why = f"{', '.join(turned_off)} stopped by itself"
        return Intent("paused_by_stop", index, g.pause(self.guide, now), payload={"reason": why})

    def commit(self, intent: Intent) -> list[g.Deviation]:
        """Make the intent the guide's state; the deviations it added."""
        added = list(intent.guide.deviations[len(self.guide.deviations) :])
        self.guide = intent.guide
        if intent.new_step is not None:
            self.steps[intent.step] = intent.new_step
        if intent.action in ("start", "resume", "step_end", "skip"):
            self._seen_running.clear()
        return added

    # ---- views ----

    def entry(self, intent: Intent, now: float) -> dict[str, Any]:
        """The `guide` entry of a committed intent."""
        clock = self.guide.step(intent.step)
        return {
            "action": intent.action,
            "step": intent.step + 1,
            "state": clock.state,
            "elapsed_s": round(clock.elapsed(now), 3),
            "remaining_s": round(clock.remaining(now), 3),
            **intent.payload,
        }

    def snapshot(self, now: float) -> GuideSnapshot:
        """The guide as clients see it."""
        cur, nxt = self.guide.current, self.guide.next
        steps = [
            GuideStepSnapshot(
                number=i + 1,
                kind=step.kind,
                label=label(step),
                state=clock.state,
                duration_s=clock.duration_s,
                remaining_s=round(clock.remaining(now), 1),
            )
            for i, (step, clock) in enumerate(zip(self.steps, self.guide.steps, strict=True))
        ]
        current = None if cur is None else self.guide.step(cur)
        return GuideSnapshot(
            title=self.ctx.plan.title,
            current=None if cur is None else cur + 1,
            next=None if nxt is None else nxt + 1,
            paused=current is not None and current.state == "paused",
            remaining_s=None if current is None else round(current.remaining(now), 1),
            steps=steps,
            deviations=len(self.guide.deviations),
        )

    def summary(self, now: float) -> dict[str, Any]:
        """Every step's outcome, for the entry written when the session ends."""
        return {
            "steps": [
                {"step": i + 1, "state": c.state, "given_s": round(c.elapsed(now), 3)}
                for i, c in enumerate(self.guide.steps)
            ],
            "deviations": len(self.guide.deviations),
        }

    # ---- helpers ----

    def _current_index(self) -> int:
        index = self.guide.current
        if index is None:
            raise g.GuideRefused(g.RULE_STATE, "the plan is finished: every step is done or ended")
        return index

    def _energise(
        self, action: str, new: g.Guide, now: float, rid: Callable[[], int], attended: bool
    ) -> Intent:
        """Configure every output of the current step as planned (ultrasound for the time left)
        and start it; the refusals of the plan dry-run come first."""
        index = self._current_index()
        step = self.steps[index]
        self.contraindications(index, step)
        problems = step_refusals(self.ctx, index, step)
        if problems:
            raise g.GuideRefused(RULE_PLAN_LIMIT, f"step {index + 1}: {problems[0].line()}")
        left = math.ceil(new.step(index).remaining(now))
        try:
            wanted = step_settings(step, self.ctx.presets, time_s=max(1, left))
        except StepSettingsError as exc:
            raise g.GuideRefused(RULE_SETTINGS, f"step {index + 1}: {exc}") from exc
        commands: list[k.Command] = []
        for output, settings in wanted.items():
            commands += [k.Configure(rid(), output, settings), k.Start(rid(), output)]
        marks = {o: attended for o, s in wanted.items() if isinstance(s, ChannelSetup)}
        payload: dict[str, Any] = {
            "settings": {o: s.model_dump(mode="json") for o, s in wanted.items()}
        }
        if marks:
            payload["attended"] = attended
        return Intent(action, index, new, tuple(commands), attended=marks, payload=payload)

    def _stops(self, index: int, rid: Callable[[], int]) -> tuple[k.Command, ...]:
        return tuple(k.Stop(rid(), o) for o in step_outputs(self.steps[index]))

    def _adjust(
        self,
        index: int,
        change: StepChange,
        reason: str,
        now: float,
        operator: str,
        rid: Callable[[], int],
        kernel_settings: Mapping[str, OutputSettings | None] | None,
        allow_same: bool = False,
    ) -> Intent:
        """A change to a step not yet finished, held to the plan's limits; while the step runs
        only the level (intensity, amplitude) changes, as the kernel allows. With
        `kernel_settings` None the caller sends the configure itself."""
        if change.is_empty():
            raise g.GuideRefused(RULE_SETTINGS, "nothing to change")
        if not 0 <= index < len(self.steps):
            why = f"no step {index + 1} (the plan has {len(self.steps)})"
            raise g.GuideRefused(g.RULE_STATE, why)
        clock = self.guide.step(index)
        if clock.state in g.FINISHED:
            why = f"step {index + 1} is {clock.state}: it cannot change"
            raise g.GuideRefused(g.RULE_STATE, why)
        old = self.steps[index]
        try:
            new_step = changed_step(old, change)
            before = step_settings(old, self.ctx.presets)
            after = step_settings(new_step, self.ctx.presets)
        except StepSettingsError as exc:
            raise g.GuideRefused(RULE_SETTINGS, f"step {index + 1}: {exc}") from exc
        problems = step_refusals(self.ctx, index, new_step)
        if problems:
            raise g.GuideRefused(RULE_PLAN_LIMIT, f"step {index + 1}: {problems[0].line()}")
        new = self.guide
        running = clock.state == "active"
        if change.duration_s is not None and change.duration_s != clock.duration_s:
            if (
                running
                and change.duration_s > clock.duration_s
                and any(isinstance(s, UltrasoundSettings) for s in after.values())
            ):
                raise g.GuideRefused(
                    g.RULE_STATE,
                    f"step {index + 1} runs ultrasound on the unit's timer: pause it to lengthen",
                )
            new = g.adjust_duration(new, index, change.duration_s, now, operator, reason)
        changed = {
            o: {"from": _plain(before[o]), "to": _plain(after[o])}
            for o in after
            if _plain(before[o]) != _plain(after[o])
        }
        if changed:
            new = g.record_change(new, index, now, operator, reason, {"settings": changed})
        elif new is self.guide and not allow_same:
            raise g.GuideRefused(RULE_SETTINGS, f"step {index + 1} already has these settings")
        commands: tuple[k.Command, ...] = ()
        if running and changed and kernel_settings is not None:
            commands = tuple(
                k.Configure(rid(), o, _level_only(o, kernel_settings.get(o), after[o]))
                for o in changed
            )
        payload: dict[str, Any] = {"reason": reason, "changed": changed}
        if change.duration_s is not None:
            payload["duration_s"] = change.duration_s
        return Intent("adjust", index, new, commands, new_step=new_step, payload=payload)


def _plain(settings: OutputSettings) -> dict[str, Any]:
    """Settings without the ultrasound time (the guide owns time), for comparison and record."""
    data = settings.model_dump(mode="json")
    data.pop("time_s", None)
    return data


def _level_only(output: str, sent: OutputSettings | None, wanted: OutputSettings) -> OutputSettings:
    """The output's settings as sent, with only the level of `wanted`: all a running output may
    change. Anything else differing is refused (pause the step to change it)."""
    if isinstance(sent, UltrasoundSettings) and isinstance(wanted, UltrasoundSettings):
        level = sent.model_copy(update={"intensity_w_cm2": wanted.intensity_w_cm2})
        if _plain(level) == _plain(wanted):
            return level
    if (
        isinstance(sent, ChannelSetup)
        and isinstance(wanted, ChannelSetup)
        and sent.waveform == wanted.waveform
    ):
        # The electrodes stay where the step put them: only the amplitude changes.
        return ChannelSetup.model_validate(
            {**sent.model_dump(), "amplitude_ma": wanted.amplitude_ma}
        )
    raise g.GuideRefused(
        g.RULE_STATE,
        f"{output} is running: only intensity or amplitude may change; pause the step first",
    )
