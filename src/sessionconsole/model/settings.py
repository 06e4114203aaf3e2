"""Therapy settings the therapist asks for, validated strictly before anything reaches a device."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
