"""A watchdog thread that names what stalls the core loop.

The ticker knows how late a tick was only once the tick runs, which says nothing about why.
This thread looks from outside. Whenever the loop is more than `threshold_s` past its next
tick, it samples the loop thread's stack (sys._current_frames) and logs it, so a blocking
call on the loop names itself. A stack that ends in the selector's wait means the loop had
nothing to do: the process got no CPU, or another thread held the GIL. When the watch itself
wakes late (the whole process was held, or a C call on the loop held the GIL, so no Python
thread could run), it logs how much CPU the loop thread and the process used meanwhile:
none means the machine did not run us; the loop thread's CPU close to the wall time means a
call on the loop held the GIL.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Literal, Protocol

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD_S = 0.1
MAX_SAMPLES_PER_STALL = 5  # distinct stacks kept (and logged) per stall
STACK_FRAMES = 14  # innermost frames kept of each sample

StallKind = Literal["blocked", "idle", "unwatched"]


class Scheduled(Protocol):
    """What the watch reads of the ticker (a float attribute: one read, no lock needed)."""

    next_deadline_s: float


@dataclass
class Stall:
    """One stall of the loop, as the watch saw it.

    `blocked`: the loop thread was running code (its stacks say which); `idle`: it was waiting
    in the selector past its deadline (no CPU or no GIL for it); `unwatched`: the watch itself
    could not run, so only the CPU figures say what happened.
    """

    kind: StallKind
    late_ms: float  # how late the loop was when first seen (unwatched: how long we were held)
    stacks: list[str] = field(default_factory=list)
    loop_cpu_ms: float | None = None  # unwatched: CPU of the loop thread while we were held
    process_cpu_ms: float | None = None  # unwatched: CPU of the whole process meanwhile
    loop_runnable_ms: float | None = None  # unwatched: the loop thread ready but given no CPU


@dataclass(frozen=True, slots=True)
class _Probe:
    wall_s: float
    loop_cpu_s: float
    process_cpu_s: float
    loop_runnable_s: float | None  # time the loop thread waited on a run queue (schedstat)


def _waiting_in_selector(stack: str) -> bool:
    """The innermost frame is the selector's wait (`selectors.py ... in select`)."""
    lines = stack.strip().splitlines()
    return any("selectors.py" in line and "in select" in line for line in lines[-2:])


def _innermost(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"


class StallWatch:
    """Samples the loop thread whenever the loop is `threshold_s` past the ticker's next
    deadline. Start it from the loop's thread; stop it before the process exits."""

    def __init__(
        self,
        ticker: Scheduled,
        threshold_s: float = DEFAULT_THRESHOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ticker = ticker
        self.threshold_s = threshold_s
        self.clock = clock
        self.stalls: list[Stall] = []
        self._loop_thread = 0
        self._loop_cpu_clock = 0
        self._schedstat_fd: int | None = None  # the loop thread's /proc schedstat, kept open
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch the calling thread (the loop's) from a daemon thread."""
        self._loop_thread = threading.get_ident()
        self._loop_cpu_clock = time.pthread_getcpuclockid(self._loop_thread)
        try:
            path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
            self._schedstat_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # not Linux, or no schedstats: the report says "?"
            self._schedstat_fd = None
        self._stopping = False
        self._thread = threading.Thread(target=self._watch, name="loop-stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the watch (waits at most one sampling interval for the thread)."""
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._schedstat_fd is not None:
            os.close(self._schedstat_fd)
            self._schedstat_fd = None

    def _probe(self) -> _Probe:
        return _Probe(
            self.clock(),
            time.clock_gettime(self._loop_cpu_clock),
            time.process_time(),
            self._runnable_s(),
        )

    def _runnable_s(self) -> float | None:
        """The loop thread's run-queue wait so far (Linux schedstat), None where unknown."""
        fd = self._schedstat_fd
        if fd is None:
            return None
        try:
            return int(os.pread(fd, 64, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return None

    def _watch(self) -> None:
        interval = self.threshold_s / 2
        current: tuple[float, Stall] | None = None  # (the late tick's deadline, its stall)
        before = self._probe()
        while True:
            time.sleep(interval)  # cheaper than an Event's timed wait, 20 times a second
            if self._stopping:
                return
            now = self._probe()
            if now.wall_s - before.wall_s > interval + self.threshold_s:
                self._unwatched(before, now)
            before = now
            due = self.ticker.next_deadline_s
            if current is not None and due > current[0]:
                current = None  # the late tick has run: that stall is over
            late = now.wall_s - due
            if late <= self.threshold_s:
                continue
            if current is None:
                current = (due, Stall("idle", late * 1000))
                self.stalls.append(current[1])
            self._sample(current[1], late)

    def _unwatched(self, before: _Probe, now: _Probe) -> None:
        """The watch woke late: record what the CPU clocks say about the time it was held."""
        runnable = None
        if now.loop_runnable_s is not None and before.loop_runnable_s is not None:
            runnable = (now.loop_runnable_s - before.loop_runnable_s) * 1000
        stall = Stall(
            "unwatched",
            (now.wall_s - before.wall_s) * 1000,
            loop_cpu_ms=(now.loop_cpu_s - before.loop_cpu_s) * 1000,
            process_cpu_ms=(now.process_cpu_s - before.process_cpu_s) * 1000,
            loop_runnable_ms=runnable,
        )
        self.stalls.append(stall)
        log.warning(
            "core loop stall watch was held %.0f ms: meanwhile the loop thread used %.0f ms of "
            "CPU and waited %s ms for one, the process used %.0f ms (loop CPU close to the wall "
            "time: a call on the loop held the GIL; waiting for a CPU: the machine did not run "
            "us; neither: a thread blocked in the kernel)",
            stall.late_ms,
            stall.loop_cpu_ms,
            "?" if runnable is None else f"{runnable:.0f}",
            stall.process_cpu_ms,
        )

    def _sample(self, stall: Stall, late: float) -> None:
        """Keep the loop thread's stack if it differs from this stall's earlier samples; with
        it, where every other thread is (one that holds the GIL stalls the loop too)."""
        frames = sys._current_frames()
        frame = frames.get(self._loop_thread)
        if frame is None or len(stall.stacks) >= MAX_SAMPLES_PER_STALL:
            return
        stack = "".join(traceback.format_stack(frame)[-STACK_FRAMES:])
        if stack in stall.stacks:
            return
        stall.stacks.append(stack)
        idle = _waiting_in_selector(stack)
        if not idle:
            stall.kind = "blocked"
        names = {t.ident: t.name for t in threading.enumerate()}
        others = [
            f"  {names.get(ident, ident)}: {_innermost(other)}"
            for ident, other in frames.items()
            if ident not in (self._loop_thread, threading.get_ident())
        ]
        log.warning(
            "core loop stalled: %.0f ms past a tick, %s; loop thread stack:\n%s"
            "other threads, innermost frame:\n%s",
            late * 1000,
            "waiting in the selector (no CPU or no GIL for it)" if idle else "running code",
            stack,
            "\n".join(others) or "  none",
        )
