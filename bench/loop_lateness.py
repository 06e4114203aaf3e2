"""Core-loop lateness of the controller while a US-1 output runs and the TUI is attached.

Starts the US-1 simulator and a controller (the demo stack), runs the TUI in its own process
(Textual's headless driver: it composes, lays out and renders at full rate but writes no
terminal), starts an ultrasound output, waits, and reads the controller's own lateness
statistics (p50/p99 over the last 60 s window, max since start). For a floor, a bare asyncio
10 ms timer loop runs alone in another process during the same run.

    .venv/bin/python bench/loop_lateness.py [--seconds 65]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import ConfigureCommand, StartCommand, StopAllCommand
from sessionconsole.demo import DemoStack
from sessionconsole.model.settings import UltrasoundSettings

FLOOR = r"""
import asyncio, json, sys, time
async def main(seconds):
    period, late = 0.01, []
    deadline = time.monotonic()
    end = deadline + seconds
    while deadline < end:
        deadline += period
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        late.append(max(0.0, time.monotonic() - deadline))
    late.sort()
    pct = lambda q: late[min(len(late) - 1, int(q * len(late)))] * 1000
    print(json.dumps({"p50": pct(0.5), "p99": pct(0.99), "max": late[-1] * 1000}))
asyncio.run(main(float(sys.argv[1])))
"""

TUI = (
    "import sys; from sessionconsole.ui.app import SessionConsoleApp; "
    "SessionConsoleApp(sys.argv[1], 'bench').run(headless=True)"
)


async def drive(stack: DemoStack, seconds: float) -> dict[str, float]:
    client = ControllerClient(str(stack.socket_path), operator="bench", client_name="bench")
    await client.connect()
    settings = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=50, time_s=900)
    assert (await client.send(ConfigureCommand(device="us1", settings=settings))).ok
    await asyncio.sleep(0.3)
    reply = await client.send(StartCommand(device="us1"))
    assert reply.ok, reply.error
    await asyncio.sleep(seconds)
    snap = await client.wait_snapshot()
    await client.send(StopAllCommand())
    await client.close()
    loop = snap.loop
    return {
        "loop_lateness_p50_ms": round(loop.lateness_p50_ms, 3),
        "loop_lateness_p99_ms": round(loop.lateness_p99_ms, 3),
        "loop_lateness_max_ms": round(loop.lateness_max_ms, 3),
        "loop_ticks": loop.ticks,
        "loop_overruns": loop.overruns,
        "device_state_at_end": snap.devices[0].state or "?",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=65.0, help="measurement time (>= 60)")
    args = parser.parse_args()
    with DemoStack() as stack:
        tui = subprocess.Popen(
            [sys.executable, "-c", TUI, str(stack.socket_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        floor = subprocess.Popen(
            [sys.executable, "-c", FLOOR, str(args.seconds)], stdout=subprocess.PIPE, text=True
        )
        try:
            figures = asyncio.run(drive(stack, args.seconds))
            floor_out, _ = floor.communicate(timeout=args.seconds + 30)
            tui_alive = tui.poll() is None
        finally:
            tui.terminate()
            tui.wait(10)
    bare = json.loads(floor_out)
    result = {
        **figures,
        "python_timer_lateness_p50_ms": round(bare["p50"], 3),
        "python_timer_lateness_p99_ms": round(bare["p99"], 3),
        "python_timer_lateness_max_ms": round(bare["max"], 3),
        "tui_running_throughout": tui_alive,
        "seconds": args.seconds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
