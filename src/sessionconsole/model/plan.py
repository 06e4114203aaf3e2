"""Treatment plans: ordered steps for one patient pseudonym, read from TOML in a plans folder.

A step names its body region and side, its settings (a preset, explicit values, or a preset
with some values overridden), how long it lasts and optional patient-specific limits. Whether
the settings are safe and deliverable is `plans/check.py`'s job, not this model's.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sessionconsole.model.session import PSEUDONYM_RE
from sessionconsole.model.settings import UltrasoundDutyPct, UltrasoundFrequencyKhz
from sessionconsole.model.stimulation import StimMode

Side = Literal["left", "right", "bilateral", "midline"]  # as the API's technique messages
Electrode = Literal["PADS", "US_HEAD"]  # CX-3 ICD: US_HEAD = the head is the active electrode
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
_ID = r"^[a-z][a-z0-9_]*$"


def _pseudonym(value: str) -> str:
    if not PSEUDONYM_RE.match(value):
        raise ValueError(f"pseudonym {value!r} must be a code such as PT-0042, never a name")
    return value


class PatientLimits(BaseModel):
    """Caps a therapist sets for this patient; they may only tighten device and clinical caps."""

    model_config = _STRICT

    max_intensity_w_cm2: float | None = Field(default=None, gt=0.0, le=3.0)
    max_time_s: int | None = Field(default=None, ge=1, le=1800)
    max_amplitude_ma: float | None = Field(default=None, gt=0.0, le=100.0)
    max_rms_ma: float | None = Field(default=None, gt=0.0, le=50.0)
    max_current_density_ma_cm2: float | None = Field(default=None, gt=0.0)


class UltrasoundValues(BaseModel):
    """Ultrasound settings a plan gives; any left out come from the step's preset."""

    model_config = _STRICT

    frequency_khz: UltrasoundFrequencyKhz | None = None
    intensity_w_cm2: float | None = Field(default=None, ge=0.0, le=3.0)
    duty_pct: UltrasoundDutyPct | None = None


class StimulationValues(BaseModel):
    """Stimulation waveform values a plan gives; any left out come from the step's preset."""

    model_config = _STRICT

    mode: StimMode | None = None
    freq_hz: int | None = Field(default=None, ge=1, le=250)
    pw_us: int | None = Field(default=None, ge=5, le=400)
    on_s: int | None = Field(default=None, ge=0, le=60)
    off_s: int | None = Field(default=None, ge=0, le=60)
    ramp_s: int | None = Field(default=None, ge=0, le=10)


class UltrasoundPart(BaseModel):
    """An ultrasound output's part of a step: which output, preset and/or values, dose."""

    model_config = _STRICT

    output: str = Field(min_length=1, description="kernel output: us1, cx3.us, ...")
    preset: str | None = Field(default=None, pattern=_ID)
    settings: UltrasoundValues = Field(default_factory=UltrasoundValues)
    treated_area_cm2: float | None = Field(default=None, gt=0.0, le=500.0)
    target_dose_j_cm2: float | None = Field(default=None, gt=0.0)
    lesion_depth_cm: float | None = Field(default=None, ge=0.0, le=10.0)


class StimulationPart(BaseModel):
    """A stimulation output's part of a step: output, preset and/or values, planned amplitude."""

    model_config = _STRICT

    output: str = Field(min_length=1, description="kernel output: es2.ch1, cx3.stim, ...")
    preset: str | None = Field(default=None, pattern=_ID)
    settings: StimulationValues = Field(default_factory=StimulationValues)
    amplitude_ma: float = Field(ge=0.0, le=100.0, description="planned peak amplitude")
    electrode_area_cm2: float | None = Field(default=None, gt=0.0, le=500.0)


class _StepBase(BaseModel):
    model_config = _STRICT

    region: str = Field(pattern=_ID, description="a region id of config/vocabulary.toml")
    side: Side
    duration_s: int = Field(ge=1, le=3600)
    limits: PatientLimits = Field(default_factory=PatientLimits)
    notes: str = Field(default="", max_length=2000)


class ManualStep(_StepBase):
    """A manual technique (massage, trigger point, ...): no device, a timed hands-on step."""

    kind: Literal["manual"]
    technique: str = Field(pattern=_ID, description="a technique id of config/vocabulary.toml")


class UltrasoundStep(_StepBase):
    """Ultrasound alone; the step's duration is the unit's treatment time."""

    kind: Literal["ultrasound"]
    ultrasound: UltrasoundPart


class StimulationStep(_StepBase):
    """Electrical stimulation alone."""

    kind: Literal["stimulation"]
    stimulation: StimulationPart


class CombinedStep(_StepBase):
    """Ultrasound and stimulation at once (combination therapy), pads or the head as electrode."""

    kind: Literal["combined"]
    electrode: Electrode
    ultrasound: UltrasoundPart
    stimulation: StimulationPart


PlanStep = Annotated[
    ManualStep | UltrasoundStep | StimulationStep | CombinedStep, Field(discriminator="kind")
]


class TreatmentPlan(BaseModel):
    """A patient's plan: who it is for, and its steps in the order they are done."""

    model_config = _STRICT

    pseudonym: str
    title: str = Field(min_length=1, max_length=200)
    author: str = Field(min_length=1, max_length=80)
    limits: PatientLimits = Field(default_factory=PatientLimits)
    steps: list[PlanStep] = Field(min_length=1)

    _check_pseudonym = field_validator("pseudonym")(_pseudonym)


class PatientCondition(BaseModel):
    """A condition from config/contraindications.toml, where it is (none given: anywhere)."""

    model_config = _STRICT

    id: str = Field(pattern=_ID)
    regions: list[str] = Field(default_factory=list, description="empty: site unknown or general")
    note: str = Field(default="", max_length=500)


class PatientFile(BaseModel):
    """What the dry-run needs to know of a patient: conditions and the patient's own limits."""

    model_config = _STRICT

    pseudonym: str
    conditions: list[PatientCondition] = Field(default_factory=list)
    limits: PatientLimits = Field(default_factory=PatientLimits)

    _check_pseudonym = field_validator("pseudonym")(_pseudonym)

    @model_validator(mode="after")
    def _conditions_once(self) -> PatientFile:
        ids = [c.id for c in self.conditions]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"condition listed twice: {', '.join(twice)} (give all regions once)")
        return self


def plan_path(plans_dir: Path, pseudonym: str, plan_id: str) -> Path:
    """Where a patient's plan lives: <plans>/<pseudonym>/<plan id>.toml."""
    _pseudonym(pseudonym)
    if not PSEUDONYM_RE.match(plan_id):
        raise ValueError(f"plan id {plan_id!r} must be 3-32 letters, digits, '-' or '_'")
    return plans_dir / pseudonym / f"{plan_id}.toml"


def plans_of(plans_dir: Path, pseudonym: str) -> list[Path]:
    """A patient's plan files, sorted by name (none: an empty list)."""
    folder = plans_dir / _pseudonym(pseudonym)
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def load_plan(path: Path, pseudonym: str | None = None) -> TreatmentPlan:
    """Read one plan; given a pseudonym (the folder it was found in), the plan must be theirs."""
    with path.open("rb") as fh:
        plan = TreatmentPlan.model_validate(tomllib.load(fh))
    if pseudonym is not None and plan.pseudonym != pseudonym:
        raise ValueError(f"{path}: plan is for {plan.pseudonym}, not {pseudonym}")
    return plan


def load_patient(path: Path) -> PatientFile:
    """Read a patient file (conditions and limits)."""
    with path.open("rb") as fh:
        return PatientFile.model_validate(tomllib.load(fh))
