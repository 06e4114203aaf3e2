"""Runs one US-1 simulator process: N units (Modbus TCP and/or RTU), test port, 50 Hz stepping."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..control import start_control_server
from ..readyline import emit_ready, hostport, ready_payload
from ..schedule import ScheduleRules, load_schedule, start_schedule
from .model import US1Model
from .router import unit_router
from .testport import FAULTS, PINNABLE
from .unit import UnitSpec, US1Unit, start_unit

STEP_S = 0.02  # 50 Hz
MAX_PORT = 65535
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class US1Options:
    """Command-line options of `python -m device_sims us1` (no endpoint given: TCP)."""

    tcp: tuple[str, int] | None = None
    rtu_pty: bool = False
    control: tuple[str, int] = ("127.0.0.1", 0)
    faults: Path | None = None
    seed: int = 0
    count: int = 1
    layout: str = "icd"

    def unit_specs(self) -> list[UnitSpec]:
        """One spec per unit; a fixed TCP port P gives unit i port P + i (0 stays 'free')."""
        tcp = self.tcp if self.tcp is not None or self.rtu_pty else ("127.0.0.1", 0)
        if tcp is not None and tcp[1] and tcp[1] + self.count - 1 > MAX_PORT:
            raise ValueError(f"--tcp port {tcp[1]} + --count {self.count} exceeds {MAX_PORT}")
        return [
            UnitSpec(
                index=i,
                tcp=None if tcp is None else (tcp[0], tcp[1] + i if tcp[1] else 0),
                rtu_pty=self.rtu_pty,
                seed=self.seed + i,
                layout=self.layout,
            )
            for i in range(self.count)
        ]


async def step_forever(models: Sequence[US1Model]) -> None:
    """Advance every model at 50 Hz on an absolute schedule (no drift, sleeps between steps)."""
    next_tick = time.monotonic()
    while True:
        now = time.monotonic()
        for model in models:
            model.advance(now)
        next_tick += STEP_S
        delay = next_tick - time.monotonic()
        if delay < -STEP_S:  # fell far behind (e.g. suspended): resynchronise
            next_tick = time.monotonic()
            delay = 0.0
        await asyncio.sleep(max(0.0, delay))


async def start_units(options: US1Options) -> list[US1Unit]:
    """Start every unit's endpoints; on failure close those already started."""
    units: list[US1Unit] = []
    try:
        for spec in options.unit_specs():
            units.append(await start_unit(spec, time.monotonic))
    except BaseException:
        for unit in units:
            await unit.close()
        raise
    return units


def schedule_rules(count: int) -> ScheduleRules:
    """What a `--faults` file may ask of this model's test port (checked before READY)."""
    return ScheduleRules(
        faults=FAULTS,
        units=count,
        settable=PINNABLE,
    )


async def run_us1(options: US1Options) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    rules = schedule_rules(options.count)
    schedule = load_schedule(options.faults, rules) if options.faults else []
    units = await start_units(options)
    handler = unit_router([unit.testport for unit in units])
    try:
        control = await start_control_server(*options.control, handler)
    except BaseException:
        for unit in units:
            await unit.close()
        raise
    ctl_host, ctl_port = control.sockets[0].getsockname()[:2]
    stepper = asyncio.create_task(step_forever([unit.model for unit in units]))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    ready_units = [unit.ready_entry() for unit in units]
    emit_ready(ready_payload("US-1", ready_units, hostport(ctl_host, ctl_port)))
    timers = start_schedule(schedule, handler)
    log.info(
        "US-1 serving %d unit(s), first %s, test port %s:%s",
        len(units),
        units[0].endpoints,
        ctl_host,
        ctl_port,
    )
    await stopping.wait()
    log.info("US-1 stopping")
    for timer in timers:
        timer.cancel()
    stepper.cancel()
    control.close()
    for unit in units:
        await unit.close()
    return 0
