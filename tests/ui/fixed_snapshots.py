"""Fixed snapshots of a room with all three units running, for screen tests and screenshots.

`feed(app, ...)` draws three minutes of made-up but plausible values, one every 0.5 s, at
injected times, so the plots and the frozen screens are the same on every run.
"""

from __future__ import annotations

import math

from sessionconsole.api.messages import (
    AlarmSnapshot,
    LoopStats,
    OutputSnapshot,
    Snapshot,
    StimulationSnapshot,
    UltrasoundSnapshot,
)
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.safety import rules
from sessionconsole.ui.app import SessionConsoleApp

US = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=100, time_s=300)
SETUP = ChannelSetup(
    waveform=StimulationSettings(mode="SYM", freq_hz=100, pw_us=200, on_s=5, off_s=5, ramp_s=1),
    amplitude_ma=12.0,
)
LOOP = LoopStats(
    period_ms=10.0,
    ticks=18000,
    lateness_p50_ms=0.4,
    lateness_p99_ms=1.8,
    lateness_max_ms=4.0,
    overruns=0,
)
WALL = "2026-11-12T10:15:00+00:00"


def ultrasound(device: str, model: str, t_s: float) -> UltrasoundSnapshot:
    """An ultrasound output `t_s` seconds into a 5-minute treatment at 1 W/cm²."""
    ramp = min(1.0, t_s / 3.0)
    return UltrasoundSnapshot(
        device=device,
        name=f"{model} room 2",
        model=model,
        connected=True,
        telemetry_age_ms=12.0,
        state="RUNNING",
        fault=None,
        output_active=True,
        settings=US,
        intensity_setpoint_w_cm2=1.0,
        intensity_measured_w_cm2=round(ramp * (0.97 + 0.03 * math.sin(t_s / 7)), 2),
        # the CX-3 head runs warm (its warning alarm below); the US-1 head settles at ~35 °C
        head_temperature_c=round(
            31.0 + (10.58 if device == "cx3.us" else 4.0) * (1 - math.exp(-t_s / 90)), 1
        ),
        coupling_pct=92,
        remaining_s=max(0, 300 - int(t_s)),
        energy_j=int(5.0 * t_s),
        last_error=None,
        era_cm2=5.0,  # 1 W/cm2 x 5 cm2 x 100 % = 5 J a second: 1 500 J in the 300 s
    )


def stimulation(device: str, model: str, t_s: float) -> StimulationSnapshot:
    """A stimulation channel cycling 5 s on, 5 s off at 12 mA."""
    on = (t_s % 10) < 5
    return StimulationSnapshot(
        device=device,
        name=f"{model} room 2",
        model=model,
        connected=True,
        telemetry_age_ms=48.0,
        state="ON" if on else "OFFPHASE",
        fault=None,
        output_active=True,
        settings=SETUP,
        amplitude_setpoint_ma=12.0,
        amplitude_measured_ma=11.8 if on else 0.0,
        impedance_ohm=round(980 + 60 * math.sin(t_s / 20)),
        last_error=None,
    )


def outputs(t_s: float) -> list[OutputSnapshot]:
    """The five outputs of the three units (ES-2 channel 2 idle, as a second channel often is)."""
    idle = stimulation("es2.ch2", "ES-2", t_s).model_copy(
        update={
            "state": "IDLE",
            "output_active": False,
            "settings": None,
            "amplitude_setpoint_ma": 0.0,
            "amplitude_measured_ma": 0.0,
            "impedance_ohm": None,
        }
    )
    return [
        ultrasound("us1", "US-1", t_s),
        stimulation("es2.ch1", "ES-2", t_s),
        idle,
        ultrasound("cx3.us", "CX-3", t_s),
        stimulation("cx3.stim", "CX-3", t_s),
    ]


# Alarms as the kernel raises them (rule ids, priorities and advice from the catalogue).
COUPLING_ALARM = AlarmSnapshot(  # the name is kept for the tests; it is the head warning
    id=3,
    rule_id=rules.HEAD_TEMP_WARNING.id,
    priority="medium",
    device="cx3.us",
    message="cx3.us: head temperature 40.2 °C (warning at 40.0 °C)",
    what_to_do=rules.HEAD_TEMP_WARNING.what_to_do,
    latched=False,
    cause_present=True,
    active=True,
    acknowledged=False,
    acknowledged_by=None,
    raised_wall="2026-11-12T10:14:52+00:00",
)
OLD_ALARM = AlarmSnapshot(
    id=1,
    rule_id=rules.HEAD_OVERTEMP.id,
    priority="high",
    device="us1",
    message="us1: head temperature 41.3 °C (trip at 41.0 °C)",
    what_to_do=rules.HEAD_OVERTEMP.what_to_do,
    latched=True,
    cause_present=False,
    active=False,
    acknowledged=True,
    acknowledged_by="dana",
    raised_wall="2026-11-12T10:05:10+00:00",
)


def snapshot(t_s: float, seq: int, alarms: tuple[AlarmSnapshot, ...] = ()) -> Snapshot:
    """The room at `t_s` seconds into the treatment."""
    return Snapshot(
        seq=seq,
        wall=WALL,
        session_id="S-2026-11-12-0007",
        room="Room 2",
        devices=outputs(t_s),
        alarms=list(alarms),
        techniques=[],
        loop=LOOP,
    )


class FakeClock:
    """Time the test sets by hand."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def offline_app(clock: FakeClock) -> SessionConsoleApp:
    """The TUI without a controller: it draws only what `feed` gives it."""
    return SessionConsoleApp("/nonexistent.sock", "dana", autoconnect=False, clock=clock)


def feed(
    app: SessionConsoleApp,
    clock: FakeClock,
    seconds: float = 180.0,
    alarms: tuple[AlarmSnapshot, ...] = (),
) -> Snapshot:
    """Draw `seconds` of the room, one snapshot every 0.5 s; returns the last one."""
    last = snapshot(0.0, 0, alarms)
    for i in range(int(seconds * 2) + 1):
        clock.now_s = i * 0.5
        last = snapshot(clock.now_s, i, alarms)
        app.show(last)
    return last
