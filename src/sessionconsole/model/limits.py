"""Clinical limits: hard caps that no profile or plan may exceed, each with its source."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class UltrasoundClinicalLimits(BaseModel):
    """Ultrasound caps from CLINICAL-REFERENCE (sources live beside each value in the TOML)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_intensity_w_cm2: float = Field(gt=0.0, le=3.0)
    head_temp_warning_c: float = Field(gt=30.0, le=41.0)
    head_temp_trip_c: float = Field(gt=30.0, le=41.0)
    max_time_s: int = Field(ge=1, le=1800)
    contact_suspended_alarm_s: float = Field(
        default=30.0, gt=0.0, le=600.0, description="CONTACT_SUSPENDED after this long"
    )


class StimulationClinicalLimits(BaseModel):
    """Stimulation caps from CLINICAL-REFERENCE (IEC 60601-2-10 as quoted by makers)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_rms_ma: float = Field(gt=0.0, le=50.0, description="output current into 500 ohm")


class ClinicalLimits(BaseModel):
    """All clinical caps in force at this installation."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    ultrasound: UltrasoundClinicalLimits
    stimulation: StimulationClinicalLimits = StimulationClinicalLimits(max_rms_ma=50.0)
    sources: dict[str, str] = Field(default_factory=dict, description="limit name -> source")


def load_clinical_limits(path: Path) -> ClinicalLimits:
    """Read clinical limits from a TOML file (raises pydantic.ValidationError when invalid)."""
    with path.open("rb") as fh:
        return ClinicalLimits.model_validate(tomllib.load(fh))
