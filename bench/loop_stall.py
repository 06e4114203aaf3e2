"""What stalls the controller's loop around a long Modbus link loss? Stalls, named.

The demo stack (US-1 on Modbus TCP, ES-2 on a pty, CX-3 through mosquitto, a controller) with
one output of each unit running; then, in rounds, the US-1's link is dropped until its own
watchdog has stopped it (~1.2 s: the controller raises COMMS_LOSS and stops the others), and
restored; the outputs are started again. The controller's stall watch (core/stall.py) logs
what the loop thread was doing whenever the loop is more than 100 ms past a tick; this script
reads those reports from the controller's log: `blocked` (the loop was running code and not
waiting for a CPU: the innermost frames say which), `starved` (ready to run but given no CPU
for most of the stall), `idle` (waiting in its selector) and `unwatched` (the watch itself was
held: the loop thread's CPU time and its wait for a CPU say why). Beside them: the
controller's lateness statistics, its LOOP_OVERRUN alarms from the record, and the late ticks
of a bare asyncio timer loop in its own process (the floor).

    .venv/bin/python bench/loop_stall.py [--rounds 6]
    .venv/bin/python bench/loop_stall.py --hogs 3                   # + 3 busy processes
    .venv/bin/python bench/loop_stall.py --hogs 3 --rt-priority 10  # controller at SCHED_FIFO

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import StopAllCommand
from sessionconsole.demo import DemoStack
from sessionconsole.record.store import SessionStore

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benches, run as scripts
from run import Watcher, comms_loss_round, log, stall_reports, start_outputs

# A bare 10 ms asyncio timer loop alone in its own process: its late ticks (> 30 ms), with the
# wall time, so a stall of the controller can be matched with one of the machine.
FLOOR = r"""
import asyncio, json, sys, time
async def main(seconds):
    period, late, worst = 0.01, [], 0.0
    deadline = time.monotonic()
    end = deadline + seconds
    while deadline < end:
        deadline += period
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        lateness = time.monotonic() - deadline
        worst = max(worst, lateness)
        if lateness > 0.03:
            late.append([time.strftime("%H:%M:%S", time.localtime()), round(lateness * 1000)])
            deadline = time.monotonic()
    print(json.dumps({"max_ms": round(worst * 1000, 1), "late_ticks": late}))
asyncio.run(main(float(sys.argv[1])))
"""


def loop_alarms(db: Path, session_id: str) -> dict[str, int]:
    """LOOP_OVERRUN / LOOP_OVERRUN_STOP alarms raised in the session."""
    counts = {"LOOP_OVERRUN": 0, "LOOP_OVERRUN_STOP": 0}
    for e in SessionStore(db, create=False).entries(session_id):
        if e.kind == "alarm" and e.payload["change"] == "raised":
            rule = e.payload["rule_id"]
            if rule in counts:
                counts[rule] += 1
    return counts


async def drive(stack: DemoStack, rounds: int) -> dict[str, Any]:
    client = ControllerClient(str(stack.socket_path), operator="bench", client_name="bench")
    await client.connect()
    session_id = (await client.wait_snapshot()).session_id
    watcher = Watcher(stack.sims)
    await watcher.start()
    done = 0
    try:
        for i in range(rounds):
            await start_outputs(client, stack.sims)
            await asyncio.sleep(1.0)
            before = (await client.wait_snapshot()).loop.lateness_max_ms
            await comms_loss_round(stack.sims, watcher)
            await asyncio.sleep(2.0)  # the reconnect and after
            after = (await client.wait_snapshot()).loop
            log(f"round {i + 1}/{rounds}: loop max {before:.1f} -> {after.lateness_max_ms:.1f} ms")
            done = i + 1
    finally:
        await client.send(StopAllCommand())
        await watcher.close()
        final = await client.wait_snapshot()
        await client.close()
    await asyncio.sleep(0.5)  # the recorder's flush
    loop = final.loop
    return {
        "rounds_completed": done,
        "loop_lateness_p50_ms": round(loop.lateness_p50_ms, 3),
        "loop_lateness_p99_ms": round(loop.lateness_p99_ms, 3),
        "loop_lateness_max_ms": round(loop.lateness_max_ms, 3),
        "loop_ticks": loop.ticks,
        "loop_overruns": loop.overruns,
        **loop_alarms(stack.db, session_id),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="link losses (default 6)")
    parser.add_argument(
        "--rt-priority", type=int, metavar="N", help="run the controller with --rt-priority N"
    )
    parser.add_argument(
        "--hogs", type=int, default=0, metavar="N", help="N busy processes for the whole run"
    )
    args = parser.parse_args()
    if "SESSIONCONSOLE_RECORD_KEY" not in os.environ:  # a throw-away signing key
        os.environ["SESSIONCONSOLE_RECORD_KEY"] = str(
            Path(tempfile.mkdtemp(prefix="bench-key-")) / "record.key"
        )
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    rt = () if args.rt_priority is None else ("--rt-priority", str(args.rt_priority))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        with DemoStack(controller_args=rt) as stack:
            floor = subprocess.Popen(
                [sys.executable, "-c", FLOOR, str(6.0 * args.rounds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            figures = asyncio.run(drive(stack, args.rounds))
            time.sleep(0.3)  # the watch's last report
            reports = stall_reports(stack.log_path.read_text())
            floor_out, _ = floor.communicate(timeout=10.0 * args.rounds)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for report in reports:
        log(f"stall: {json.dumps(report)}")
    result = {
        **figures,
        "controller_rt_priority": args.rt_priority,
        "hogs": args.hogs,
        **{
            f"stalls_{kind}": sum(1 for r in reports if r["kind"] == kind)
            for kind in ("blocked", "starved", "idle", "unwatched")
        },
        "stalls": reports,
        "floor": json.loads(floor_out),
        "load_avg_1m_start": round(load0, 2),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
