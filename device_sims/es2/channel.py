"""One ES-2 output channel: configuration, target, ramped output, on/off cycle, latched faults.

Pure state stepped with explicit time deltas. The driven level starts at 0 on every RUN and at
every on-phase and rises to the target over `ramp_s`; an AMP while running slews at the slower
of 5 mA/s and (change / `ramp_s`). The on-phase of an on/off cycle lasts `on_s` including its
ramp; the off-phase (OFFPHASE) drives nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntFlag, StrEnum

AMP_SLEW_MA_PER_S = 5.0
EPSILON_MA = 1e-9


class ChannelState(StrEnum):
    """`state` field of STAT and TEL."""

    IDLE = "IDLE"
    RAMP = "RAMP"
    ON = "ON"
    OFFPHASE = "OFFPHASE"
    FAULT = "FAULT"


class Fault(IntFlag):
    """Latched fault bits (`faults` field, 2-digit upper-case hex)."""

    WATCHDOG = 0x01
    PATIENT_STOP = 0x02
    ELECTRODE = 0x04
    OVERCURRENT = 0x08
    INTERNAL = 0x10


@dataclass(frozen=True)
class Config:
    """A channel configuration as accepted by CFG (already range-checked)."""

    mode: str
    freq_hz: float
    pw_us: float
    on_s: float
    off_s: float
    ramp_s: float

    @property
    def cycling(self) -> bool:
        """Whether output alternates on/off (any off time); 0/0 and x/0 are continuous."""
        return self.off_s > 0.0


@dataclass
class Channel:
    """Firmware state of one channel; `stuck_ma` is a stuck relay's output after STOP."""

    number: int
    config: Config | None = None
    target_ma: float = 0.0
    output_ma: float = 0.0
    rate_ma_per_s: float = math.inf
    running: bool = False
    on_phase: bool = True
    phase_s: float = 0.0
    faults: int = 0
    stuck_ma: float = 0.0

    @property
    def state(self) -> ChannelState:
        """Reported state: running phases, else FAULT while any fault is latched, else IDLE."""
        if self.running:
            if not self.on_phase:
                return ChannelState.OFFPHASE
            if abs(self.output_ma - self.target_ma) > EPSILON_MA:
                return ChannelState.RAMP
            return ChannelState.ON
        return ChannelState.FAULT if self.faults else ChannelState.IDLE

    @property
    def driven_ma(self) -> float:
        """Level the output stage drives right now (a stuck relay keeps driving)."""
        return self.output_ma if self.running else self.stuck_ma

    def start(self) -> None:
        """RUN: start at 0 and ramp to the target (a zero-length on-phase goes straight off)."""
        self.running = True
        self.phase_s = 0.0
        self._begin_on_phase()
        self.step(0.0)

    def _begin_on_phase(self) -> None:
        """Output from 0 to the target over ramp_s (at once when ramp_s is 0)."""
        assert self.config is not None
        self.on_phase = True
        self.output_ma = 0.0
        ramp_s = self.config.ramp_s
        self.rate_ma_per_s = self.target_ma / ramp_s if ramp_s > 0.0 else math.inf
        if math.isinf(self.rate_ma_per_s):
            self.output_ma = self.target_ma

    def set_target(self, ma: float) -> None:
        """AMP: new target; while running, slew at min(5 mA/s, change / ramp_s), never jump."""
        self.target_ma = ma
        if not self.running or self.config is None:
            return
        change = abs(ma - self.output_ma)
        ramp_s = self.config.ramp_s
        by_ramp = change / ramp_s if ramp_s > 0.0 else math.inf
        if change > EPSILON_MA:
            self.rate_ma_per_s = min(AMP_SLEW_MA_PER_S, by_ramp)

    def stop(self, relay_stuck: bool = False) -> None:
        """Output off at once (unless the relay is stuck); configuration and target stay."""
        if relay_stuck:
            self.stuck_ma = max(self.stuck_ma, self.driven_ma)
        else:
            self.stuck_ma = 0.0
        self.running = False
        self.output_ma = 0.0
        self.on_phase = True
        self.phase_s = 0.0

    def latch(self, fault: Fault) -> None:
        """A device-side stop: output off (the relay opens too) and `fault` latched."""
        self.stop()
        self.faults |= int(fault)

    def step(self, dt: float) -> None:
        """Advance the on/off cycle and the slew by `dt` seconds."""
        if not self.running or self.config is None:
            return
        if self.config.cycling:
            self.phase_s += dt
            self._advance_cycle(self.config)
        if self.on_phase:
            gap = self.target_ma - self.output_ma
            if math.isinf(self.rate_ma_per_s) or abs(gap) <= self.rate_ma_per_s * dt:
                self.output_ma = self.target_ma
            else:
                self.output_ma += math.copysign(self.rate_ma_per_s * dt, gap)

    def _advance_cycle(self, config: Config) -> None:
        """Switch between on- and off-phases as their durations run out."""
        while True:
            if self.on_phase and self.phase_s >= config.on_s:
                self.phase_s -= config.on_s
                self.on_phase = False
                self.output_ma = 0.0
            elif not self.on_phase and self.phase_s >= config.off_s:
                self.phase_s -= config.off_s
                self._begin_on_phase()
            else:
                return
