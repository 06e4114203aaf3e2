"""Fixed-rate tick scheduling on absolute deadlines, with lateness statistics.

How the loop waits for a deadline matters for lateness: asyncio's selector rounds every wait
up to whole milliseconds, so a tick that sleeps with `asyncio.sleep` lands about 1 ms late.
On Linux the ticker instead arms a timerfd (CLOCK_MONOTONIC, absolute deadline) that the loop
watches with `add_reader`: the selector wakes when the fd becomes readable, to the
microsecond, without spinning. Elsewhere, or with an injected clock, it falls back to
`asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

CLOCK_MONOTONIC = 1  # <linux/time.h>; time.monotonic() reads this clock on Linux
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC

WaitKind = Literal["auto", "timerfd", "sleep"]


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


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _TimerFdCalls(Protocol):
    def create(self) -> int: ...
    def arm_at(self, fd: int, deadline_s: float) -> None: ...


class _OsTimerFd:
    """os.timerfd_* (Python 3.13 and later; typed as Any since we check types as 3.11)."""

    _os: Any = os

    def create(self) -> int:
        fd: int = self._os.timerfd_create(CLOCK_MONOTONIC, flags=TFD_NONBLOCK | TFD_CLOEXEC)
        return fd

    def arm_at(self, fd: int, deadline_s: float) -> None:
        ns = max(1, round(deadline_s * 1e9))  # 0 would disarm the timer
        self._os.timerfd_settime_ns(fd, flags=TFD_TIMER_ABSTIME, initial=ns)


class _LibcTimerFd:
    """timerfd_create / timerfd_settime from libc through ctypes (Python 3.11 and 3.12)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._create = libc.timerfd_create
        self._create.argtypes = [ctypes.c_int, ctypes.c_int]
        self._create.restype = ctypes.c_int
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        self._settime.restype = ctypes.c_int
        self._spec = _Itimerspec()

    def create(self) -> int:
        fd: int = self._create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        return fd

    def arm_at(self, fd: int, deadline_s: float) -> None:
        ns = max(1, round(deadline_s * 1e9))  # 0 would disarm the timer
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")


def _timerfd_calls() -> _TimerFdCalls | None:
    """The timerfd calls of this platform, or None where there are none."""
    if hasattr(os, "timerfd_create"):
        return _OsTimerFd()
    try:
        return _LibcTimerFd()
    except (OSError, AttributeError):  # no libc symbol: not Linux
        return None


class _TimerFdWait:
    """Waits for absolute CLOCK_MONOTONIC deadlines on a timerfd watched by the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, calls: _TimerFdCalls) -> None:
        self._loop = loop
        self._calls = calls
        self._fd = calls.create()
        self._waiter: asyncio.Future[None] | None = None
        try:
            loop.add_reader(self._fd, self._fired)
        except BaseException:
            os.close(self._fd)
            raise

    async def until(self, deadline_s: float) -> None:
        """Return at `deadline_s` (time.monotonic seconds), to the microsecond."""
        self._calls.arm_at(self._fd, deadline_s)
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiry count; reading it re-arms readiness
        except BlockingIOError:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Stop watching the fd and close it."""
        self._loop.remove_reader(self._fd)
        os.close(self._fd)


class _SleepWait:
    """The portable fallback: asyncio.sleep to the deadline (the selector rounds up to 1 ms)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    async def until(self, deadline_s: float) -> None:
        """Return at or after `deadline_s` on `clock`."""
        await asyncio.sleep(max(0.0, deadline_s - self._clock()))

    def close(self) -> None:
        """Nothing to release."""


def _make_wait(kind: WaitKind, clock: Callable[[], float]) -> tuple[_TimerFdWait | _SleepWait, str]:
    """The wait for `kind` and its name; `auto` is timerfd when the platform has it and the
    clock is time.monotonic (the timerfd's own clock), else sleep."""
    if kind == "sleep" or (kind == "auto" and clock is not time.monotonic):
        return _SleepWait(clock), "sleep"
    calls = _timerfd_calls()
    loop = asyncio.get_running_loop()
    if calls is not None:
        try:
            return _TimerFdWait(loop, calls), "timerfd"
        except (OSError, NotImplementedError) as exc:  # e.g. a loop without add_reader
            if kind == "timerfd":
                raise
            log.warning("no timerfd for the core loop (%s): asyncio.sleep instead", exc)
    elif kind == "timerfd":
        raise OSError("timerfd is not available on this platform")
    return _SleepWait(clock), "sleep"


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
        wait: WaitKind = "auto",
    ) -> None:
        self.period_s = period_s
        self.on_tick = on_tick
        self.clock = clock
        self.overrun_periods = overrun_periods
        self.wait = wait
        self.wait_used = ""  # "timerfd" or "sleep", once running
        self.stats = LatenessStats()
        self.last_lateness_s = 0.0  # the current tick's lateness, for the kernel's overrun rule
        self.next_deadline_s = float("inf")  # when the next tick is due (for StallWatch)
        self._running = True

    def stop(self) -> None:
        """End the loop after the current tick."""
        self._running = False

    async def run(self) -> None:
        """Run until stopped."""
        waiter, self.wait_used = _make_wait(self.wait, self.clock)
        log.info("core loop: %.0f Hz, waiting with %s", 1 / self.period_s, self.wait_used)
        try:
            await self._run(waiter)
        finally:
            self.next_deadline_s = float("inf")
            waiter.close()

    async def _run(self, waiter: _TimerFdWait | _SleepWait) -> None:
        deadline = self.clock()
        while self._running:
            deadline += self.period_s
            self.next_deadline_s = deadline
            if deadline > self.clock():
                await waiter.until(deadline)
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
