"""A fixed time grid for the simulators' random draws, so `--seed` runs repeat.

The units step their physics whenever a request, a telemetry deadline or a test-port call
arrives, so step lengths differ from run to run. If each step drew its own random numbers,
two runs with one seed would drift apart within a second. Instead the random parts (coupling
wander, impedance drift, noise) advance once per whole DRAW_PERIOD_S of simulated time: after
the same simulated time, a seed has made the same draws, whatever the step pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

DRAW_PERIOD_S = 0.02
_EPSILON = 1e-9


@dataclass
class DrawGrid:
    """Counts the whole draw periods elapsed; `due(dt)` says how many a step has crossed."""

    elapsed_s: float = 0.0
    draws: int = 0

    def due(self, dt: float) -> int:
        """Advance by `dt` seconds and return the number of draw periods completed in it."""
        self.elapsed_s += dt
        reached = int(self.elapsed_s / DRAW_PERIOD_S + _EPSILON)
        crossed = reached - self.draws
        self.draws = reached
        return crossed
