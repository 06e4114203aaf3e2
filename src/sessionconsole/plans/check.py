"""Plan dry-run: every step against the room's units, the clinical caps, the patient's limits and
the contraindication rules, with every problem listed at once (as bluesky's `check_limits`).

Pure: loaded models in, a list of `Problem` out; nothing is sent to a device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from sessionconsole.model.contraindication import Contraindications
from sessionconsole.model.limits import ClinicalLimits
from sessionconsole.model.plan import (
    CombinedStep,
    ManualStep,
    PatientFile,
    PatientLimits,
    PlanStep,
    StimulationPart,
    StimulationStep,
    TreatmentPlan,
    UltrasoundPart,
    UltrasoundStep,
)
from sessionconsole.model.preset import Preset, StimulationPreset, UltrasoundPreset
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings, rms_ma
from sessionconsole.model.validation import AnyProfile
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.plans import dose
from sessionconsole.plans.outputs import PlannedOutput, room_outputs
from sessionconsole.plans.presets import resolve_stimulation, resolve_ultrasound
from sessionconsole.plans.screening import screen

Severity = Literal["refuse", "confirm", "warn"]
DOSE_TOLERANCE = 0.10  # planned vs target dose; console choice, unsourced


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing to fix (refuse), to confirm, or to look at (warn) before the plan runs."""

    step: int | None  # 1-based; None for the plan as a whole
    field: str
    severity: Severity
    message: str
    source: str = ""

    def line(self) -> str:
        """One printable line: where, what, why and where the limit comes from."""
        where = "plan" if self.step is None else f"step {self.step}"
        tail = f" [{self.source}]" if self.source else ""
        return f"{where}: {self.severity}: {self.field}: {self.message}{tail}"


class _Collect:
    """Problems of one step, each stamped with the step number and a field prefix."""

    def __init__(self, out: list[Problem], step: int | None, prefix: str = "") -> None:
        self.out, self.step, self.prefix = out, step, prefix

    def at(self, prefix: str) -> _Collect:
        return _Collect(self.out, self.step, f"{self.prefix}{prefix}.")

    def add(self, field: str, severity: Severity, message: str, source: str = "") -> None:
        self.out.append(Problem(self.step, f"{self.prefix}{field}", severity, message, source))


@dataclass(frozen=True, slots=True)
class _Context:
    outputs: dict[str, PlannedOutput]
    clinical: ClinicalLimits
    presets: Mapping[str, Preset]
    limits: tuple[tuple[str, PatientLimits], ...]  # (where from, limits), all in force


def check_plan(
    plan: TreatmentPlan,
    profiles: Mapping[str, AnyProfile],
    clinical_limits: ClinicalLimits,
    patient: PatientFile | None,
    contraindications: Contraindications,
    *,
    presets: Mapping[str, Preset],
    vocabulary: Vocabulary | None = None,
) -> list[Problem]:
    """Every problem of the plan in this room for this patient; an empty list when it may run."""
    problems: list[Problem] = []
    top = _Collect(problems, None)
    _check_patient(top, plan, patient, contraindications, vocabulary)
    base: tuple[tuple[str, PatientLimits], ...] = (("plan limits", plan.limits),)
    if patient is not None:
        base += (("patient limits", patient.limits),)
    conditions = patient.conditions if patient is not None else []
    for n, step in enumerate(plan.steps, start=1):
        out = _Collect(problems, n)
        ctx = _Context(
            room_outputs(profiles), clinical_limits, presets, (*base, ("step limits", step.limits))
        )
        _check_vocabulary(out, step, vocabulary)
        _check_step(out, step, ctx)
        found = screen(contraindications, conditions, step)
        for f in found.blocks + found.confirmations:
            severity: Severity = "refuse" if f.action == "block" else "confirm"
            cond = f" ({f.condition})" if f.condition else ""
            out.add("region", severity, f"{f.modality} on {f.region}{cond}: {f.reason}", f.source)
    return problems


