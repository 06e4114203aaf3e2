"""Runs one ES-2 simulator process: N units on ptys and/or TCP, one test port, fault schedule."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..control import start_control_server
from ..readyline import emit_ready, hostport, ready_payload
from ..schedule import ScheduleRules, load_schedule, start_schedule
from .physics import CHANNELS
from .testport import FAULTS, MAX_IMPEDANCE_OHM, ES2TestPort
from .unit import ES2Unit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ES2Options:
    """Command-line options of `python -m device_sims es2` (neither transport = a pty)."""

    pty: bool = False
    tcp: tuple[str, int] | None = None
    control: tuple[str, int] = ("127.0.0.1", 0)
    faults: Path | None = None
    seed: int = 0
    count: int = 1


def unit_tcp(options: ES2Options, index: int) -> tuple[str, int] | None:
    """Unit `index`'s TCP address: port 0 stays 0 (free port), else port + index."""
    if options.tcp is None:
        return None
    host, port = options.tcp
    return host, port + index if port else 0


def schedule_rules(count: int) -> ScheduleRules:
    """What a `--faults` file may ask of this model's test port (checked before READY)."""
    return ScheduleRules(
        faults=FAULTS,
        units=count,
        settable={"impedance_ohm": (0.0, MAX_IMPEDANCE_OHM)},
        channels=CHANNELS,
        needs_channel=("set", "electrode_off", "overcurrent"),
    )


async def run_es2(options: ES2Options) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    if options.count < 1:
        raise ValueError(f"--count must be at least 1, got {options.count}")
    rules = schedule_rules(options.count)
    schedule = load_schedule(options.faults, rules) if options.faults else []
    use_pty = options.pty or options.tcp is None
    clock = time.monotonic
    units = [ES2Unit(index, options.seed, clock) for index in range(options.count)]
    try:
        ready_units = [
            {"endpoints": await unit.open(use_pty, unit_tcp(options, unit.index))} for unit in units
        ]
        testport = ES2TestPort(units, clock)
        control = await start_control_server(*options.control, testport.handle)
        ctl_host, ctl_port = control.sockets[0].getsockname()[:2]
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        emit_ready(ready_payload("ES-2", ready_units, hostport(ctl_host, ctl_port)))
        timers = start_schedule(schedule, testport.handle)
        log.info("ES-2 serving %s, test port %s:%s", ready_units, ctl_host, ctl_port)
        await stopping.wait()
        log.info("ES-2 stopping")
        for timer in timers:
            timer.cancel()
        control.close()
    finally:
        for unit in units:
            unit.close()
    return 0
