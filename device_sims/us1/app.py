"""Runs one US-1 simulator process: Modbus TCP server, test port, 50 Hz model stepping."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..control import start_control_server
from ..link import LinkControl
from ..readyline import emit_ready, hostport, ready_payload
from ..schedule import load_schedule, start_schedule
from .modbus import US1Context, US1ModbusServer
from .model import US1Model
from .testport import US1TestPort

STEP_S = 0.02  # 50 Hz
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class US1Options:
    """Command-line options of `python -m device_sims us1`."""

    tcp: tuple[str, int] = ("127.0.0.1", 0)
    control: tuple[str, int] = ("127.0.0.1", 0)
    faults: Path | None = None
    seed: int = 0


async def step_forever(model: US1Model) -> None:
    """Advance the model at 50 Hz on an absolute schedule (no drift, sleeps between steps)."""
    next_tick = time.monotonic()
    while True:
        model.advance(time.monotonic())
        next_tick += STEP_S
        delay = next_tick - time.monotonic()
        if delay < -STEP_S:  # fell far behind (e.g. suspended): resynchronise
            next_tick = time.monotonic()
            delay = 0.0
        await asyncio.sleep(max(0.0, delay))


async def run_us1(options: US1Options) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    schedule = load_schedule(options.faults) if options.faults else []
    clock = time.monotonic
    model = US1Model(seed=options.seed, now=clock())
    link = LinkControl()
    server = US1ModbusServer(US1Context(model, clock), link, options.tcp)
    tcp_host, tcp_port = await server.start()
    testport = US1TestPort(model, link, clock, on_reboot=server.drop_connections)
    control = await start_control_server(*options.control, testport.handle)
    ctl_host, ctl_port = control.sockets[0].getsockname()[:2]
    stepper = asyncio.create_task(step_forever(model))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    endpoints = {"modbus_tcp": hostport(tcp_host, tcp_port)}
    emit_ready(ready_payload("US-1", [{"endpoints": endpoints}], hostport(ctl_host, ctl_port)))
    timers = start_schedule(schedule, testport.handle)
    log.info(
        "US-1 serving Modbus TCP on %s:%s, test port %s:%s", tcp_host, tcp_port, ctl_host, ctl_port
    )
    await stopping.wait()
    log.info("US-1 stopping")
    for timer in timers:
        timer.cancel()
    stepper.cancel()
    control.close()
    server.drop_connections()
    await server.shutdown()  # type: ignore[no-untyped-call]
    return 0
