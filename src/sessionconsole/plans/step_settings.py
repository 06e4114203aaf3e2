"""A plan step's settings as the kernel takes them, and a step changed within the plan's limits.

Pure. `step_settings` resolves presets and the step's own values into one `UltrasoundSettings`
or `ChannelSetup` per output; `adjust_step` applies a therapist's change and re-runs the plan
dry-run on the changed step, so an adjustment is held to every limit the plan was checked
against (plan, step and patient limits, the profile, the clinical caps, contraindications).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sessionconsole.model.contraindication import Contraindications
from sessionconsole.model.limits import ClinicalLimits
from sessionconsole.model.plan import (
    CombinedStep,
    PlanStep,
    StimulationPart,
    StimulationStep,
    StimulationValues,
    TreatmentPlan,
    UltrasoundPart,
    UltrasoundStep,
    UltrasoundValues,
)
from sessionconsole.model.preset import Preset, StimulationPreset, UltrasoundPreset
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.model.validation import AnyProfile
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.plans.check import Problem, check_plan
from sessionconsole.plans.presets import resolve_stimulation, resolve_ultrasound

OutputSettings = UltrasoundSettings | ChannelSetup
RULE_PLAN_LIMIT = "PLAN_LIMIT"  # refused by the plan dry-run (a limit, a block)


class StepSettingsError(ValueError):
    """A step whose settings cannot be built (a preset missing, a value missing or invalid)."""


@dataclass(frozen=True, slots=True)
class StepChange:
    """What a therapist changes in a step; None leaves a value as planned."""

    duration_s: int | None = None
    ultrasound: UltrasoundValues | None = None
    stimulation: StimulationValues | None = None
    amplitude_ma: float | None = None

    def is_empty(self) -> bool:
        """Nothing to change."""
        return all(v is None for v in (self.duration_s, self.ultrasound, self.stimulation)) and (
            self.amplitude_ma is None
        )


def step_outputs(step: PlanStep) -> tuple[str, ...]:
    """The kernel outputs a step drives, ultrasound first (none for a manual step)."""
    outs: list[str] = []
    if isinstance(step, UltrasoundStep | CombinedStep):
        outs.append(step.ultrasound.output)
    if isinstance(step, StimulationStep | CombinedStep):
        outs.append(step.stimulation.output)
    return tuple(outs)


def step_settings(
    step: PlanStep, presets: Mapping[str, Preset], time_s: int | None = None
) -> dict[str, OutputSettings]:
    """Per output, the settings the step asks for; ultrasound time is `time_s` (default: the
    step's duration). Raises StepSettingsError naming the output and the value."""
    out: dict[str, OutputSettings] = {}
    if isinstance(step, UltrasoundStep | CombinedStep):
        us = step.ultrasound
        merged = _preset_values(us.preset, presets, us.output)
        merged.update(us.settings.model_dump(exclude_none=True))
        merged["time_s"] = step.duration_s if time_s is None else time_s
        if us.treated_area_cm2 is not None:  # the dose's area; the plan's dose stops the output
            merged["treated_area_cm2"] = us.treated_area_cm2
            merged["max_dose_j_cm2"] = us.target_dose_j_cm2
        out[us.output] = _build(us.output, lambda: UltrasoundSettings(**merged))
    if isinstance(step, StimulationStep | CombinedStep):
        st = step.stimulation
        wave = _preset_values(st.preset, presets, st.output)
        wave.update(st.settings.model_dump(exclude_none=True))
        out[st.output] = _build(
            st.output,
            lambda: ChannelSetup(
                waveform=StimulationSettings(**wave),
                amplitude_ma=st.amplitude_ma,
                electrode=step.electrode if isinstance(step, CombinedStep) else "PADS",
                electrode_area_cm2=st.electrode_area_cm2,
                electrode_region=step.region,
                electrode_side=step.side,
            ),
        )
    return out


def _build(output: str, make: Any) -> OutputSettings:
    try:
        built: OutputSettings = make()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        raise StepSettingsError(f"{output}: {where}: {err['msg']}") from exc
    return built


def _preset_values(
    preset_id: str | None, presets: Mapping[str, Preset], output: str
) -> dict[str, Any]:
    """The preset's values resolved to the unit's steps, as `check_plan` resolves them."""
    if preset_id is None:
        return {}
    preset = presets.get(preset_id)
    if preset is None:
        raise StepSettingsError(f"{output}: preset {preset_id!r} is not in the preset library")
    values: dict[str, Any]
    if isinstance(preset, UltrasoundPreset):
        resolved = resolve_ultrasound(preset)
        values = {k: int(v) if k != "intensity_w_cm2" else v for k, v in resolved.values.items()}
    else:
        assert isinstance(preset, StimulationPreset)
        resolved = resolve_stimulation(preset)
        values = {k: int(v) for k, v in resolved.values.items()}
        if preset.mode is not None:
            values["mode"] = preset.mode
    if resolved.problems:
        raise StepSettingsError(f"{output}: {preset_id}: {resolved.problems[0]}")
    return values


def changed_step(step: PlanStep, change: StepChange) -> PlanStep:
    """The step with the change applied; StepSettingsError when a part it names is missing."""
    update: dict[str, Any] = {}
    if change.duration_s is not None:
        update["duration_s"] = change.duration_s
    if change.ultrasound is not None:
        if not isinstance(step, UltrasoundStep | CombinedStep):
            raise StepSettingsError(f"a {step.kind} step has no ultrasound settings to change")
        update["ultrasound"] = _merge_us(step.ultrasound, change.ultrasound)
    if change.stimulation is not None or change.amplitude_ma is not None:
        if not isinstance(step, StimulationStep | CombinedStep):
            raise StepSettingsError(f"a {step.kind} step has no stimulation settings to change")
        update["stimulation"] = _merge_stim(step.stimulation, change)
    try:
        return type(step).model_validate({**step.model_dump(), **update})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise StepSettingsError(f"{where}: {err['msg']}") from exc


def _merge_us(part: UltrasoundPart, values: UltrasoundValues) -> dict[str, Any]:
    settings = {**part.settings.model_dump(), **values.model_dump(exclude_none=True)}
    return {**part.model_dump(), "settings": settings}


def _merge_stim(part: StimulationPart, change: StepChange) -> dict[str, Any]:
    settings = part.settings.model_dump()
    if change.stimulation is not None:
        settings.update(change.stimulation.model_dump(exclude_none=True))
    amp = part.amplitude_ma if change.amplitude_ma is None else change.amplitude_ma
    return {**part.model_dump(), "settings": settings, "amplitude_ma": amp}


@dataclass(frozen=True, slots=True)
class PlanContext:
    """Everything the dry-run of one step needs (as `check_plan` takes it)."""

    plan: TreatmentPlan
    profiles: Mapping[str, AnyProfile]
    clinical: ClinicalLimits
    rules: Contraindications
    presets: Mapping[str, Preset]
    vocabulary: Vocabulary | None = None


def step_refusals(ctx: PlanContext, index: int, step: PlanStep) -> list[Problem]:
    """The dry-run's refusals for `step` in place of plan step `index` (0-based)."""
    steps = list(ctx.plan.steps)
    steps[index] = step
    plan = ctx.plan.model_copy(update={"steps": steps})
    problems = check_plan(
        plan,
        ctx.profiles,
        ctx.clinical,
        None,
        ctx.rules,
        presets=ctx.presets,
        vocabulary=ctx.vocabulary,
    )
    return [p for p in problems if p.step == index + 1 and p.severity == "refuse"]