def _check_patient(
    top: _Collect,
    plan: TreatmentPlan,
    patient: PatientFile | None,
    rules: Contraindications,
    vocabulary: Vocabulary | None,
) -> None:
    if patient is None:
        top.add(
            "patient", "warn", "no patient file: condition rules and patient limits not checked"
        )
        return
    if patient.pseudonym != plan.pseudonym:
        top.add(
            "pseudonym", "refuse", f"plan is for {plan.pseudonym}, patient is {patient.pseudonym}"
        )
    for i, cond in enumerate(patient.conditions):
        if cond.id not in rules.conditions:
            known = ", ".join(sorted(rules.conditions))
            top.add(
                f"patient.conditions.{i}.id",
                "refuse",
                f"{cond.id!r} is not a known condition ({known})",
            )
        if vocabulary is not None:
            for region in sorted(set(cond.regions) - vocabulary.region_ids()):
                top.add(
                    f"patient.conditions.{i}.regions", "refuse", f"{region!r} is not a region id"
                )


def _check_vocabulary(out: _Collect, step: PlanStep, vocabulary: Vocabulary | None) -> None:
    if vocabulary is None:
        return
    if step.region not in vocabulary.region_ids():
        out.add("region", "refuse", f"{step.region!r} is not a region id of the vocabulary")
    if isinstance(step, ManualStep) and step.technique not in vocabulary.technique_ids():
        out.add(
            "technique", "refuse", f"{step.technique!r} is not a technique id of the vocabulary"
        )


def _check_step(out: _Collect, step: PlanStep, ctx: _Context) -> None:
    if isinstance(step, ManualStep):
        return
    if isinstance(step, UltrasoundStep):
        _check_ultrasound(out.at("ultrasound"), step.ultrasound, step.duration_s, ctx)
        return
    if isinstance(step, StimulationStep):
        _check_stimulation(out.at("stimulation"), step.stimulation, None, ctx)
        return
    assert isinstance(step, CombinedStep)
    us_output = _check_ultrasound(out.at("ultrasound"), step.ultrasound, step.duration_s, ctx)
    head = None
    if step.electrode == "US_HEAD":
        stim_output = ctx.outputs.get(step.stimulation.output)
        if us_output is None or stim_output is None:
            pass  # the unknown output is already reported
        elif not (us_output.combination and us_output.unit == stim_output.unit):
            out.add(
                "electrode",
                "refuse",
                f"US_HEAD needs both outputs on one combination unit, not "
                f"{step.ultrasound.output} and {step.stimulation.output}",
                "ICD CX-3: combination mode",
            )
        else:
            head = us_output.era_cm2
    _check_stimulation(out.at("stimulation"), step.stimulation, head, ctx)


def _output(out: _Collect, name: str, modality: str, ctx: _Context) -> PlannedOutput | None:
    found = ctx.outputs.get(name)
    if found is None:
        out.add(
            "output",
            "refuse",
            f"{name!r} is not an output of this room ({', '.join(sorted(ctx.outputs))})",
        )
        return None
    if found.modality != modality:
        out.add("output", "refuse", f"{name!r} is a {found.modality} output, not {modality}")
        return None
    return found


def _values(out: _Collect, preset_id: str | None, modality: str, ctx: _Context) -> dict[str, Any]:
    """The preset's resolved values (empty when there is no preset or it cannot be used)."""
    if preset_id is None:
        return {}
    preset = ctx.presets.get(preset_id)
    if preset is None:
        out.add("preset", "refuse", f"{preset_id!r} is not in the preset library")
        return {}
    if preset.modality != modality:
        out.add("preset", "refuse", f"{preset_id!r} is a {preset.modality} preset, not {modality}")
        return {}
    if isinstance(preset, UltrasoundPreset):
        resolved = resolve_ultrasound(preset)
        values: dict[str, Any] = {
            k: int(v) if k != "intensity_w_cm2" else v for k, v in resolved.values.items()
        }
    else:
        assert isinstance(preset, StimulationPreset)
        resolved = resolve_stimulation(preset)
        values = {k: int(v) for k, v in resolved.values.items()}
        if preset.mode is not None and not resolved.problems:
            values["mode"] = preset.mode
    for problem in resolved.problems:
        out.add("preset", "refuse", f"{preset_id}: {problem}", preset.source)
    return values


def _settings(out: _Collect, model: type[Any], merged: dict[str, Any]) -> Any:
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            if err["type"] == "missing":
                out.add(
                    f"settings.{where}", "refuse", "no value: give it in settings or use a preset"
                )
            else:
                out.add(
                    f"settings.{where}",
                    "refuse",
                    f"{err.get('input')!r}: {err['msg']}",
                    "device range (ICD)",
                )
        return None


