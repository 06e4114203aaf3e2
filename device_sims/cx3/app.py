"""Runs one CX-3 simulator process: N units on a broker, test port, 50 Hz model stepping."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..control import ControlError, start_control_server
from ..link import LINK_MODES
from ..readyline import emit_ready, hostport, ready_payload
from ..schedule import ScheduleRules, load_schedule, start_schedule
from .link import CX3LinkControl
from .model import STEP_S, CX3Unit
from .mqtt_io import Broker, MqttUnitLink
from .testport import FAULTS, PINNABLE, CX3TestPort

TELEMETRY_EVERY = 5  # steps of 20 ms: 10 Hz
CONNECT_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 0.7
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CX3Options:
    """Command-line options of `python -m device_sims cx3`."""

    broker: Broker
    serial: str = "CX3-0001"
    root: str = "cx3"
    control: tuple[str, int] = ("127.0.0.1", 0)
    faults: Path | None = None
    seed: int = 0
    count: int = 1


def unit_serial(first: str, index: int) -> str:
    """Serial of unit `index`: the first serial's trailing number + index (else `-<index>`)."""
    if index == 0:
        return first
    match = re.search(r"(\d+)$", first)
    if match is None:
        return f"{first}-{index}"
    digits = match.group(1)
    return first[: match.start()] + str(int(digits) + index).zfill(len(digits))


class Units:
    """The process's units, their links and test ports; routes test-port requests by unit."""

    def __init__(self, options: CX3Options) -> None:
        """Build `options.count` independent units (own serial, state, seed and link)."""
        self.clock = time.monotonic
        self.links: list[MqttUnitLink] = []
        self.ports: list[CX3TestPort] = []
        for index in range(options.count):
            seed = options.seed + 1000 * index
            unit = CX3Unit(unit_serial(options.serial, index), seed=seed, now=self.clock())
            control = CX3LinkControl(rng=random.Random(seed + 2))
            link = MqttUnitLink(unit, options.broker, options.root, control, self.clock)
            self.links.append(link)
            self.ports.append(CX3TestPort(index, unit, control, link, self.clock))

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Route a test-port request to unit `request["unit"]` (default 0)."""
        index = request.get("unit", 0)
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < len(self.ports)
        ):
            raise ControlError(f"unknown unit {index!r}: this simulator runs {len(self.ports)}")
        return self.ports[index].handle(request)

    async def step_forever(self) -> None:
        """Advance every unit at 50 Hz on an absolute schedule; telemetry every 5th step.

        While no output of any unit runs, only the telemetry steps are taken (10 Hz): an idle
        simulator then wakes a fifth as often. The physics does not change, since `advance`
        always moves in STEP_S slices, and commands and test-port requests advance the unit
        to their own time before they act.
        """
        next_tick = self.clock()
        tick = 0
        while True:
            now = self.clock()
            for link in self.links:
                link.unit.advance(now)
                link.flush_events()
                if tick % TELEMETRY_EVERY == 0:
                    link.send_telemetry(now)
            steps = 1
            if not any(link.unit.any_running for link in self.links):
                steps = TELEMETRY_EVERY - tick % TELEMETRY_EVERY  # to the next telemetry step
            tick += steps
            next_tick += STEP_S * steps
            delay = next_tick - self.clock()
            if delay < -STEP_S:  # fell far behind (e.g. suspended): resynchronise
                next_tick, delay = self.clock(), 0.0
            await asyncio.sleep(max(0.0, delay))


def schedule_rules(count: int) -> ScheduleRules:
    """What a `--faults` file may ask of this model's test port (checked before READY)."""
    return ScheduleRules(
        faults=FAULTS,
        units=count,
        link_modes=(*LINK_MODES, "disconnect"),
        settable=PINNABLE,
        channels=(1,),
    )


async def run_cx3(options: CX3Options) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    rules = schedule_rules(options.count)
    schedule = load_schedule(options.faults, rules) if options.faults else []
    units = Units(options)
    runners = [asyncio.create_task(link.run()) for link in units.links]
    waiting = [asyncio.create_task(link.connected_once.wait()) for link in units.links]
    _, pending = await asyncio.wait(waiting, timeout=CONNECT_TIMEOUT_S)
    if pending:
        for task in (*pending, *runners):
            task.cancel()
        raise OSError(f"cannot reach the MQTT broker {options.broker.url}")
    control = await start_control_server(*options.control, units.handle)
    ctl_host, ctl_port = control.sockets[0].getsockname()[:2]
    stepper = asyncio.create_task(units.step_forever())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    described = [
        {"endpoints": {"mqtt": {"broker": options.broker.url, "root": link.base}}}
        for link in units.links
    ]
    emit_ready(ready_payload("CX-3", described, hostport(ctl_host, ctl_port)))
    timers = start_schedule(schedule, units.handle)
    log.info(
        "CX-3 x%d on %s, test port %s:%s", options.count, options.broker.url, ctl_host, ctl_port
    )
    await stopping.wait()
    log.info("CX-3 stopping")
    for timer in timers:
        timer.cancel()
    stepper.cancel()
    control.close()
    for link in units.links:
        link.close()
    _, late = await asyncio.wait(runners, timeout=STOP_TIMEOUT_S)
    for task in late:
        task.cancel()
    return 0
