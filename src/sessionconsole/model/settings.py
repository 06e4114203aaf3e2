"""Therapy settings the therapist asks for, validated strictly before anything reaches a device."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

UltrasoundFrequencyKhz = Literal[1000, 3000]
UltrasoundDutyPct = Literal[10, 20, 50, 100]


class UltrasoundSettings(BaseModel):
    """One ultrasound treatment: the values a US-1 (or CX-3 ultrasound output) is configured with.

    Ranges here are the device's own (ICD); clinical and profile limits are applied by the
    safety kernel, which names the limit it refuses on.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    frequency_khz: UltrasoundFrequencyKhz = Field(description="1000 for deep, 3000 for superficial")
    intensity_w_cm2: float = Field(ge=0.0, le=3.0, description="effective intensity setpoint")
    duty_pct: UltrasoundDutyPct = Field(description="pulsed duty cycle, 100 = continuous")
    time_s: int = Field(ge=1, le=1800, description="treatment time")
    treated_area_cm2: float | None = Field(
        default=None, gt=0.0, le=1000.0, description="the area treated: dose = energy / area"
    )
    max_dose_j_cm2: float | None = Field(
        default=None, gt=0.0, le=1000.0, description="the plan's dose: the output stops at it"
    )

    @model_validator(mode="after")
    def _dose_needs_area(self) -> UltrasoundSettings:
        if self.max_dose_j_cm2 is not None and self.treated_area_cm2 is None:
            raise ValueError("max_dose_j_cm2 needs treated_area_cm2 (dose = energy / area)")
        return self

    def settings_energy_j(self, era_cm2: float, intensity_w_cm2: float | None = None) -> float:
        """The energy these settings deliver over their time: I x ERA x duty x t (REF); at
        another intensity when one is given."""
        level = self.intensity_w_cm2 if intensity_w_cm2 is None else intensity_w_cm2
        return level * era_cm2 * self.duty_pct / 100.0 * self.time_s

    def dose_limit_j(self) -> float | None:
        """The plan's dose over the treated area, in J, when both are given."""
        if self.max_dose_j_cm2 is None or self.treated_area_cm2 is None:
            return None
        return self.max_dose_j_cm2 * self.treated_area_cm2
