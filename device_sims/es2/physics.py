"""ES-2 physical world: electrode impedance per channel, current noise, hand switch, relays.

Everything here survives a device reboot (electrodes, patient and hardware, not firmware
memory). Randomness comes from one seeded `random.Random` drawn on a fixed grid of simulated
time (device_sims/draws.py), so a run with the same seed repeats whatever the step lengths.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from device_sims.draws import DRAW_PERIOD_S, DrawGrid

IMPEDANCE_MEAN_OHM = 1250.0
IMPEDANCE_MIN_OHM, IMPEDANCE_MAX_OHM = 500.0, 2000.0
IMPEDANCE_THETA = 0.3  # 1/s pull towards the mean
IMPEDANCE_SIGMA = 60.0  # ohm/sqrt(s) random walk
ELECTRODE_OFF_OHM = 25_000.0
NOISE_FRACTION = 0.015  # measured current within +-1.5 % of the driven level
OVERCURRENT_FACTOR = 1.25
SWITCH_PRESS_S = 0.2
CHANNELS = (1, 2)


@dataclass
class Injections:
    """Test-port injected faults and pinned values; only `clear` removes them."""

    electrode_off: set[int] = field(default_factory=set)
    overcurrent_pending: set[int] = field(default_factory=set)
    ignore_stop: bool = False
    impedance_ohm: dict[int, float] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """JSON-ready view for the test port's `state` reply."""
        return {
            "electrode_off": sorted(self.electrode_off),
            "overcurrent_pending": sorted(self.overcurrent_pending),
            "ignore_stop": self.ignore_stop,
            "impedance_ohm": {str(ch): ohm for ch, ohm in sorted(self.impedance_ohm.items())},
        }


@dataclass
class Physics:
    """Seeded physical model stepped with explicit time deltas (no clock inside)."""

    seed: int = 0
    wander_ohm: dict[int, float] = field(default_factory=dict)
    noise: dict[int, float] = field(default_factory=dict)
    switch_pressed_s: float = 0.0
    injected: Injections = field(default_factory=Injections)
    grid: DrawGrid = field(default_factory=DrawGrid)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        """Seed the generator and start both electrode pairs near their mean impedance."""
        self.rng = random.Random(self.seed)
        for ch in CHANNELS:
            self.wander_ohm[ch] = IMPEDANCE_MEAN_OHM + self.rng.uniform(-300.0, 300.0)
            self.noise[ch] = 0.0

    def impedance_ohm(self, ch: int) -> float:
        """Electrode impedance seen by channel `ch`: off, pinned, or the drifting value."""
        if ch in self.injected.electrode_off:
            return ELECTRODE_OFF_OHM
        return self.injected.impedance_ohm.get(ch, self.wander_ohm[ch])

    @property
    def switch_pressed(self) -> bool:
        """Whether the momentary patient hand switch is held down right now."""
        return self.switch_pressed_s > 0.0

    def press_switch(self) -> None:
        """Press the patient hand switch; it springs back after a short press."""
        self.switch_pressed_s = SWITCH_PRESS_S

    def measured_ma(self, ch: int, driven_ma: float, electrode_limit_ohm: float) -> float:
        """Current that flows for a driven level: none through open electrodes, else noisy."""
        if driven_ma <= 0.0 or self.impedance_ohm(ch) > electrode_limit_ohm:
            return 0.0
        if ch in self.injected.overcurrent_pending:
            return driven_ma * OVERCURRENT_FACTOR + 0.5
        return driven_ma * (1.0 + self.noise[ch])

    def step(self, dt: float) -> None:
        """Advance the world by `dt` seconds: impedance drift, fresh noise, switch release."""
        self.switch_pressed_s = max(0.0, self.switch_pressed_s - dt)
        for _ in range(self.grid.due(dt)):
            self._draw(DRAW_PERIOD_S)

    def _draw(self, period: float) -> None:
        """One grid period of random drift and a fresh noise value for each channel."""
        for ch in CHANNELS:
            gauss = self.rng.gauss(0.0, 1.0)
            self.noise[ch] = self.rng.uniform(-NOISE_FRACTION, NOISE_FRACTION)
            pull = IMPEDANCE_THETA * (IMPEDANCE_MEAN_OHM - self.wander_ohm[ch]) * period
            drifted = self.wander_ohm[ch] + pull + IMPEDANCE_SIGMA * math.sqrt(period) * gauss
            self.wander_ohm[ch] = min(IMPEDANCE_MAX_OHM, max(IMPEDANCE_MIN_OHM, drifted))
