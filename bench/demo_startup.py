"""Time from `demo` start to the first live values on the TUI's US-1 panel.

Each run starts the demo stack (simulator + controller processes) and the TUI (Textual's
headless test driver, in this process), and stops the clock when the panel first shows a
telemetry age. Prints one JSON line: runs, median and max seconds.

    .venv/bin/python bench/demo_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times = [asyncio.run(one_run()) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "demo_first_live_values_median_s": round(statistics.median(times), 3),
                "demo_first_live_values_max_s": round(max(times), 3),
                "runs": args.runs,
            }
        )
    )


if __name__ == "__main__":
    main()
