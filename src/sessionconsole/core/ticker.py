"""Fixed-rate tick scheduling on absolute deadlines, with lateness statistics."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatenessSummary:
    """Tick lateness over the recent window, in milliseconds."""

    ticks: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    overruns: int


class LatenessStats:
    """A bounded window of tick lateness; the maximum is kept since start."""

    def __init__(self, window: int = 6000) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.ticks = 0
        self.overruns = 0
        self.max_s = 0.0

    def add(self, lateness_s: float) -> None:
        """Record one tick's lateness."""
        self.samples.append(lateness_s)
        self.ticks += 1
        self.max_s = max(self.max_s, lateness_s)

    def summary(self) -> LatenessSummary:
        """Percentiles of the window (sorts a copy: call it about once a second)."""
        ordered = sorted(self.samples)
        if not ordered:
            return LatenessSummary(self.ticks, 0.0, 0.0, 0.0, self.overruns)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0

        return LatenessSummary(self.ticks, pct(0.50), pct(0.99), self.max_s * 1000.0, self.overruns)


class Ticker:
    """Calls `on_tick(now)` every `period_s` on absolute deadlines; late ticks are measured.

    A tick later than `overrun_periods` periods counts as an overrun and the schedule restarts
    from now instead of firing a burst of catch-up ticks.
    """

    def __init__(
        self,
        period_s: float,
        on_tick: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
        overrun_periods: int = 5,
    ) -> None:
        self.period_s = period_s
        self.on_tick = on_tick
        self.clock = clock
        self.overrun_periods = overrun_periods
        self.stats = LatenessStats()
        self.last_lateness_s = 0.0  # the current tick's lateness, for the kernel's overrun rule
        self._running = True

    def stop(self) -> None:
        """End the loop after the current tick."""
        self._running = False

    async def run(self) -> None:
        """Run until stopped."""
        deadline = self.clock()
        while self._running:
            deadline += self.period_s
            delay = deadline - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # let the drivers' I/O run even when behind
            if not self._running:
                return  # stopped while waiting: no tick after stop()
            now = self.clock()
            lateness = now - deadline
            self.last_lateness_s = max(lateness, 0.0)
            self.stats.add(self.last_lateness_s)
            if lateness > self.overrun_periods * self.period_s:
                self.stats.overruns += 1
                deadline = now
            self.on_tick(now)
