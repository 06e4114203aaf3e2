"""The core loop's ticker: how it waits (a timerfd on Linux, asyncio.sleep elsewhere or with an
injected clock), that a blocked tick is measured and restarts the schedule, and that it leaves
no file descriptor behind. Lateness figures come from bench/ticker.py, not from here."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from sessionconsole.core.ticker import Ticker, WaitKind

LINUX = sys.platform.startswith("linux")
LINUX_ONLY = pytest.mark.skipif(not LINUX, reason="timerfd is Linux")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def run_for(ticker: Ticker, seconds: float) -> None:
    """Run `ticker` until `seconds` have passed."""
    asyncio.get_running_loop().call_later(seconds, ticker.stop)
    await asyncio.wait_for(ticker.run(), timeout=seconds + 10)


@LINUX_ONLY
async def test_waits_on_a_timerfd_by_default_and_closes_it() -> None:
    before = open_fds()
    ticks: list[float] = []
    ticker = Ticker(0.01, ticks.append)
    await run_for(ticker, 0.3)
    assert ticker.wait_used == "timerfd"
    assert len(ticks) >= 5  # about 30; a loaded machine may run fewer
    assert open_fds() == before


async def test_an_injected_clock_waits_with_asyncio_sleep() -> None:
    ticker = Ticker(0.01, lambda now: None, clock=lambda: time.monotonic())
    await run_for(ticker, 0.05)
    assert ticker.wait_used == "sleep"


@pytest.mark.parametrize("wait", ["timerfd", "sleep"] if LINUX else ["sleep"])
async def test_a_blocked_tick_is_measured_as_an_overrun_and_restarts_the_schedule(
    wait: WaitKind,
) -> None:
    ticks: list[tuple[float, float]] = []  # (when it ran, its lateness)
    ticker: Ticker

    def on_tick(now: float) -> None:
        ticks.append((now, ticker.last_lateness_s))
        if len(ticks) == 3:
            time.sleep(0.1)  # a blocking call: the next tick comes 9 periods late or more

    ticker = Ticker(0.01, on_tick, wait=wait)
    await run_for(ticker, 0.4)
    assert ticker.wait_used == wait
    late_at, lateness = ticks[3]
    assert lateness >= 0.08
    assert ticker.stats.overruns >= 1 and ticker.stats.max_s >= 0.08
    # The schedule restarts from the late tick: the next one is a period later, not at once.
    assert ticks[4][0] - late_at >= 0.009
