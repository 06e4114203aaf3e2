"""US-1 physical world: head temperature, coupling, measured output, switch and relay.

Everything here survives a device reboot (it is the head, the patient and the hardware, not
the firmware's memory). All randomness comes from one seeded `random.Random` drawn on a fixed
grid of simulated time (device_sims/draws.py), so a run with one seed repeats whatever the
step lengths.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from device_sims.draws import DRAW_PERIOD_S, DrawGrid

AMBIENT_C = 32.0
COOLING_TAU_S = 120.0
HEAT_C_PER_S_PER_W_CM2 = 0.02
OVERTEMP_TARGET_C = 43.5
OVERTEMP_RISE_C_PER_S = 6.0
COUPLING_MEAN_PCT = 90.0
COUPLING_THETA = 0.2
COUPLING_SIGMA = 1.5
NOISE_FRACTION = 0.02
DEVIATION_FACTOR = 0.7
PATIENT_STOP_PRESS_S = 0.2


@dataclass
class Injections:
    """Test-port injected faults and pinned values; only `clear` removes them."""

    overtemp: bool = False
    output_deviation: bool = False
    head_disconnect: bool = False
    ignore_stop: bool = False
    coupling_pct: float | None = None
    head_temp_c: float | None = None

    def active_names(self) -> list[str]:
        """Return the names of the injected faults currently active."""
        names = ("overtemp", "output_deviation", "head_disconnect", "ignore_stop")
        return [name for name in names if getattr(self, name)]


@dataclass
class Physics:
    """Seeded physical model stepped with explicit time deltas (no clock inside)."""

    seed: int = 0
    head_temp_c: float = AMBIENT_C
    wander_pct: float = COUPLING_MEAN_PCT
    measured_w_cm2: float = 0.0
    switch_pressed_s: float = 0.0
    noise: float = 0.0
    injected: Injections = field(default_factory=Injections)
    grid: DrawGrid = field(default_factory=DrawGrid)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        """Seed the random generator so traces repeat for the same seed."""
        self.rng = random.Random(self.seed)

    @property
    def head_connected(self) -> bool:
        """Whether the transducer head is plugged in."""
        return not self.injected.head_disconnect

    @property
    def coupling_pct(self) -> float:
        """Coupling quality in percent: pinned value, else the wandering one; 0 if unplugged."""
        if not self.head_connected:
            return 0.0
        if self.injected.coupling_pct is not None:
            return self.injected.coupling_pct
        return self.wander_pct

    @property
    def switch_pressed(self) -> bool:
        """Whether the momentary patient stop switch is held down right now."""
        return self.switch_pressed_s > 0.0

    def press_patient_stop(self) -> None:
        """Press the patient hand switch; it springs back after a short press."""
        self.switch_pressed_s = PATIENT_STOP_PRESS_S

    def step(self, dt: float, emitted_w_cm2: float, duty_fraction: float) -> None:
        """Advance the world by `dt` seconds with the given output level and duty."""
        self.switch_pressed_s = max(0.0, self.switch_pressed_s - dt)
        for _ in range(self.grid.due(dt)):
            self._draw(DRAW_PERIOD_S)
        emitting = emitted_w_cm2 if self.head_connected else 0.0
        self._step_temperature(dt, emitting, duty_fraction)
        factor = DEVIATION_FACTOR if self.injected.output_deviation else 1.0
        self.measured_w_cm2 = max(0.0, emitting * factor * (1.0 + self.noise))

    def _draw(self, period: float) -> None:
        """One grid period of coupling wander and a fresh measurement noise value."""
        gauss = self.rng.gauss(0.0, 1.0)
        self.noise = self.rng.uniform(-NOISE_FRACTION, NOISE_FRACTION)
        drift = COUPLING_THETA * (COUPLING_MEAN_PCT - self.wander_pct) * period
        self.wander_pct += drift + COUPLING_SIGMA * math.sqrt(period) * gauss
        self.wander_pct = min(99.0, max(80.0, self.wander_pct))

    def _step_temperature(self, dt: float, emitted_w_cm2: float, duty_fraction: float) -> None:
        """Relax toward ambient, heat with intensity x duty (more when coupling is poor)."""
        if self.injected.overtemp:
            rise = OVERTEMP_RISE_C_PER_S * dt
            self.head_temp_c = max(
                self.head_temp_c, min(OVERTEMP_TARGET_C, self.head_temp_c + rise)
            )
            return
        if self.injected.head_temp_c is not None:
            self.head_temp_c = self.injected.head_temp_c
            return
        poorness = 1.0 + 3.0 * (1.0 - self.coupling_pct / 100.0)
        heating = HEAT_C_PER_S_PER_W_CM2 * emitted_w_cm2 * duty_fraction * poorness
        self.head_temp_c += ((AMBIENT_C - self.head_temp_c) / COOLING_TAU_S + heating) * dt