def _check_ultrasound(
    out: _Collect, part: UltrasoundPart, duration_s: int, ctx: _Context
) -> PlannedOutput | None:
    output = _output(out, part.output, "ultrasound", ctx)
    merged = _values(out, part.preset, "ultrasound", ctx)
    merged.update(part.settings.model_dump(exclude_none=True))
    merged["time_s"] = duration_s
    settings = _settings(out, UltrasoundSettings, merged)
    if settings is None:
        return output
    assert isinstance(settings, UltrasoundSettings)
    intensity, time_s = settings.intensity_w_cm2, settings.time_s
    us = ctx.clinical.ultrasound
    caps: list[tuple[str, float | None, float | None, str]] = [
        ("clinical", us.max_intensity_w_cm2, us.max_time_s, "config/clinical-limits.toml"),
    ]
    if output is not None:
        caps.append(
            (
                f"profile '{output.profile_name}'",
                output.max_intensity_w_cm2,
                output.max_time_s,
                "device profile",
            )
        )
    caps += [(w, lim.max_intensity_w_cm2, lim.max_time_s, w) for w, lim in ctx.limits]
    for who, max_i, max_t, source in caps:
        if max_i is not None and intensity > max_i:
            out.add(
                "settings.intensity_w_cm2",
                "refuse",
                f"{intensity:g} W/cm² is above the {who} cap {max_i:g} W/cm²",
                source,
            )
        if max_t is not None and time_s > max_t:
            out.add(
                "duration_s", "refuse", f"{time_s} s is above the {who} cap {max_t:g} s", source
            )
    _check_lesion(out, part, settings, ctx)
    if output is not None and output.era_cm2 is not None:
        _check_dose(out, part, settings, output.era_cm2)
    return output


def _check_lesion(
    out: _Collect, part: UltrasoundPart, s: UltrasoundSettings, ctx: _Context
) -> None:
    preset = ctx.presets.get(part.preset or "")
    if part.lesion_depth_cm is None or not isinstance(preset, UltrasoundPreset):
        return
    rng = preset.intensity_w_cm2
    at_lesion = dose.intensity_at_depth(s.intensity_w_cm2, part.lesion_depth_cm, s.frequency_khz)
    if rng.min - 1e-9 <= at_lesion <= rng.max + 1e-9:
        return
    suggest = dose.setpoint_for_lesion(rng.preferred, part.lesion_depth_cm, s.frequency_khz)
    out.add(
        "settings.intensity_w_cm2",
        "warn",
        f"{s.intensity_w_cm2:g} W/cm² leaves {at_lesion:.2f} W/cm² at {part.lesion_depth_cm:g} cm, "
        f"outside {preset.id}'s {rng.min:g}-{rng.max:g} W/cm² at the lesion; "
        f"{suggest:.2f} W/cm² would leave {rng.preferred:g}",
        "half-value depth, CLINICAL-REFERENCE Parameters",
    )


def _check_dose(out: _Collect, part: UltrasoundPart, s: UltrasoundSettings, era: float) -> None:
    if part.treated_area_cm2 is None:
        return
    if not dose.area_in_era_range(part.treated_area_cm2, era):
        out.add(
            "treated_area_cm2",
            "warn",
            f"{part.treated_area_cm2:g} cm² is not 2-4 x the head's ERA {era:g} cm²",
            "CLINICAL-REFERENCE: treat 2-4 x ERA",
        )
    if part.target_dose_j_cm2 is None:
        return
    planned = dose.dose_j_cm2(
        dose.energy_j(s.intensity_w_cm2, era, s.duty_pct, s.time_s), part.treated_area_cm2
    )
    target = part.target_dose_j_cm2
    if abs(planned - target) > DOSE_TOLERANCE * target:
        power = s.intensity_w_cm2 * era * s.duty_pct / 100.0
        hint = (
            f"; {target * part.treated_area_cm2 / power:.0f} s would give it" if power > 0 else ""
        )
        out.add(
            "target_dose_j_cm2",
            "warn",
            f"settings give {planned:.1f} J/cm², target {target:g} J/cm² (±10 %){hint}",
            "E = I x ERA x duty x t, CLINICAL-REFERENCE; tolerance unsourced",
        )


