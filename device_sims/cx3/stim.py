"""The CX-3's stimulation channel, following the ES-2 rules (pure, stepped with explicit dt).

States IDLE, RAMP, ON, OFFPHASE, FAULT; amplitude moves at the slower of 5 mA/s and the
`ramp_s` rate, never in one jump; ELECTRODE (above 10 000 ohm) and OVERCURRENT (measured above
the ramped target + 10 %) stop the channel and latch. The electrode physics survives a reboot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from device_sims.draws import DRAW_PERIOD_S, DrawGrid

MODES = ("SYM", "ASYM", "RUSS", "IFC", "HVPC")
ELECTRODES = ("PADS", "US_HEAD")
MAX_RATE_MA_PER_S = 5.0
ELECTRODE_LIMIT_OHM = 10_000.0
ELECTRODE_OFF_OHM = 25_000.0
OVERCURRENT_FACTOR = 1.1
IMPEDANCE_MIN, IMPEDANCE_MAX, IMPEDANCE_MEAN = 500.0, 2_000.0, 1_200.0
NOISE_FRACTION = 0.01
RUNNING = ("RAMP", "ON", "OFFPHASE")


@dataclass(frozen=True)
class StimConfig:
    """A validated `configure_stim`."""

    mode: str
    freq_hz: int
    pw_us: int
    on_s: float
    off_s: float
    ramp_s: float
    electrode: str

    @property
    def cycling(self) -> bool:
        """On/off cycling applies only when both phases are longer than 0."""
        return self.on_s > 0.0 and self.off_s > 0.0


@dataclass
class StimPhysics:
    """Electrode impedance (drifting, or pinned/off by the test port) and measured current."""

    seed: int = 1
    wander_ohm: float = IMPEDANCE_MEAN
    measured_ma: float = 0.0
    electrode_off: bool = False
    impedance_pin: float | None = None
    overcurrent_pending: bool = False
    noise: float = 0.0
    grid: DrawGrid = field(default_factory=DrawGrid)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        """Seed the generator so traces repeat."""
        self.rng = random.Random(self.seed)

    @property
    def impedance_ohm(self) -> float:
        """Impedance the channel senses now."""
        if self.electrode_off:
            return ELECTRODE_OFF_OHM
        return self.impedance_pin if self.impedance_pin is not None else self.wander_ohm

    def step(self, dt: float, driven_ma: float) -> None:
        """Drift the impedance and measure the driven current with small noise."""
        for _ in range(self.grid.due(dt)):
            self._draw(DRAW_PERIOD_S)
        self.measured_ma = max(0.0, driven_ma * (1.0 + self.noise))

    def _draw(self, period: float) -> None:
        """One grid period of impedance drift and a fresh noise value (device_sims/draws.py)."""
        gauss = self.rng.gauss(0.0, 1.0)
        self.noise = self.rng.uniform(-NOISE_FRACTION, NOISE_FRACTION)
        drift = 0.2 * (IMPEDANCE_MEAN - self.wander_ohm) * period + 40.0 * gauss * period**0.5
        self.wander_ohm = min(IMPEDANCE_MAX, max(IMPEDANCE_MIN, self.wander_ohm + drift))

    def clear(self) -> None:
        """Remove injected faults and pinned values."""
        self.electrode_off, self.impedance_pin, self.overcurrent_pending = False, None, False


class StimChannel:
    """One stimulation channel's firmware state; `physics` is the electrode and patient."""

    def __init__(self, physics: StimPhysics) -> None:
        """A freshly booted channel: IDLE, unconfigured, target 0."""
        self.physics = physics
        self.config: StimConfig | None = None
        self.state = "IDLE"
        self.target_ma = 0.0
        self.driven_ma = 0.0
        self.stuck_ma = 0.0
        self.phase_s = 0.0
        self.faults: set[str] = set()

    @property
    def running(self) -> bool:
        """RAMP, ON and OFFPHASE all count as running."""
        return self.state in RUNNING

    @property
    def output_ma(self) -> float:
        """Current the output stage drives (a stuck relay keeps driving after stop)."""
        return self.driven_ma if self.running else self.stuck_ma

    @property
    def measured_ma(self) -> float:
        """Measured current: the last measurement while driving, none once the output is off."""
        return self.physics.measured_ma if self.output_ma > 0.0 else 0.0

    def start(self) -> None:
        """Start from 0 in RAMP (the unit has checked that starting is allowed)."""
        self.state, self.driven_ma, self.stuck_ma, self.phase_s = "RAMP", 0.0, 0.0, 0.0

    def stop(self, ignore_stop: bool = False) -> None:
        """Output off at once, never ramped; a stuck relay (`ignore_stop`) keeps it on."""
        if ignore_stop and self.output_ma > 0.0:
            self.stuck_ma = self.output_ma
        if self.running:
            self.state = "IDLE"
        self.driven_ma = 0.0

    def latch(self, fault: str) -> None:
        """Latch `fault`: output off at once (relay included), state FAULT until reset."""
        self.faults.add(fault)
        self.state, self.driven_ma, self.stuck_ma = "FAULT", 0.0, 0.0

    def cause_present(self) -> bool:
        """Whether a latched fault's cause is still there (open electrode)."""
        return "ELECTRODE" in self.faults and self.physics.impedance_ohm > ELECTRODE_LIMIT_OHM

    def reset(self) -> None:
        """Clear latched faults (the unit checked: stopped and causes gone)."""
        self.faults.clear()
        if self.state == "FAULT":
            self.state = "IDLE"

    def rate_ma_per_s(self) -> float:
        """The slower of 5 mA/s and the `ramp_s` rate (full amplitude over ramp_s)."""
        ramp_s = self.config.ramp_s if self.config else 0.0
        level = max(self.target_ma, self.driven_ma)
        if ramp_s <= 0.0 or level <= 0.0:
            return MAX_RATE_MA_PER_S
        return min(MAX_RATE_MA_PER_S, level / ramp_s)

    def step(self, dt: float) -> str | None:
        """Advance by dt; return "ELECTRODE" or "OVERCURRENT" when that fault just latched."""
        self.physics.step(dt, self.output_ma)
        if not self.running:
            return None
        if self.physics.impedance_ohm > ELECTRODE_LIMIT_OHM:
            self.latch("ELECTRODE")
            return "ELECTRODE"
        if self.physics.overcurrent_pending:
            self.physics.overcurrent_pending = False
            self.physics.measured_ma = self.driven_ma * OVERCURRENT_FACTOR + 1.0
        if self.physics.measured_ma > self.driven_ma * OVERCURRENT_FACTOR + 0.05:
            self.latch("OVERCURRENT")
            return "OVERCURRENT"
        self._step_phase(dt)
        return None

    def _step_phase(self, dt: float) -> None:
        """On/off cycling and the amplitude ramp."""
        config = self.config
        if config is not None and config.cycling:
            self.phase_s += dt
            if self.state == "OFFPHASE" and self.phase_s >= config.off_s:
                self.state, self.phase_s = "RAMP", 0.0
            elif self.state != "OFFPHASE" and self.phase_s >= config.on_s:
                self.state, self.phase_s, self.driven_ma = "OFFPHASE", 0.0, 0.0
                return
        if self.state == "OFFPHASE":
            return
        step = self.rate_ma_per_s() * dt
        self.driven_ma += max(-step, min(step, self.target_ma - self.driven_ma))
        self.state = "ON" if abs(self.driven_ma - self.target_ma) < 1e-9 else "RAMP"
