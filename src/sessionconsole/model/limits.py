"""Clinical limits: hard caps that no profile or plan may exceed, each with its source."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    max_ramp_w_cm2_per_s: float = Field(
        default=0.5, gt=0.0, le=0.5, description="intensity increases shaped to this rate"
    )
    energy_allowance_pct: float = Field(
        default=10.0, ge=0.0, le=10.0, description="over the settings' energy: DOSE_LIMIT"
    )
    energy_mismatch_pct: float = Field(
        default=10.0, gt=0.0, le=10.0, description="console vs device energy: ENERGY_MISMATCH"
    )


class StimulationClinicalLimits(BaseModel):
    """Stimulation caps from CLINICAL-REFERENCE (IEC 60601-2-10 as quoted by makers)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_rms_ma: float = Field(gt=0.0, le=50.0, description="output current into 500 ohm")
    current_density_warning_ma_cm2: float = Field(
        default=2.0, gt=0.0, le=2.0, description="rms density needing attention: a warning"
    )
    max_current_density_ma_cm2: float = Field(
        default=3.0, gt=0.0, le=3.0, description="rms density refused before sending"
    )
    dc_density_advice_ma_cm2: float = Field(
        default=0.2, gt=0.0, le=0.2, description="DC density of monophasic waveforms: advice"
    )


ThoracicFace = Literal["front", "back"]
DEFAULT_THORACIC_REGIONS: dict[str, ThoracicFace] = {
    "anterior_thorax": "front",
    "upper_back": "back",
}


def _default_thoracic_regions() -> dict[str, ThoracicFace]:
    return dict(DEFAULT_THORACIC_REGIONS)


class ClinicalLimits(BaseModel):
    """All clinical caps in force at this installation."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    ultrasound: UltrasoundClinicalLimits
    stimulation: StimulationClinicalLimits = StimulationClinicalLimits(max_rms_ma=50.0)
    thoracic_regions: dict[str, Literal["front", "back"]] = Field(
        default_factory=_default_thoracic_regions,
        description="regions over the thorax: stimulation must not cross front-back or sides",
    )
    sources: dict[str, str] = Field(default_factory=dict, description="limit name -> source")

    @model_validator(mode="after")
    def _thoracic_regions_only_grow(self) -> ClinicalLimits:
        """Limits may only tighten: the thorax may gain regions, never lose one."""
        for region, face in DEFAULT_THORACIC_REGIONS.items():
            if self.thoracic_regions.get(region) != face:
                raise ValueError(f"thoracic_regions must keep {region} = {face!r}")
        return self


def load_clinical_limits(path: Path) -> ClinicalLimits:
    """Read clinical limits from a TOML file (raises pydantic.ValidationError when invalid)."""
    with path.open("rb") as fh:
        return ClinicalLimits.model_validate(tomllib.load(fh))
