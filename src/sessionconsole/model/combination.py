"""The CX-3 combination unit (ultrasound + stimulation): its profile, MQTT link and readings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sessionconsole.model.stimulation import RUNNING_STIM_STATES
from sessionconsole.model.telemetry import ULTRASOUND_RUNNING_STATES
from sessionconsole.model.timing import check_heartbeat_inside_watchdog, stale_limit_s

# Topic levels: no MQTT wildcards, no empty level, no leading or trailing slash.
_TOPIC_LEVELS = re.compile(r"[^/+#\s]+(/[^/+#\s]+)*")
_SERIAL = re.compile(r"[A-Za-z0-9_.-]+")


class MqttLink(BaseModel):
    """An MQTT broker, the unit's topic root prefix and the timing the stale limit follows."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["mqtt"]
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    root: str = Field(default="cx3", description="topic root prefix: <root>/<serial>/...")
    username: str | None = Field(default=None, min_length=1)
    password: str | None = Field(default=None, min_length=1, repr=False)
    keepalive_s: int = Field(default=5, ge=1, le=60, description="MQTT keepalive to the broker")
    telemetry_hz: int = Field(default=10, ge=1, le=10, description="the device sends 10 per s")
    network_allowance_ms: int = Field(default=200, ge=0, le=5000)

    @field_validator("root")
    @classmethod
    def _root_is_topic_levels(cls, value: str) -> str:
        if not _TOPIC_LEVELS.fullmatch(value):
            raise ValueError(
                f"root {value!r} must be topic levels like 'cx3' or 'site/cx3' "
                "(no wildcards, spaces, empty levels or outer slashes)"
            )
        return value

    @model_validator(mode="after")
    def _password_needs_username(self) -> MqttLink:
        if self.password is not None and self.username is None:
            raise ValueError("a password is given without a username")
        return self

    @property
    def stale_limit_s(self) -> float:
        """Three missed telemetry messages plus the allowance (ms-rounded)."""
        return stale_limit_s(self.telemetry_hz, self.network_allowance_ms)


class Cx3ProfileLimits(BaseModel):
    """Per-unit caps biomedical staff set; the kernel adds the clinical ones."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_intensity_w_cm2: float = Field(gt=0.0, le=3.0)
    max_time_s: int = Field(ge=1, le=1800)
    max_amplitude_ma: float = Field(gt=0.0, le=100.0)
    ramp_ma_per_s: float = Field(default=5.0, gt=0.0, le=5.0)
    electrode_area_cm2: float | None = Field(
        default=None, gt=0.0, le=500.0, description="the clinic's usual pads, when not given"
    )


class Cx3Profile(BaseModel):
    """A CX-3 combination unit on an MQTT broker (ICD CX-3 v2)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["cx3"]
    name: str = Field(min_length=1)
    serial: str = Field(description="the unit's serial, e.g. CX3-0001: its topic level")
    era_cm2: float = Field(gt=0.0, le=20.0, description="effective radiating area on the head")
    bnr: float = Field(ge=1.0, le=8.0, description="beam non-uniformity ratio on the head")
    watchdog_ms: int = Field(default=1000, ge=200, le=5000)
    heartbeat_interval_ms: int = Field(default=100, ge=20, le=2500)
    link: MqttLink
    limits: Cx3ProfileLimits

    @field_validator("serial")
    @classmethod
    def _serial_is_one_level(cls, value: str) -> str:
        if not _SERIAL.fullmatch(value):
            raise ValueError(f"serial {value!r} must be letters, digits, '-', '_' or '.'")
        return value

    @model_validator(mode="after")
    def _heartbeat_inside_watchdog(self) -> Cx3Profile:
        check_heartbeat_inside_watchdog(self.heartbeat_interval_ms, self.watchdog_ms)
        return self


@dataclass(frozen=True, slots=True)
class Cx3UltrasoundPart:
    """The ultrasound output as last reported: setpoint and measured side by side."""

    state: str
    intensity_setpoint_w_cm2: float
    intensity_measured_w_cm2: float  # temporal peak, as on the US-1
    power_measured_w: float
    head_temperature_c: float
    coupling_pct: int
    remaining_s: int
    energy_j: int
    era_cm2: float
    bnr: float

    @property
    def running(self) -> bool:
        """RUNNING, PAUSED and SUSPENDED all count as running (armed)."""
        return self.state in ULTRASOUND_RUNNING_STATES


@dataclass(frozen=True, slots=True)
class Cx3StimulationPart:
    """The stimulation channel as last reported (mode/electrode None until configured)."""

    state: str
    mode: str | None
    electrode: str | None  # "PADS", or "US_HEAD" in combination mode
    amplitude_setpoint_ma: float
    amplitude_measured_ma: float  # peak, as on the ES-2
    impedance_ohm: float

    @property
    def running(self) -> bool:
        """RAMP, ON and OFFPHASE all count as running."""
        return self.state in RUNNING_STIM_STATES


@dataclass(frozen=True, slots=True)
class Cx3Reading:
    """One CX-3 telemetry message in the clinic's words, stamped on arrival."""

    received_mono_s: float
    seq: int
    device_t_ms: int
    ultrasound: Cx3UltrasoundPart
    stimulation: Cx3StimulationPart
    faults: tuple[str, ...]

    @property
    def running(self) -> bool:
        """Either output armed."""
        return self.ultrasound.running or self.stimulation.running
