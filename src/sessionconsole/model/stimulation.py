"""Electrical stimulation: channel settings, the ES-2 profile and its readings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sessionconsole.model.timing import check_heartbeat_inside_watchdog, stale_limit_s

StimMode = Literal["SYM", "ASYM", "RUSS", "IFC", "HVPC"]
Electrode = Literal["PADS", "US_HEAD"]  # US_HEAD: the CX-3's combination mode
ElectrodeSide = Literal["left", "right", "bilateral", "midline"]
RUNNING_STIM_STATES = frozenset({"RAMP", "ON", "OFFPHASE"})


class StimulationSettings(BaseModel):
    """One channel's waveform as the ES-2 `CFG` takes it (device ranges; limits: the kernel)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    mode: StimMode
    freq_hz: int = Field(ge=1, le=250)
    pw_us: int = Field(ge=5, le=400, description="ignored by RUSS and IFC")
    on_s: int = Field(default=0, ge=0, le=60)
    off_s: int = Field(default=0, ge=0, le=60)
    ramp_s: int = Field(default=2, ge=0, le=10)


class ChannelSetup(BaseModel):
    """What the console sets on one stimulation output: the waveform, the peak amplitude and
    where the electrodes are (the kernel judges current density and the current's path by it).

    `electrode_area_cm2` left out means the profile's electrode area; `electrode_region` is a
    body region id of config/vocabulary.toml (checked by the controller).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    waveform: StimulationSettings
    amplitude_ma: float = Field(ge=0.0, le=100.0, description="peak mA, a multiple of 0.5")
    electrode: Electrode = "PADS"
    electrode_area_cm2: float | None = Field(default=None, gt=0.0, le=500.0)
    electrode_region: str | None = Field(default=None, pattern=r"^[a-z][a-z_]*$", max_length=64)
    electrode_side: ElectrodeSide | None = None

    @model_validator(mode="after")
    def _half_milliamps(self) -> ChannelSetup:
        if round(self.amplitude_ma * 2) != self.amplitude_ma * 2:
            raise ValueError(f"amplitude {self.amplitude_ma} mA is not a multiple of 0.5 mA")
        return self


def rms_ma(waveform: StimulationSettings, amplitude_ma: float) -> float:
    """The rms current of a peak amplitude, by the console's conventions per mode.

    CLINICAL-REFERENCE "Console conventions for rms current": SYM and HVPC I*sqrt(2*pw*f),
    ASYM I*sqrt(pw*f), RUSS I/sqrt(2)*sqrt(0.5), IFC I/sqrt(2); the on phase of a cycle counts.
    """
    pw_s, f = waveform.pw_us / 1e6, float(waveform.freq_hz)
    if waveform.mode in ("SYM", "HVPC"):
        return amplitude_ma * math.sqrt(2.0 * pw_s * f)
    if waveform.mode == "ASYM":
        return amplitude_ma * math.sqrt(pw_s * f)
    if waveform.mode == "RUSS":
        return amplitude_ma / math.sqrt(2.0) * math.sqrt(0.5)
    return amplitude_ma / math.sqrt(2.0)  # IFC, per circuit


def current_density_ma_cm2(
    waveform: StimulationSettings, amplitude_ma: float, electrode_area_cm2: float
) -> float:
    """rms current over the electrode area (CLINICAL-REFERENCE console conventions).

    Example: SYM 100 Hz, 200 us, 20 mA peak is 4.0 mA rms; over 2 cm2, 2.0 mA/cm2.
    """
    if electrode_area_cm2 <= 0.0:
        raise ValueError(f"electrode_area_cm2 must be above 0, got {electrode_area_cm2!r}")
    return rms_ma(waveform, amplitude_ma) / electrode_area_cm2


def dc_density_ma_cm2(
    waveform: StimulationSettings, amplitude_ma: float, electrode_area_cm2: float
) -> float | None:
    """Average (DC) current density of a monophasic HVPC waveform: I x 2 x pw x f / area.

    None for the other modes, which the reference units deliver charge-balanced.
    """
    if waveform.mode != "HVPC":
        return None
    if electrode_area_cm2 <= 0.0:
        raise ValueError(f"electrode_area_cm2 must be above 0, got {electrode_area_cm2!r}")
    average = amplitude_ma * 2.0 * waveform.pw_us / 1e6 * waveform.freq_hz
    return average / electrode_area_cm2


class SerialLink(BaseModel):
    """A serial port (path or pyserial URL such as socket://host:port) and its timing."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["serial"]
    port: str = Field(min_length=1, description="/dev/ttyUSB0, a pty path, or socket://host:port")
    baudrate: int = Field(default=115200, ge=1200, le=921600)
    telemetry_hz: int = Field(default=20, ge=1, le=50, description="STREAM rate")
    network_allowance_ms: int = Field(default=100, ge=0, le=5000)

    @property
    def stale_limit_s(self) -> float:
        """Three missed telemetry frames plus the allowance (ms-rounded)."""
        return stale_limit_s(self.telemetry_hz, self.network_allowance_ms)


class StimulationProfileLimits(BaseModel):
    """Per-unit caps biomedical staff set; the kernel adds the clinical ones."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_amplitude_ma: float = Field(gt=0.0, le=100.0)
    ramp_ma_per_s: float = Field(default=5.0, gt=0.0, le=5.0)
    electrode_area_cm2: float | None = Field(
        default=None, gt=0.0, le=500.0, description="the clinic's usual pads, when not given"
    )


class Es2Profile(BaseModel):
    """An ES-2 two-channel stimulator on a serial link (ICD ES-2 v2)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["es2"]
    name: str = Field(min_length=1)
    watchdog_ms: int = Field(default=500, ge=100, le=2000)
    heartbeat_interval_ms: int = Field(default=100, ge=20, le=1000)
    link: SerialLink
    limits: StimulationProfileLimits

    @model_validator(mode="after")
    def _heartbeat_inside_watchdog(self) -> Es2Profile:
        check_heartbeat_inside_watchdog(self.heartbeat_interval_ms, self.watchdog_ms)
        return self


@dataclass(frozen=True, slots=True)
class StimChannelReading:
    """One channel as last reported: state, target (from STAT) and measured (from TEL/STAT)."""

    channel: int
    received_mono_s: float
    state: str
    target_ma: float | None
    measured_ma: float
    impedance_ohm: float
    faults: tuple[str, ...]

    @property
    def running(self) -> bool:
        """RAMP, ON and OFFPHASE all count as running (ICD)."""
        return self.state in RUNNING_STIM_STATES
