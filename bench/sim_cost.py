"""What a US-1 simulator costs: idle CPU, a `--count 32` process idle and running, start-up.

CPU is the simulator process's own utime + stime from /proc/PID/stat over a wall-clock window
(so 100 % is one core). "Running" means every one of the 32 units is RUNNING at 1 W/cm² and
this script writes a heartbeat to each over Modbus TCP every 100 ms (watchdog 1000 ms), as a
console would; the script's own CPU is not counted. Start-up is the time from launching
`python -m device_sims us1` to its READY line. Prints one JSON line at the end.

    .venv/bin/python bench/sim_cost.py [--seconds 10] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import IO

from pymodbus.client import AsyncModbusTcpClient

from sessionconsole.testing import SimProcess, split_hostport

CLK_TCK = os.sysconf("SC_CLK_TCK")
HEARTBEAT_S = 0.1
START_RUNNING = [100, 100, 100, 1800, 1000, 0, 1]  # registers 1-7: 1 W/cm², ..., START


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        after_name = fh.read().rpartition(")")[2].split()
    return (int(after_name[11]) + int(after_name[12])) / CLK_TCK


async def cpu_percent(pid: int, seconds: float) -> float:
    """CPU used by `pid` over the next `seconds` of wall time, in % of one core."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def ready_ms(args: list[str], log: IO[bytes]) -> tuple[float, SimProcess]:
    """Start a simulator (stderr to `log`); return launch-to-READY in ms and the process."""
    t0 = time.monotonic()
    sim = SimProcess("us1", args, stderr=log).start()
    return (time.monotonic() - t0) * 1000.0, sim


async def connect_all(sim: SimProcess) -> list[AsyncModbusTcpClient]:
    """One Modbus TCP client per unit of `sim`."""
    clients = []
    for unit in sim.ready["units"]:
        host, port = split_hostport(unit["endpoints"]["modbus_tcp"])
        client = AsyncModbusTcpClient(host, port=port, timeout=1.0, retries=0)
        if not await client.connect():
            raise RuntimeError(f"cannot connect to {host}:{port}")
        clients.append(client)
    return clients


async def heartbeats(clients: list[AsyncModbusTcpClient], stop: asyncio.Event) -> int:
    """Write register 6 of every unit every 100 ms until `stop`; return the writes refused."""
    refused, beat, next_tick = 0, 0, time.monotonic()
    while not stop.is_set():
        beat = (beat + 1) & 0xFFFF
        replies = await asyncio.gather(
            *(c.write_register(6, beat, device_id=1) for c in clients), return_exceptions=True
        )
        refused += sum(1 for r in replies if isinstance(r, BaseException) or r.isError())
        next_tick += HEARTBEAT_S
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    return refused


async def count32_running_cpu(sim: SimProcess, seconds: float) -> tuple[float, int]:
    """Start all units, feed them for `seconds`; return CPU % and the units still RUNNING."""
    clients = await connect_all(sim)
    try:
        for client in clients:
            reply = await client.write_registers(1, START_RUNNING, device_id=1)
            if reply.isError():
                raise RuntimeError(f"START refused: {reply}")
        stop = asyncio.Event()
        feeder = asyncio.create_task(heartbeats(clients, stop))
        await asyncio.sleep(1.0)  # settle: ramps under way, heartbeats flowing
        cpu = await cpu_percent(sim.pid, seconds)
        stop.set()
        if refused := await feeder:
            raise RuntimeError(f"{refused} heartbeat writes failed")
        states = [(await c.read_input_registers(0, count=1, device_id=1)) for c in clients]
        running = sum(1 for s in states if not s.isError() and s.registers[0] == 1)
        return cpu, running
    finally:
        for client in clients:
            client.close()


async def measure(seconds: float, runs: int, log: IO[bytes]) -> dict[str, float | int]:
    """Run every measurement; return the JSON-ready results."""
    starts = []
    for _ in range(runs):
        elapsed, sim = ready_ms([], log)
        starts.append(elapsed)
        sim.stop()
    print("start-up measured; one unit idle ...", file=sys.stderr)
    _, sim = ready_ms([], log)
    try:
        await asyncio.sleep(1.0)
        idle = await cpu_percent(sim.pid, seconds)
    finally:
        sim.stop()
    print("32 units idle ...", file=sys.stderr)
    count32_ready, sim = ready_ms(["--count", "32"], log)
    try:
        await asyncio.sleep(1.0)
        idle32 = await cpu_percent(sim.pid, seconds)
        print("32 units running ...", file=sys.stderr)
        running32, still_running = await count32_running_cpu(sim, seconds)
    finally:
        sim.stop()
    return {
        "sim_idle_cpu_pct": round(idle, 2),
        "count32_idle_cpu_pct": round(idle32, 2),
        "count32_running_cpu_pct": round(running32, 2),
        "count32_units_still_running": still_running,
        "us1_ready_ms": round(statistics.median(starts), 1),
        "us1_ready_max_ms": round(max(starts), 1),
        "count32_ready_ms": round(count32_ready, 1),
        "window_s": seconds,
        "runs": runs,
    }


def main() -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="CPU window (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="start-up runs (default 5)")
    args = parser.parse_args()
    with open(os.devnull, "wb") as log:
        print(json.dumps(asyncio.run(measure(args.seconds, args.runs, log))))


if __name__ == "__main__":
    main()
