"""Builders for kernel tests: readings, limits and a small driver of ticks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.model.telemetry import OutputReading, UltrasoundReading
from sessionconsole.safety.kernel import step
from sessionconsole.safety.types import (
    Action,
    Command,
    DeviceLimits,
    Inputs,
    KernelState,
    Limit,
    Reading,
    initial_state,
)

LIMITS = DeviceLimits(
    max_intensity=Limit(2.0, "profile 'bench' max_intensity_w_cm2"),
    max_time=Limit(900, "profile 'bench' max_time_s"),
    head_temp_warning_c=40.0,
    head_temp_trip_c=41.0,
    stale_limit_s=0.22,
    heartbeat_interval_s=0.1,
)
SETTINGS = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=50, time_s=300)
STIM_LIMITS = DeviceLimits(
    stale_limit_s=0.25,
    heartbeat_interval_s=0.1,
    max_amplitude=Limit(100.0, "profile 'bench' max_amplitude_ma"),  # rms cap binds (IFC)
    max_rms=Limit(50.0, "clinical limit stimulation.max_rms_ma"),
    modality="stimulation",
    deviation_fraction=0.10,
    deviation_s=1.0,
    deviation_floor=1.0,
    ramp_rate_per_s=None,  # the ES-2 reports its ramp (state RAMP)
    electrode_area_cm2=25.0,  # the profile's usual pads (5 x 5 cm)
)
WAVEFORM = StimulationSettings(mode="SYM", freq_hz=100, pw_us=200, ramp_s=1)
SETUP = ChannelSetup(waveform=WAVEFORM, amplitude_ma=20.0)


def stim_reading(t: float, **changes: Any) -> OutputReading:
    """An idle, healthy stimulation output (an ES-2 channel) received at `t`."""
    base = OutputReading(
        received_mono_s=t,
        modality="stimulation",
        state="IDLE",
        running=False,
        output_active=False,
        fault=None,
        patient_stop_pressed=False,
        boot_count=0,
        level_setpoint=20.0,
        level_measured=0.0,
        impedance_ohm=1200.0,
    )
    return replace(base, **changes)


def reading(t: float, **changes: Any) -> UltrasoundReading:
    """An idle, healthy US-1 reading received at `t`, with fields changed as given."""
    base = UltrasoundReading(
        received_mono_s=t,
        state="IDLE",
        fault=None,
        output_active=False,
        frequency_khz=1000,
        intensity_setpoint_w_cm2=1.0,
        duty_pct=50,
        time_s=300,
        watchdog_ms=1000,
        intensity_measured_w_cm2=0.0,
        power_measured_w=0.0,
        head_temperature_c=33.0,
        coupling_pct=90,
        remaining_s=300,
        era_cm2=5.0,
        bnr=4.2,
        emission_s=0,
        energy_j=0,
        boot_count=1,
        patient_stop_pressed=False,
        head_coupled=True,
        head_connected=True,
    )
    return replace(base, **changes)


def running(t: float, **changes: Any) -> UltrasoundReading:
    """A reading of a running output."""
    on: dict[str, Any] = {
        "state": "RUNNING",
        "output_active": True,
        "intensity_measured_w_cm2": 1.0,
    }
    return reading(t, **(on | changes))


class Harness:
    """Steps a kernel with one or more devices; keeps every action for assertions."""

    def __init__(
        self,
        devices: tuple[str, ...] = ("us1",),
        limits: dict[str, DeviceLimits] | None = None,
    ) -> None:
        chosen = {d: LIMITS for d in devices} | (limits or {})
        self.state: KernelState = initial_state(chosen)
        self.now = 0.0
        self.rid = 0
        self.last_actions: list[Action] = []

    def tick(
        self,
        readings: dict[str, Reading | None],
        *commands: Command,
        dt: float = 0.01,
        lateness_s: float | None = None,
        techniques: tuple[tuple[str, str], ...] = (),
    ) -> list[Action]:
        """Advance time by dt and run one step."""
        self.now = round(self.now + dt, 6)
        inputs = Inputs(readings, tuple(commands), lateness_s=lateness_s, techniques=techniques)
        self.state, actions = step(self.state, inputs, self.now)
        self.last_actions = actions
        return actions

    def next_id(self) -> int:
        """A fresh request id."""
        self.rid += 1
        return self.rid
