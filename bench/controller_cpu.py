"""The controller's CPU in a steady session: the demo stack with one output of each unit running.

Starts the demo stack (US-1 on Modbus TCP, ES-2 on a pty, CX-3 through mosquitto, a
controller), starts one output of each unit (as bench/run.py does), waits 2 s, then reads the
controller's CPU time (utime + stime from /proc) over `--seconds`, with one API client
attached and no TUI. Alternate it with another checkout (PYTHONPATH) to compare two versions
of the controller: the machine's noise moves each figure by ~0.5 % of a core.

    .venv/bin/python bench/controller_cpu.py [--seconds 20] [--rt-priority N]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import StopAllCommand
from sessionconsole.demo import DemoStack

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benches, run as scripts
from run import start_outputs
from sim_cost import cpu_seconds


async def measure(stack: DemoStack, seconds: float) -> dict[str, Any]:
    client = ControllerClient(str(stack.socket_path), operator="bench", client_name="bench")
    await client.connect()
    await start_outputs(client, stack.sims)
    await asyncio.sleep(2.0)
    assert stack.controller is not None
    cpu0, t0 = cpu_seconds(stack.controller.pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = 100 * (cpu_seconds(stack.controller.pid) - cpu0) / (time.monotonic() - t0)
    snap = await client.wait_snapshot()
    await client.send(StopAllCommand())
    await client.close()
    return {
        "controller_cpu_pct": round(cpu, 2),
        "outputs_running": sum(1 for d in snap.devices if d.output_active),
        "loop_lateness_p99_ms": round(snap.loop.lateness_p99_ms, 3),
        "loop_lateness_max_ms": round(snap.loop.lateness_max_ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rt-priority", type=int, metavar="N")
    args = parser.parse_args()
    if "SESSIONCONSOLE_RECORD_KEY" not in os.environ:  # a throw-away signing key
        os.environ["SESSIONCONSOLE_RECORD_KEY"] = str(
            Path(tempfile.mkdtemp(prefix="bench-key-")) / "record.key"
        )
    load0 = os.getloadavg()[0]
    options: dict[str, Any] = {}
    if args.rt_priority is not None:
        options["controller_args"] = ("--rt-priority", str(args.rt_priority))
    with DemoStack(**options) as stack:
        figures = asyncio.run(measure(stack, args.seconds))
    figures.update(
        rt_priority=args.rt_priority,
        seconds=args.seconds,
        load_avg_1m_start=round(load0, 2),
        load_avg_1m_end=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