def _check_stimulation(
    out: _Collect, part: StimulationPart, head_era_cm2: float | None, ctx: _Context
) -> None:
    output = _output(out, part.output, "stimulation", ctx)
    merged = _values(out, part.preset, "stimulation", ctx)
    merged.update(part.settings.model_dump(exclude_none=True))
    waveform = _settings(out, StimulationSettings, merged)
    if waveform is None:
        return
    try:
        ChannelSetup(waveform=waveform, amplitude_ma=part.amplitude_ma)
    except ValidationError as exc:
        out.add("amplitude_ma", "refuse", exc.errors()[0]["msg"], "ICD: a multiple of 0.5 mA")
        return
    amp, rms = part.amplitude_ma, rms_ma(waveform, part.amplitude_ma)
    rms_source = ctx.clinical.sources.get("stimulation.max_rms_ma", "clinical-limits.toml")
    caps: list[tuple[str, float | None, float | None, str]] = [
        ("clinical", None, ctx.clinical.stimulation.max_rms_ma, rms_source)
    ]
    if output is not None:
        caps.append(
            (f"profile '{output.profile_name}'", output.max_amplitude_ma, None, "device profile")
        )
    caps += [(w, lim.max_amplitude_ma, lim.max_rms_ma, w) for w, lim in ctx.limits]
    for who, max_peak, max_rms, source in caps:
        if max_peak is not None and amp > max_peak:
            out.add(
                "amplitude_ma",
                "refuse",
                f"{amp:g} mA peak is above the {who} cap {max_peak:g} mA",
                source,
            )
        if max_rms is not None and rms > max_rms:
            out.add(
                "amplitude_ma",
                "refuse",
                f"{amp:g} mA peak is {rms:.1f} mA rms, above the {who} cap {max_rms:g} mA rms",
                source,
            )
    _check_density(out, part, waveform, head_era_cm2, ctx)


def _check_density(
    out: _Collect, part: StimulationPart, w: StimulationSettings, head: float | None, ctx: _Context
) -> None:
    area = head if head is not None else part.electrode_area_cm2
    if area is None:
        out.add("electrode_area_cm2", "warn", "not given: current density not checked")
        return
    what = "the head's ERA" if head is not None else "electrode"
    density = dose.current_density_ma_cm2(w, part.amplitude_ma, area)
    if density > dose.CURRENT_DENSITY_ATTENTION_MA_CM2:
        out.add(
            "amplitude_ma",
            "warn",
            f"{density:.2f} mA rms/cm² over {area:g} cm² ({what}) is above "
            f"{dose.CURRENT_DENSITY_ATTENTION_MA_CM2:g}: needs attention",
            "AS 60601.2.10:2018; Enraf-Nonius manual",
        )
    for who, lim in ctx.limits:
        cap = lim.max_current_density_ma_cm2
        if cap is not None and density > cap:
            out.add(
                "amplitude_ma",
                "refuse",
                f"{density:.2f} mA rms/cm² is above the {who} cap {cap:g}",
                who,
            )
    dc = dose.dc_density_ma_cm2(w, part.amplitude_ma, area)
    if dc is not None and dc > dose.DC_DENSITY_ADVICE_MA_CM2:
        out.add(
            "amplitude_ma",
            "warn",
            f"monophasic: {dc:.3f} mA/cm² DC over {area:g} cm² is above the advised "
            f"{dose.DC_DENSITY_ADVICE_MA_CM2:g} mA/cm²",
            "Enraf-Nonius manual",
        )


def plan_notes(plan: TreatmentPlan, presets: Mapping[str, Preset]) -> list[str]:
    """How presets resolved where a range fell between the unit's steps (notes, not problems)."""
    notes = []
    for n, step in enumerate(plan.steps, start=1):
        parts: list[UltrasoundPart | StimulationPart] = []
        if isinstance(step, UltrasoundStep | CombinedStep):
            parts.append(step.ultrasound)
        if isinstance(step, StimulationStep | CombinedStep):
            parts.append(step.stimulation)
        for part in parts:
            preset = presets.get(part.preset or "")
            if isinstance(preset, UltrasoundPreset):
                notes += [
                    f"step {n}: note: {preset.id}: {r}" for r in resolve_ultrasound(preset).notes
                ]
            elif isinstance(preset, StimulationPreset):
                notes += [
                    f"step {n}: note: {preset.id}: {r}" for r in resolve_stimulation(preset).notes
                ]
    return notes
