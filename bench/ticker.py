"""The ticker's own lateness and CPU: asyncio.sleep against the timerfd wait, side by side.

Two processes run at the same time, each a `core.ticker.Ticker` at 100 Hz alone on its event
loop, one waiting with `asyncio.sleep` (the selector rounds waits up to whole milliseconds),
the other on a timerfd (Linux). Each also runs a 25 Hz task beside the ticker, as a driver's
poll would. Both see the same machine at the same moments, so compare them with each other
rather than with other runs. Reported per wait: lateness p50/p99/max over every tick, ticks,
overruns (> 5 periods), and CPU (user + system) as % of one core.

    .venv/bin/python bench/ticker.py [--seconds 30]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from sessionconsole.core.ticker import Ticker, WaitKind


async def measure(wait: WaitKind, seconds: float) -> dict[str, Any]:
    """One ticker for `seconds`; its lateness and this process's CPU."""
    late: list[float] = []
    ticker = Ticker(0.01, lambda now: late.append(ticker.last_lateness_s), wait=wait)

    polls = 0

    async def driver_like() -> None:
        nonlocal polls
        while True:
            await asyncio.sleep(0.04)
            polls += 1

    beside = asyncio.create_task(driver_like())
    asyncio.get_running_loop().call_later(seconds, ticker.stop)
    cpu0, t0 = time.process_time(), time.monotonic()
    await ticker.run()
    cpu = 100 * (time.process_time() - cpu0) / (time.monotonic() - t0)
    beside.cancel()
    late.sort()

    def pct(q: float) -> float:
        return round(late[min(len(late) - 1, int(q * len(late)))] * 1000, 3)

    return {
        "wait": ticker.wait_used,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(late[-1] * 1000, 3),
        "ticks": len(late),
        "overruns": ticker.stats.overruns,
        "cpu_pct": round(cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--one", choices=["sleep", "timerfd"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one wait kind
        print(json.dumps(asyncio.run(measure(args.one, args.seconds))))
        return
    load0 = os.getloadavg()[0]
    children = {
        wait: subprocess.Popen(
            [sys.executable, __file__, "--one", wait, "--seconds", str(args.seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for wait in ("sleep", "timerfd")
    }
    result: dict[str, Any] = {}
    for wait, child in children.items():
        out, _ = child.communicate(timeout=args.seconds + 30)
        for key, value in json.loads(out).items():
            result[f"{wait}_{key}"] = value
    result.update(
        load_avg_1m_start=round(load0, 2),
        load_avg_1m_end=round(os.getloadavg()[0], 2),
        cpus=os.cpu_count(),
        seconds=args.seconds,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
