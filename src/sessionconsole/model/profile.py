"""Device profiles: how to reach a unit, what it is, and the limits biomedical staff set for it."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModbusTcpLink(BaseModel):
    """A Modbus TCP connection and its timing, from which the stale-telemetry limit follows."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    device_id: int = Field(default=1, ge=1, le=247)
    request_timeout_ms: int = Field(default=250, ge=10, le=5000)
    telemetry_hz: float = Field(default=25.0, ge=1.0, le=100.0)
    network_allowance_ms: int = Field(default=100, ge=0, le=5000)

    @property
    def stale_limit_s(self) -> float:
        """Telemetry older than this while an output runs counts as comms loss.

        Three missed polls plus the network allowance, so a slow RS-485 line and a loopback
        simulator are each judged by their own link.
        """
        return math.ceil(3000.0 / self.telemetry_hz + self.network_allowance_ms) / 1000.0


class UltrasoundProfileLimits(BaseModel):
    """Limits biomedical staff set for one ultrasound unit; they may only tighten clinical caps."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_intensity_w_cm2: float = Field(gt=0.0, le=3.0)
    max_time_s: int = Field(ge=1, le=1800)


class Us1Profile(BaseModel):
    """A US-1 therapeutic ultrasound unit on Modbus (ICD US-1, version 2)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["us1"]
    name: str = Field(min_length=1)
    era_cm2: float = Field(gt=0.0, le=20.0, description="effective radiating area on the head")
    bnr: float = Field(ge=1.0, le=8.0, description="beam non-uniformity ratio on the head")
    watchdog_ms: int = Field(default=1000, ge=100, le=5000)
    heartbeat_interval_ms: int = Field(default=100, ge=20, le=2500)
    link: ModbusTcpLink
    limits: UltrasoundProfileLimits

    @model_validator(mode="after")
    def _heartbeat_inside_watchdog(self) -> Us1Profile:
        if self.heartbeat_interval_ms * 2 > self.watchdog_ms:
            raise ValueError(
                f"heartbeat_interval_ms {self.heartbeat_interval_ms} must be at most half of "
                f"watchdog_ms {self.watchdog_ms}, or one late heartbeat trips the unit"
            )
        return self


DeviceProfile = Us1Profile
