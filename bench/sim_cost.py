"""What the simulators cost: CPU of one unit idle, of 32 units idle and running, and start-up.

For each model (US-1, ES-2, CX-3) the script measures, in this order:

- start-up: launch `python -m device_sims MODEL` to its READY line (median of `--runs`);
- one unit idle (the default transports of the pytest fixtures, nobody connected);
- 32 units in one `--count 32` process, idle;
- the same 32 units with every output running and heartbeats fed every 100 ms (watchdog
  1000 ms), over each unit's own protocol, as a console would: US-1 intensity 1 W/cm² over
  Modbus TCP, polled as its driver does (three reads at 25 Hz); ES-2 both channels at 20 mA
  (SYM 100 Hz, 200 µs) with STREAM 20 read over `socket://`; CX-3 ultrasound 1 W/cm² and
  stimulation 20 mA (`start both`) through mosquitto, telemetry subscribed (as a console).

CPU is the simulator process's own utime + stime from /proc/PID/stat over a wall-clock window
(100 % = one core) after a settle time; the figure is the median of `--windows` consecutive
windows. This script's own CPU is not counted; for the CX-3 the broker's CPU over the same
windows is printed beside it. The 1-minute load average at the end of each series is recorded,
since the machine is shared. After the running series the test port's `state` of every unit
says how many still run (none should have stopped: the heartbeats arrive).

Prints a table with issue 3's goals (idle unit < 2 % of a core, 32 units < 50 %) and PASS or
FAIL, then one JSON line.

    .venv/bin/python bench/sim_cost.py [--seconds 10] [--runs 5] [--windows 3]
                                       [--settle 2] [--models us1,es2,cx3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, Any

import aiomqtt
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from sessionconsole.drivers.mqtt_options import NO_DELAY
from sessionconsole.protocols import es2
from sessionconsole.testing import SimProcess, split_hostport
from sessionconsole.testing.mqtt import Mosquitto

CLK_TCK = os.sysconf("SC_CLK_TCK")
HEARTBEAT_S = 0.1
US1_POLL_S = 1 / 25  # the US-1 driver's default telemetry rate
WATCHDOG_MS = 1000
COUNT = 32
START_RUNNING = [100, 100, 100, 1800, WATCHDOG_MS, 0, 1]  # US-1 registers 1-7: 1 W/cm², START
MODELS = ("us1", "es2", "cx3")
GOAL_IDLE_PCT = 2.0  # issue 3: an idle simulator uses under 2 % of a core
GOAL_COUNT_PCT = 50.0  # issue 3: 32 units in one --count process stay under half a core
QUIET_MQTT = logging.getLogger("sim_cost.mqtt")
QUIET_MQTT.setLevel(logging.ERROR)
ES2_ARGS = ["--pty", "--tcp", "127.0.0.1:0"]  # as the es2_sim fixture


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        after_name = fh.read().rpartition(")")[2].split()
    return (int(after_name[11]) + int(after_name[12])) / CLK_TCK


async def cpu_percent(pid: int, seconds: float) -> float:
    """CPU used by `pid` over the next `seconds` of wall time, in % of one core."""
    return (await cpu_percents([pid], seconds))[0]


async def cpu_percents(pids: list[int], seconds: float) -> list[float]:
    """CPU used by each of `pids` over the same next `seconds`, in % of one core."""
    cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    return [100.0 * (cpu_seconds(p) - c0) / elapsed for p, c0 in zip(pids, cpu0, strict=True)]


def load_1min() -> float:
    """The 1-minute load average (2 cores shared with other work)."""
    return round(os.getloadavg()[0], 2)


@dataclass
class Series:
    """One CPU series: median of consecutive windows, the windows, and the load average."""

    name: str
    goal_pct: float
    windows: list[float]
    load: float
    broker_windows: list[float] = field(default_factory=list)
    running: str = ""

    @property
    def median(self) -> float:
        """The figure: median of the windows."""
        return statistics.median(self.windows)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        out: dict[str, Any] = {
            "cpu_pct": round(self.median, 2),
            "windows_pct": [round(w, 2) for w in self.windows],
            "load_1min": self.load,
            "goal_pct": self.goal_pct,
            "pass": self.median < self.goal_pct,
        }
        if self.broker_windows:
            out["broker_cpu_pct"] = round(statistics.median(self.broker_windows), 2)
        if self.running:
            out["running"] = self.running
        return out


async def measure_series(
    name: str, goal: float, pids: list[int], seconds: float, windows: int
) -> Series:
    """`windows` consecutive CPU windows of the first pid (and of the others, e.g. a broker)."""
    per_pid: list[list[float]] = [[] for _ in pids]
    for _ in range(windows):
        for values, pct in zip(per_pid, await cpu_percents(pids, seconds), strict=True):
            values.append(pct)
    return Series(name, goal, per_pid[0], load_1min(), per_pid[1] if len(pids) > 1 else [])


# ---- starting the simulators --------------------------------------------------------------


def sim_args(model: str, count: int, broker: Mosquitto | None) -> list[str]:
    """Command-line arguments for `count` units of `model` (unique CX-3 serials per run)."""
    counted = ["--count", str(count)] if count > 1 else []
    if model == "es2":
        return [*ES2_ARGS, *counted]
    if model == "cx3":
        assert broker is not None
        serial = f"CX3B{time.time_ns() // 1000 % 10**9}-0001"
        return ["--broker", broker.url, "--serial", serial, *counted]
    return counted


def ready_ms(model: str, args: list[str], log: IO[bytes]) -> tuple[float, SimProcess]:
    """Start a simulator (stderr to `log`); return launch-to-READY in ms and the process."""
    t0 = time.monotonic()
    sim = SimProcess(model, args, stderr=log).start()
    return (time.monotonic() - t0) * 1000.0, sim


# ---- one feeder per model: start every output, then one heartbeat round per call ------------


class Feeder:
    """Every unit of one simulator process driven as a console would."""

    async def start_all(self) -> None:
        """Connect to every unit and start all its outputs."""
        raise NotImplementedError

    async def beat(self) -> int:
        """One heartbeat to every unit; return how many failed."""
        raise NotImplementedError

    async def close(self) -> None:
        """Disconnect (the outputs stop by watchdog or with the process)."""


class Us1Feeder(Feeder):
    """US-1 units over Modbus TCP: START at 1 W/cm², heartbeat register 6, and the console
    driver's poll: holding 0-7, input 0-15 and discrete 0-3 at 25 Hz (its default rate).

    pymodbus serialises the requests of one client, as the driver's one I/O task does.
    """

    def __init__(self, sim: SimProcess) -> None:
        self.sim = sim
        self.clients: list[AsyncModbusTcpClient] = []
        self.pollers: list[asyncio.Task[None]] = []
        self.poll_failures = 0
        self.n = 0

    async def start_all(self) -> None:
        for unit in self.sim.ready["units"]:
            host, port = split_hostport(unit["endpoints"]["modbus_tcp"])
            client = AsyncModbusTcpClient(host, port=port, timeout=1.0, retries=0)
            if not await client.connect():
                raise RuntimeError(f"cannot connect to {host}:{port}")
            self.clients.append(client)
            reply = await client.write_registers(1, START_RUNNING, device_id=1)
            if reply.isError():
                raise RuntimeError(f"START refused: {reply}")
        self.pollers = [asyncio.create_task(self._poll(c)) for c in self.clients]

    async def _poll(self, client: AsyncModbusTcpClient) -> None:
        next_tick = time.monotonic()
        while True:
            try:
                replies = [
                    await client.read_holding_registers(0, count=8, device_id=1),
                    await client.read_input_registers(0, count=16, device_id=1),
                    await client.read_discrete_inputs(0, count=4, device_id=1),
                ]
                self.poll_failures += sum(r.isError() for r in replies)
            except ModbusException:
                self.poll_failures += 1
            next_tick += US1_POLL_S
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    async def beat(self) -> int:
        self.n = (self.n + 1) & 0xFFFF
        replies = await asyncio.gather(
            *(c.write_register(6, self.n, device_id=1) for c in self.clients),
            return_exceptions=True,
        )
        failed, self.poll_failures = self.poll_failures, 0
        return failed + sum(1 for r in replies if isinstance(r, BaseException) or r.isError())

    async def close(self) -> None:
        for task in self.pollers:
            task.cancel()
        await asyncio.gather(*self.pollers, return_exceptions=True)
        for client in self.clients:
            client.close()


class Es2Link:
    """One ES-2 unit over `socket://`: requests matched to replies by seq; TEL read and counted."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = es2.SeqCounter(1)
        self.pending: dict[int, asyncio.Future[es2.Frame]] = {}
        self.telemetry_frames = 0
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> Es2Link:
        """Connect to `socket://HOST:PORT`."""
        host, port = split_hostport(url.removeprefix("socket://"))
        return cls(*await asyncio.open_connection(host, port))

    async def request(self, verb: str, *args: str | int | float) -> es2.Frame:
        """Send one request, return its reply (NAK is an error)."""
        seq = self.seq.next()
        reply: asyncio.Future[es2.Frame] = asyncio.get_running_loop().create_future()
        self.pending[seq] = reply
        self.writer.write(es2.encode(seq, verb, *args))
        try:
            frame = await asyncio.wait_for(reply, 1.0)
        finally:
            self.pending.pop(seq, None)
        if frame.verb != "ACK":
            raise RuntimeError(f"{verb} {args} answered {frame}")
        return frame

    async def _read(self) -> None:
        decoder = es2.FrameDecoder()
        while data := await self.reader.read(4096):
            for frame in decoder.feed(data):
                if frame.seq == 0:
                    self.telemetry_frames += frame.verb == "TEL"
                elif (future := self.pending.get(frame.seq)) and not future.done():
                    future.set_result(frame)

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self.task


