"""A watchdog thread that says what stalls the core loop.

The ticker knows how late a tick was only once the tick runs, which says nothing about why.
This thread looks from outside, 20 times a second. Whenever the loop is more than
`threshold_s` past its next tick, it samples the loop thread's stack (sys._current_frames)
and its scheduler state, and logs them; once the late tick has run, it logs a verdict from the
loop thread's CPU time and its wait on a run queue (Linux schedstat) over the stall:

- `blocked`: the loop thread was not kept off a CPU: it ran code or slept in a call, and the
  stacks name it: a blocking call on the loop;
- `starved`: it was ready to run for most of the stall, but the machine gave it no CPU (the
  stacks only show where it was preempted);
- `idle`: it slept in its selector past the deadline, neither running nor waiting for a CPU;
- `unwatched`: the watch itself could not run (the whole process was held, or a C call on the
  loop held the GIL); the same clocks over that time say which.
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
STARVED_SHARE = 0.5  # waiting for a CPU this share of the stall or more: starved

StallKind = Literal["blocked", "starved", "idle", "unwatched"]


class Scheduled(Protocol):
    """What the watch reads of the ticker (a float attribute: one read, no lock needed)."""

    next_deadline_s: float


@dataclass
class Stall:
    """One stall of the loop as the watch saw it (kinds: see the module docstring)."""

    kind: StallKind
    late_ms: float  # how late the loop was at the last sample (unwatched: how long we were held)
    stacks: list[str] = field(default_factory=list)
    loop_cpu_ms: float | None = None  # the loop thread's CPU time over the stall so far
    loop_runnable_ms: float | None = None  # its wait for a CPU over the stall so far
    process_cpu_ms: float | None = None  # unwatched: the whole process's CPU meanwhile


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


def _thread_state(fd: int | None) -> str:
    """The scheduler state letter of a /proc task stat (R running or ready, S sleeping, D in
    uninterruptible I/O), or "?"."""
    if fd is None:
        return "?"
    try:
        stat = os.pread(fd, 512, 0)
        return stat[stat.rindex(b")") + 2 :][:1].decode()
    except (OSError, ValueError):
        return "?"


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


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
        self._stat_fd: int | None = None  # and its /proc stat (scheduler state)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch the calling thread (the loop's) from a daemon thread."""
        self._loop_thread = threading.get_ident()
        self._loop_cpu_clock = time.pthread_getcpuclockid(self._loop_thread)
        task = f"/proc/self/task/{threading.get_native_id()}"
        self._schedstat_fd = _open_or_none(f"{task}/schedstat")  # not Linux: reports say "?"
        self._stat_fd = _open_or_none(f"{task}/stat")
        self._stopping = False
        self._thread = threading.Thread(target=self._watch, name="loop-stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the watch (waits at most one sampling interval for the thread)."""
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        for fd in (self._schedstat_fd, self._stat_fd):
            if fd is not None:
                os.close(fd)
        self._schedstat_fd = self._stat_fd = None

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
        current: tuple[float, _Probe, Stall] | None = None  # the late deadline, start, stall
        before = self._probe()
        while True:
            time.sleep(interval)  # cheaper than an Event's timed wait, 20 times a second
            if self._stopping:
                return
            now = self._probe()
            if now.wall_s - before.wall_s > interval + self.threshold_s:
                self._unwatched(before, now)
            due = self.ticker.next_deadline_s
            if current is not None and due > current[0]:  # the late tick has run
                self._verdict(current[2], current[1], now)
                current = None
            late = now.wall_s - due
            if late > self.threshold_s:
                if current is None:  # measured from the last look before it began
                    current = (due, before, Stall("idle", late * 1000))
                    self.stalls.append(current[2])
                self._sample(current[2], current[1], now, late)
            before = now

    def _unwatched(self, before: _Probe, now: _Probe) -> None:
        """The watch woke late: record what the CPU clocks say about the time it was held."""
        stall = Stall("unwatched", (now.wall_s - before.wall_s) * 1000)
        _meanwhile(stall, before, now)
        stall.process_cpu_ms = (now.process_cpu_s - before.process_cpu_s) * 1000
        self.stalls.append(stall)
        log.warning(
            "core loop stall watch was held %.0f ms: meanwhile the loop thread used %.0f ms of "
            "CPU and waited %s ms for one, the process used %.0f ms (loop CPU close to the wall "
            "time: a call on the loop held the GIL; waiting for a CPU: the machine did not run "
            "us; neither: a thread blocked in the kernel)",
            stall.late_ms,
            stall.loop_cpu_ms,
            _ms(stall.loop_runnable_ms),
            stall.process_cpu_ms,
        )

    def _sample(self, stall: Stall, start: _Probe, now: _Probe, late: float) -> None:
        """Keep and log the loop thread's stack and scheduler state if the stack is a new one,
        with where every other thread is (one that holds the GIL stalls the loop too)."""
        frames = sys._current_frames()
        frame = frames.get(self._loop_thread)
        stall.late_ms = late * 1000
        _meanwhile(stall, start, now)
        if frame is None or len(stall.stacks) >= MAX_SAMPLES_PER_STALL:
            return
        stack = "".join(traceback.format_stack(frame)[-STACK_FRAMES:])
        if stack in stall.stacks:
            return
        stall.stacks.append(stack)
        state = _thread_state(self._stat_fd)
        if not _waiting_in_selector(stack):
            stall.kind = "blocked"  # until the verdict says the machine kept it off a CPU
        names = {t.ident: t.name for t in threading.enumerate()}
        others = [
            f"  {names.get(ident, ident)}: {_innermost(other)}"
            for ident, other in frames.items()
            if ident not in (self._loop_thread, threading.get_ident())
        ]
        log.warning(
            "core loop stalled (#%d): %.0f ms past a tick, loop thread %s (state %s); its "
            "stack:\n%sother threads, innermost frame:\n%s",
            self.stalls.index(stall) + 1,
            stall.late_ms,
            "in the selector" if _waiting_in_selector(stack) else "in code",
            state,
            stack,
            "\n".join(others) or "  none",
        )

    def _verdict(self, stall: Stall, start: _Probe, now: _Probe) -> None:
        """The late tick has run: judge the stall by the loop thread's clocks over it (a wait
        for a CPU is counted only once the thread has run again, so only now)."""
        _meanwhile(stall, start, now)
        if (stall.loop_runnable_ms or 0.0) >= STARVED_SHARE * stall.late_ms:
            stall.kind = "starved"
        log.warning(
            "core loop stall #%d over (at least %.0f ms late): %s; meanwhile the loop thread "
            "used %.0f ms of CPU and waited %s ms for one",
            self.stalls.index(stall) + 1,
            stall.late_ms,
            stall.kind,
            stall.loop_cpu_ms,
            _ms(stall.loop_runnable_ms),
        )


def _open_or_none(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _meanwhile(stall: Stall, start: _Probe, now: _Probe) -> None:
    """The loop thread's CPU time and run-queue wait between two probes, into `stall`."""
    stall.loop_cpu_ms = (now.loop_cpu_s - start.loop_cpu_s) * 1000
    if now.loop_runnable_s is not None and start.loop_runnable_s is not None:
        stall.loop_runnable_ms = (now.loop_runnable_s - start.loop_runnable_s) * 1000
