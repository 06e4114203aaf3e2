"""Time from `demo` start to the first live values: on the TUI's US-1 panel, and on all units.

Each run starts the demo stack (mosquitto, three simulators and the controller as processes)
and the TUI (Textual's headless test driver, in this process), and stops the clock when the
panel first shows a telemetry age. A second, headless run per round (what `session run --demo`
waits for) stops it when an API client sees telemetry from every output of the three units.
Prints one JSON line: runs, median and max seconds of each.

    .venv/bin/python bench/demo_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from sessionconsole.api.client import ControllerClient
from sessionconsole.demo import DemoStack
from sessionconsole.ui.app import SessionConsoleApp


async def one_run() -> float:
    t0 = time.monotonic()
    with DemoStack() as stack:
        app = SessionConsoleApp(str(stack.socket_path), operator="bench")
        async with app.run_test(size=(100, 30)) as pilot:
            panels = app.session_screen.panels
            while not any("telemetry" in str(p.state_line.render()) for p in panels.values()):
                if time.monotonic() - t0 > 30:
                    raise TimeoutError("no live values within 30 s")
                await pilot.pause(0.01)
            return time.monotonic() - t0


async def one_headless_run() -> float:
    t0 = time.monotonic()
    with DemoStack() as stack:
        client = ControllerClient(str(stack.socket_path), operator="bench")
        await client.connect()
        try:
            while True:
                snap = await client.wait_snapshot()
                live = [d for d in snap.devices if d.telemetry_age_ms is not None]
                if len(live) == 5:
                    return time.monotonic() - t0
                if time.monotonic() - t0 > 30:
                    raise TimeoutError("not every output live within 30 s")
        finally:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times = [asyncio.run(one_run()) for _ in range(args.runs)]
    headless = [asyncio.run(one_headless_run()) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "demo_first_live_values_median_s": round(statistics.median(times), 3),
                "demo_first_live_values_max_s": round(max(times), 3),
                "demo_all_outputs_live_median_s": round(statistics.median(headless), 3),
                "demo_all_outputs_live_max_s": round(max(headless), 3),
                "runs": args.runs,
            }
        )
    )


if __name__ == "__main__":
    main()