class Es2Feeder(Feeder):
    """ES-2 units over TCP: both channels SYM 100 Hz 200 µs at 20 mA, STREAM 20, HB frames."""

    def __init__(self, sim: SimProcess) -> None:
        self.sim = sim
        self.links: list[Es2Link] = []

    async def start_all(self) -> None:
        self.links = [
            await Es2Link.open(u["endpoints"]["serial_url"]) for u in self.sim.ready["units"]
        ]
        await asyncio.gather(*(self._start(link) for link in self.links))

    @staticmethod
    async def _start(link: Es2Link) -> None:
        await link.request("WDG", WATCHDOG_MS)
        await link.request("STREAM", 20)
        for ch in (1, 2):
            await link.request("CFG", ch, "SYM", 100, 200, 0, 0, 1)
            await link.request("AMP", ch, 20)
            await link.request("RUN", ch)

    async def beat(self) -> int:
        replies = await asyncio.gather(
            *(link.request("HB") for link in self.links), return_exceptions=True
        )
        return sum(1 for r in replies if isinstance(r, BaseException))

    async def close(self) -> None:
        for link in self.links:
            await link.close()


class Cx3Feeder(Feeder):
    """CX-3 units through mosquitto: ultrasound 1 W/cm² and stimulation 20 mA, `start both`."""

    def __init__(self, sim: SimProcess, broker: Mosquitto) -> None:
        self.sim, self.broker = sim, broker
        self.roots = [str(u["endpoints"]["mqtt"]["root"]) for u in sim.ready["units"]]
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = iter(range(1, 10**9))
        self.n = 0
        self._stack = contextlib.AsyncExitStack()
        self.client: aiomqtt.Client | None = None

    async def start_all(self) -> None:
        self.client = await self._stack.enter_async_context(
            aiomqtt.Client(
                "127.0.0.1",
                self.broker.port,
                identifier="bench-sim-cost",
                socket_options=NO_DELAY,
                logger=QUIET_MQTT,  # not "There are 11 pending publish calls" per start
            )
        )
        root = self.roots[0].split("/", 1)[0]
        await self.client.subscribe(f"{root}/+/reply", qos=1)
        await self.client.subscribe(f"{root}/+/telemetry", qos=0)  # as a console: the broker
        reader = asyncio.create_task(self._read(self.client))
        self._stack.push_async_callback(self._cancel, reader)
        await asyncio.gather(*(self._start(root) for root in self.roots))

    @staticmethod
    async def _cancel(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if isinstance(message.payload, bytes) and message.topic.matches("+/+/reply"):
                reply = json.loads(message.payload)
                future = self.pending.get(reply.get("id"))
                if future is not None and not future.done():
                    future.set_result(reply)

    async def _command(self, root: str, op: str, args: dict[str, Any]) -> None:
        assert self.client is not None
        command_id = next(self.ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[command_id] = reply
        payload = json.dumps({"id": command_id, "op": op, "args": args})
        try:
            await self.client.publish(f"{root}/cmd", payload, qos=1)
            answer = await asyncio.wait_for(reply, 2.0)
        finally:
            self.pending.pop(command_id, None)
        if not answer.get("ok"):
            raise RuntimeError(f"{root} {op} {args}: {answer}")

    async def _start(self, root: str) -> None:
        await self._command(root, "set_watchdog", {"timeout_ms": WATCHDOG_MS})
        await self._command(
            root,
            "configure_us",
            {"frequency_khz": 1000, "intensity_w_cm2": 1.0, "duty_pct": 100, "time_s": 1800},
        )
        await self._command(
            root,
            "configure_stim",
            {
                "mode": "SYM",
                "freq_hz": 100,
                "pw_us": 200,
                "on_s": 0,
                "off_s": 0,
                "ramp_s": 1,
                "electrode": "PADS",
            },
        )
        await self._command(root, "set_amplitude", {"ma": 20})
        await self._command(root, "start", {"output": "both"})

    async def beat(self) -> int:
        assert self.client is not None
        self.n += 1
        payload = json.dumps({"n": self.n})
        failed = 0
        for root in self.roots:  # one at a time: QoS 0 returns once written
            try:
                await self.client.publish(f"{root}/heartbeat", payload, qos=0)
            except aiomqtt.MqttError:
                failed += 1
        return failed

    async def close(self) -> None:
        await self._stack.aclose()


def running_units(model: str, states: list[dict[str, Any]]) -> int:
    """How many units (test-port `state` replies) still run every output."""
    stim_running = {"RAMP", "ON", "OFFPHASE"}
    if model == "us1":
        return sum(s["state"] == "RUNNING" for s in states)
    if model == "es2":
        return sum(all(c["state"] in stim_running for c in s["channels"]) for s in states)
    return sum(s["us"]["state"] == "RUNNING" and s["stim"]["state"] in stim_running for s in states)


@contextlib.asynccontextmanager
async def fed(feeder: Feeder) -> AsyncIterator[None]:
    """Start every output, feed heartbeats every 100 ms while inside; raise if any failed."""
    await feeder.start_all()
    stop = asyncio.Event()

    async def loop() -> int:
        failed, next_tick = 0, time.monotonic()
        while not stop.is_set():
            failed += await feeder.beat()
            next_tick += HEARTBEAT_S
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        return failed

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        failed = await task
        if failed:
            raise RuntimeError(f"{failed} heartbeats failed")


# ---- one model ------------------------------------------------------------------------------


async def measure_model(
    model: str, opts: argparse.Namespace, broker: Mosquitto | None, log: IO[bytes]
) -> dict[str, Any]:
    """Start-up, one unit idle, 32 idle, 32 running for one model."""
    seconds, windows, settle = opts.seconds, opts.windows, opts.settle
    broker_proc = broker.proc if broker is not None and model == "cx3" else None
    extra = [broker_proc.pid] if broker_proc is not None else []
    starts = []
    for _ in range(opts.runs):
        elapsed, sim = ready_ms(model, sim_args(model, 1, broker), log)
        starts.append(elapsed)
        sim.stop()
    print(f"{model}: start-up measured; one unit idle ...", file=sys.stderr)
    _, sim = ready_ms(model, sim_args(model, 1, broker), log)
    try:
        await asyncio.sleep(settle)
        idle = await measure_series(
            "1 unit idle", GOAL_IDLE_PCT, [sim.pid, *extra], seconds, windows
        )
    finally:
        sim.stop()
    print(f"{model}: {COUNT} units idle ...", file=sys.stderr)
    count_ready, sim = ready_ms(model, sim_args(model, COUNT, broker), log)
    try:
        await asyncio.sleep(settle)
        idle32 = await measure_series(
            f"{COUNT} units idle", GOAL_COUNT_PCT, [sim.pid, *extra], seconds, windows
        )
        print(f"{model}: {COUNT} units running ...", file=sys.stderr)
        feeder = make_feeder(model, sim, broker)
        try:
            async with fed(feeder):
                await asyncio.sleep(settle)  # ramps under way, heartbeats flowing
                running32 = await measure_series(
                    f"{COUNT} units running, fed",
                    GOAL_COUNT_PCT,
                    [sim.pid, *extra],
                    seconds,
                    windows,
                )
                states = [await sim.arequest({"op": "state", "unit": i}) for i in range(COUNT)]
        finally:
            await feeder.close()
        running32.running = f"{running_units(model, states)}/{COUNT}"
    finally:
        sim.stop()
    return {
        "ready_ms": round(statistics.median(starts), 1),
        "ready_max_ms": round(max(starts), 1),
        f"count{COUNT}_ready_ms": round(count_ready, 1),
        "series": [idle, idle32, running32],
    }


def make_feeder(model: str, sim: SimProcess, broker: Mosquitto | None) -> Feeder:
    """The feeder of `model`."""
    if model == "es2":
        return Es2Feeder(sim)
    if model == "cx3":
        assert broker is not None
        return Cx3Feeder(sim, broker)
    return Us1Feeder(sim)


def table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: model, series, CPU, goal, PASS/FAIL, load, notes."""
    lines = [
        "| model | series | CPU % of a core | windows | goal | result | load 1 min | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, result in results.items():
        for s in result["series"]:
            notes = []
            if s.running:
                notes.append(f"{s.running} still running")
            if s.broker_windows:
                notes.append(f"mosquitto {statistics.median(s.broker_windows):.2f} %")
            lines.append(
                f"| {model} | {s.name} | {s.median:.2f} | "
                f"{' '.join(f'{w:.2f}' for w in s.windows)} | < {s.goal_pct:g} | "
                f"{'PASS' if s.median < s.goal_pct else 'FAIL'} | {s.load} | {'; '.join(notes)} |"
            )
    return "\n".join(lines)


async def measure(opts: argparse.Namespace, log: IO[bytes]) -> dict[str, dict[str, Any]]:
    """Every model asked for, with a broker when the CX-3 is among them."""
    broker = Mosquitto().start() if "cx3" in opts.models else None
    try:
        return {m: await measure_model(m, opts, broker, log) for m in opts.models}
    finally:
        if broker is not None:
            broker.stop()


def main() -> None:
    """Parse arguments, measure, print the table and one JSON line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="CPU window (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="start-up runs (default 5)")
    parser.add_argument("--windows", type=int, default=3, help="CPU windows per series (3)")
    parser.add_argument("--settle", type=float, default=2.0, help="s before measuring (2)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    opts = parser.parse_args()
    opts.models = [m for m in opts.models.split(",") if m]
    if unknown := set(opts.models) - set(MODELS):
        parser.error(f"unknown models: {sorted(unknown)}")
    with open(os.devnull, "wb") as log:
        results = asyncio.run(measure(opts, log))
    print(table(results))
    out: dict[str, Any] = {
        model: {
            **{k: v for k, v in r.items() if k != "series"},
            **{s.name: s.as_json() for s in r["series"]},
        }
        for model, r in results.items()
    }
    out.update(
        window_s=opts.seconds, windows=opts.windows, runs=opts.runs, date=time.strftime("%F")
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
