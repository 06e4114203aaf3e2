"""The stall watch names what blocks the core loop: a blocking call on the loop is reported with
its stack and judged `blocked`, a call that holds the GIL (so no other thread can look) by the
loop thread's CPU time over the time the watch was held."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from sessionconsole.core.stall import StallWatch
from sessionconsole.core.ticker import Ticker


def blocking_driver_call() -> None:
    """Stands in for a blocking call slipped into a driver (a sync socket, a sleep)."""
    time.sleep(0.5)


def gil_terms(hold_s: float = 0.4) -> int:
    """How many terms `sum(range(n))` needs on this machine to hold the GIL for `hold_s`."""
    n = 1_000_000
    while True:
        started = time.thread_time()
        sum(range(n))
        took = time.thread_time() - started
        if took >= 0.05:
            return int(n * hold_s / took) + 1
        n *= 4


def gil_holding_call(terms: int) -> None:
    """A long C call that never lets another thread run (sum over a range holds the GIL)."""
    sum(range(terms))


async def watched(blocker: Callable[[], object]) -> StallWatch:
    """A 100 Hz ticker with its watch; `blocker` runs on the loop 50 ms after the start."""
    ticker = Ticker(0.01, lambda now: None)
    watch = StallWatch(ticker, threshold_s=0.1)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, blocker)
    loop.call_later(1.2, ticker.stop)
    watch.start()
    try:
        await asyncio.wait_for(ticker.run(), timeout=15)
    finally:
        watch.stop()
    return watch


async def test_a_blocking_call_on_the_loop_is_named_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sessionconsole.core.stall"):
        watch = await watched(blocking_driver_call)
    blocked = [s for s in watch.stalls if s.kind == "blocked"]
    assert blocked, watch.stalls
    assert any("blocking_driver_call" in stack for stack in blocked[0].stacks)
    assert "blocking_driver_call" in caplog.text and "loop thread in code" in caplog.text
    # The verdict once the late tick ran: the loop thread slept in the call, not for a CPU.
    assert "over (at least" in caplog.text and ": blocked; meanwhile" in caplog.text
    assert blocked[0].loop_runnable_ms is None or blocked[0].loop_runnable_ms < 250


async def test_a_call_holding_the_gil_shows_as_loop_cpu_while_the_watch_was_held() -> None:
    terms = gil_terms()  # sized to this machine, so the call outlasts the 100 ms threshold
    watch = await watched(lambda: gil_holding_call(terms))
    held = [s for s in watch.stalls if s.kind == "unwatched"]
    assert held, watch.stalls
    worst = max(held, key=lambda s: s.late_ms)
    assert worst.loop_cpu_ms is not None and worst.loop_cpu_ms >= 100, worst
