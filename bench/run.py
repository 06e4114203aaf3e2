"""Issue 5's performance entry point: every figure in one run, one JSON line at the end.

One demo stack (mosquitto, the US-1 on Modbus TCP, the ES-2 on a pty, the CX-3 through
mosquitto, and a controller, as processes), a headless TUI in its own process for the whole
run (as `loop_lateness.py`), a second TUI in this process driven by Textual's Pilot for the
STOP key, and the bare asyncio timer loop of `loop_lateness.py` in its own process (the
floor). While outputs run on all three units it measures, in rounds:

- stop key to wire: Pilot presses F12; the clock stops when each simulator's test port shows
  its output off. Spans key -> TUI -> API socket -> controller tick -> driver -> transport
  -> simulator, plus up to one round of polling (~1-3 ms: a separate `--watch` process polls
  the three test ports in turn, so no event loop of ours delays the poll).
- fault to stop: `patient_stop` injected on the US-1 (its hand switch); the US-1 stops
  itself, the controller must stop the ES-2 and the CX-3 (PATIENT_STOP stops every output).
  Per transport: injection to the simulator showing its output off (spans the US-1's next
  telemetry poll, the controller's tick and stop, the transport). From the session record:
  injection to the PATIENT_STOP `alarm` entry and to the ES-2's `stop_sent` entry (both
  stamped in the tick that raises the alarm and issues the stops). The arrival of the
  fault's telemetry is not recorded, so "telemetry in -> stop written" is not measured on
  its own; the injection-based figures are upper bounds of it.
- comms loss: the US-1's link set to `drop`; injection to COMMS_LOSS raised in the record,
  beside the configured stale limit.
- loop lateness p50/p99/max: the controller's own statistics at the end (p50/p99 over its
  last 60 s window), beside the floor.
- loop stalls: the controller's stall watch (core/stall.py) verdicts from its log, by kind
  (`loop_stalls_*`; where a stall was `blocked`, the innermost frames of the loop thread).
- (full run only) 32 US-1 units from one `--count 32` simulator on one controller: loop
  lateness and the controller's CPU from /proc.

    .venv/bin/python bench/run.py [--quick]      # --quick: under 60 s
    .venv/bin/python bench/run.py --quick --rt-priority 10   # controller at SCHED_FIFO 10
    .venv/bin/python bench/run.py --quick --tui  # + tui_perf.py's quick figures as tui_*

Progress goes to stderr; the last line on stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import (
    AcknowledgeCommand,
    ConfigureCommand,
    StartCommand,
    StopAllCommand,
)
from sessionconsole.demo import (
    DEMO_PATIENT,
    DemoStack,
    spawn_controller,
    stop_controller,
    wait_for_socket,
)
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import load_room
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.record.store import SessionStore
from sessionconsole.testing import SimProcess, split_hostport

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benches, run as scripts
from loop_lateness import FLOOR, TUI
from sim_cost import cpu_seconds

GOALS = {
    "loop_lateness_p99_ms": 1.5,
    "loop_lateness_max_ms": 10.0,
    "fault_to_stop_p99_ms": 12.0,
    "stop_key_to_wire_p99_ms": 30.0,
}
OUTPUTS = {"us1": "us1", "es2": "es2.ch1", "cx3": "cx3.us"}  # unit -> the output we run


STALLED = re.compile(r"core loop stalled \(#(\d+)\)")
OVER = re.compile(
    r"core loop stall #(\d+) over \(at least (\d+) ms late\): (\w+); meanwhile the loop "
    r"thread used (\d+) ms of CPU and waited (\S+) ms for one"
)
HELD = re.compile(
    r"stall watch was held (\d+) ms: meanwhile the loop thread used (\d+) ms of CPU "
    r"and waited (\S+) ms for one, the process used (\d+) ms"
)


def _int_or_none(text: str) -> int | None:
    return None if text == "?" else int(text)


def at(block: str) -> str:
    """The log record's wall time, HH:MM:SS."""
    found = re.search(r"\d\d:\d\d:\d\d", block)
    return found.group(0) if found else "?"


def stall_reports(log_text: str) -> list[dict[str, Any]]:
    """The stall watch's verdicts in the controller's log (core/stall.py): kind, how late,
    the loop thread's CPU and wait for a CPU, and the innermost frames of its first sample."""
    reports: list[dict[str, Any]] = []
    where: dict[str, list[str]] = {}
    for block in log_text.split("\n20"):  # every log record starts with the year
        if found := STALLED.search(block):
            stack = block.split("stack:")[1].split("other threads")[0]
            frames = [line.strip() for line in stack.splitlines() if line.strip()]
            where.setdefault(found.group(1), frames[-4:])
        elif found := OVER.search(block):
            number, late, kind, cpu, waited = found.groups()
            reports.append(
                {
                    "at": at(block),
                    "kind": kind,
                    "late_ms": int(late),
                    "loop_cpu_ms": int(cpu),
                    "loop_waited_for_cpu_ms": _int_or_none(waited),
                    "where": where.get(number, []),
                }
            )
        elif found := HELD.search(block):
            held, loop_cpu, waited, cpu = found.groups()
            reports.append(
                {
                    "at": at(block),
                    "kind": "unwatched",
                    "late_ms": int(held),
                    "loop_cpu_ms": int(loop_cpu),
                    "loop_waited_for_cpu_ms": _int_or_none(waited),
                    "cpu_ms": int(cpu),
                }
            )
    return reports


def log(text: str) -> None:
    print(f"[bench/run] {text}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank), None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def output_on(unit: str, state: dict[str, Any]) -> bool:
    """Whether the simulator's output stage drives the output we run."""
    if unit == "us1":
        return bool(state["physics"]["output_active"])
    if unit == "es2":
        return state["channels"][0]["state"] in ("RAMP", "ON", "OFFPHASE")
    return bool(state["us"]["output_active"])


async def start_outputs(client: ControllerClient, sims: dict[str, SimProcess]) -> None:
    """Acknowledge, configure and start one output of each unit; wait until all drive."""
    await client.send(AcknowledgeCommand())
    settings: dict[str, Any] = {
        "us1": UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=50, time_s=900),
        "es2.ch1": ChannelSetup(
            waveform=StimulationSettings(mode="SYM", freq_hz=80, pw_us=200, ramp_s=0),
            amplitude_ma=8.0,
        ),
        "cx3.us": UltrasoundSettings(
            frequency_khz=3000, intensity_w_cm2=0.8, duty_pct=50, time_s=900
        ),
    }
    deadline = time.monotonic() + 10
    while True:
        states = {u: await sims[u].arequest({"op": "state"}) for u in OUTPUTS}
        off = [u for u in OUTPUTS if not output_on(u, states[u])]
        if not off:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"outputs not on within 10 s: {off}")
        await client.send(AcknowledgeCommand())
        for unit in off:
            device = OUTPUTS[unit]
            await client.send(ConfigureCommand(device=device, settings=settings[device]))
            reply = await client.send(StartCommand(device=device))
            if not reply.ok:
                log(f"start {device} refused: {reply.error} (retrying)")
        await asyncio.sleep(0.5)


def watch(specs: list[str]) -> None:
    """`--watch unit=host:port ...`: the poller, in its own process so no event loop of ours
    (the Pilot TUI blocks its loop for up to ~150 ms at times) delays it. For each line of
    unit names on stdin: print "armed", poll those units' test ports in turn on kept-open
    connections until each shows its output off, print {unit: CLOCK_MONOTONIC s when seen}."""
    conns = {}
    for spec in specs:
        unit, _, control = spec.partition("=")
        sock = socket.create_connection(split_hostport(control), timeout=2.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns[unit] = sock.makefile("rwb")
    for line in sys.stdin:
        pending, seen = line.split(), {}
        print("armed", flush=True)
        deadline = time.monotonic() + 5.0
        while pending and time.monotonic() < deadline:
            for unit in list(pending):
                conn = conns[unit]
                conn.write(b'{"op": "state"}\n')
                conn.flush()
                state = json.loads(conn.readline())
                if not output_on(unit, state):
                    seen[unit] = time.monotonic()
                    pending.remove(unit)
        print(json.dumps(seen), flush=True)


class Watcher:
    """The `--watch` process, driven from our event loop."""

    def __init__(self, sims: dict[str, SimProcess]) -> None:
        self.sims = sims
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        specs = [f"{unit}={sim.control}" for unit, sim in self.sims.items()]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--watch",
            *specs,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def arm(self, units: list[str]) -> None:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((" ".join(units) + "\n").encode())
        await self.proc.stdin.drain()
        assert (await self.proc.stdout.readline()).strip() == b"armed"

    async def offs(self, t0: float, units: list[str]) -> dict[str, float]:
        """ms from `t0` until each unit was seen off."""
        assert self.proc is not None and self.proc.stdout
        seen = json.loads(await self.proc.stdout.readline())
        if missing := set(units) - set(seen):
            raise TimeoutError(f"still on 5 s after t0: {sorted(missing)}")
        return {u: (seen[u] - t0) * 1000 for u in units}

    async def close(self) -> None:
        if self.proc is not None and self.proc.stdin:
            self.proc.stdin.close()
            await self.proc.wait()


async def stop_key_round(pilot: Any, watcher: Watcher) -> dict[str, float]:
    await watcher.arm(list(OUTPUTS))
    t0 = time.monotonic()
    await pilot.press("f12")
    return await watcher.offs(t0, list(OUTPUTS))


async def fault_round(
    sims: dict[str, SimProcess], watcher: Watcher
) -> tuple[float, dict[str, float]]:
    await watcher.arm(list(OUTPUTS))
    t0 = time.monotonic()
    await sims["us1"].arequest({"op": "inject", "fault": "patient_stop"})
    return t0, await watcher.offs(t0, list(OUTPUTS))


async def comms_loss_round(sims: dict[str, SimProcess], watcher: Watcher) -> float:
    """Drop the US-1's link until the controller has stopped the others and the US-1's own
    watchdog has stopped it: restoring the link while it still drives makes STOP_NOT_OBEYED
    (a latched alarm only a biomedical clear lifts), as it should."""
    await watcher.arm(["cx3", "us1"])
    t0 = time.monotonic()
    await sims["us1"].arequest({"op": "link", "mode": "drop"})
    await watcher.offs(t0, ["cx3", "us1"])  # COMMS_LOSS stops every output
    await sims["us1"].arequest({"op": "link", "mode": "ok"})
    return t0


def record_figures(
    db: Path, session_id: str, faults: list[float], losses: list[float]
) -> dict[str, Any]:
    """Injection -> alarm / stop_sent entries, from the controller's own stamps."""
    entries = SessionStore(db, create=False).entries(session_id)

    def after(t0: float, pick: Any) -> float | None:
        t0_ns = int(t0 * 1e9)
        end_ns = t0_ns + 2_000_000_000  # an entry later than 2 s belongs to another step
        hits = [e.mono_ns for e in entries if t0_ns <= e.mono_ns < end_ns and pick(e)]
        return (min(hits) - t0_ns) / 1e6 if hits else None

    def raised(rule: str) -> Any:
        return lambda e: (
            e.kind == "alarm" and e.payload["rule_id"] == rule and e.payload["change"] == "raised"
        )

    to_alarm = [after(t, raised("PATIENT_STOP")) for t in faults]
    to_stop = [
        after(
            t,
            lambda e: (
                e.kind == "stop_sent"
                and e.payload["device"] == "es2.ch1"
                and e.payload["reason"].startswith("PATIENT_STOP")
            ),
        )
        for t in faults
    ]
    to_loss = [after(t, raised("COMMS_LOSS")) for t in losses]
    in_to_out: list[float] = []  # the fault's reading arriving -> each stop handed to a driver
    for t in faults:
        t0_ns, end_ns = int(t * 1e9), int(t * 1e9) + 2_000_000_000
        alarm = next(
            (e for e in entries if t0_ns <= e.mono_ns < end_ns and raised("PATIENT_STOP")(e)),
            None,
        )
        arrived = None if alarm is None else alarm.payload.get("reading_received_mono_ns")
        if arrived is None:
            continue
        for unit in ("es2.ch1", "cx3.stim"):
            stop = next(
                (
                    e
                    for e in entries
                    if t0_ns <= e.mono_ns < end_ns
                    and e.kind == "stop_sent"
                    and e.payload["device"] == unit
                    and e.payload["reason"].startswith("PATIENT_STOP")
                ),
                None,
            )
            if stop is not None:
                in_to_out.append((stop.mono_ns - arrived) / 1e6)
    return {
        "telemetry_in_to_stop_out_ms": [round(x, 2) for x in in_to_out],
        "fault_inject_to_alarm_raised_ms": [round(x, 2) for x in to_alarm if x is not None],
        "fault_inject_to_stop_sent_entry_ms": [round(x, 2) for x in to_stop if x is not None],
        "comms_loss_inject_to_alarm_ms": [round(x, 2) for x in to_loss if x is not None],
        "stop_not_obeyed_raised": sum(1 for e in entries if raised("STOP_NOT_OBEYED")(e)),
    }


async def drive(stack: DemoStack, rounds: int, settle_s: float) -> dict[str, Any]:
    from sessionconsole.ui.app import SessionConsoleApp

    client = ControllerClient(str(stack.socket_path), operator="bench", client_name="bench")
    await client.connect()
    snap = await client.wait_snapshot()
    sims = stack.sims
    key: dict[str, list[float]] = {u: [] for u in OUTPUTS}
    fault: dict[str, list[float]] = {u: [] for u in OUTPUTS}
    fault_t0s: list[float] = []
    loss_t0s: list[float] = []
    watcher = Watcher(sims)
    await watcher.start()
    app = SessionConsoleApp(str(stack.socket_path), operator="bench")
    async with app.run_test(size=(100, 30)) as pilot:
        done, aborted = 0, None
        for i in range(rounds):
            try:
                await start_outputs(client, sims)
                await asyncio.sleep(settle_s)
                for unit, ms in (await stop_key_round(pilot, watcher)).items():
                    key[unit].append(ms)
                await start_outputs(client, sims)
                await asyncio.sleep(settle_s)
                t0, offs = await fault_round(sims, watcher)
                fault_t0s.append(t0)
                for unit, ms in offs.items():
                    fault[unit].append(ms)
                await sims["us1"].arequest({"op": "clear"})
                await start_outputs(client, sims)
                await asyncio.sleep(settle_s)
                loss_t0s.append(await comms_loss_round(sims, watcher))
                last = {u: (round(key[u][-1], 1), round(fault[u][-1], 1)) for u in OUTPUTS}
                log(f"round {i + 1}/{rounds}: unit: (stop key ms, fault ms) {last}")
            except TimeoutError as exc:  # e.g. a STOP_NOT_OBEYED lock-out: biomedical clear
                held = sorted(
                    {a.rule_id for a in (await client.wait_snapshot()).alarms if a.active}
                )
                aborted = f"round {i + 1}: {exc}; active alarms {held}"
                log(f"aborted: {aborted}")
                break
            done = i + 1
        await client.send(StopAllCommand())
    await watcher.close()
    final = await client.wait_snapshot()
    await client.close()
    await asyncio.sleep(0.5)  # the recorder's flush
    rec = record_figures(stack.db, snap.session_id, fault_t0s, loss_t0s)
    key_all = [x for v in key.values() for x in v]
    ctrl_fault = fault["es2"] + fault["cx3"]  # stopped by the controller, not by themselves
    loop = final.loop
    return {
        "loop_lateness_p50_ms": round(loop.lateness_p50_ms, 3),
        "loop_lateness_p99_ms": round(loop.lateness_p99_ms, 3),
        "loop_lateness_max_ms": round(loop.lateness_max_ms, 3),
        "loop_ticks": loop.ticks,
        "loop_overruns": loop.overruns,
        "stop_key_to_wire_p50_ms": pct(key_all, 0.5),
        "stop_key_to_wire_p99_ms": pct(key_all, 0.99),
        **{f"stop_key_to_wire_{u}_p50_ms": pct(v, 0.5) for u, v in key.items()},
        **{f"stop_key_to_wire_{u}_max_ms": pct(v, 1.0) for u, v in key.items()},
        # The figure: the fault's telemetry arriving (the driver's stamp) to the stop
        # handed to the ES-2's and CX-3's drivers (the controller's stamp), from the record.
        "fault_to_stop_p50_ms": pct(rec["telemetry_in_to_stop_out_ms"], 0.5),
        "fault_to_stop_p99_ms": pct(rec["telemetry_in_to_stop_out_ms"], 0.99),
        "fault_to_stop_max_ms": pct(rec["telemetry_in_to_stop_out_ms"], 1.0),
        # End to end: injection to the simulators showing the output off (includes the US-1's
        # telemetry poll, up to 40 ms, and the transports).
        "fault_inject_to_sim_off_p50_ms": pct(ctrl_fault, 0.5),
        "fault_inject_to_sim_off_p99_ms": pct(ctrl_fault, 0.99),
        **{f"fault_inject_to_sim_off_{u}_p50_ms": pct(v, 0.5) for u, v in fault.items()},
        **{f"fault_inject_to_sim_off_{u}_max_ms": pct(v, 1.0) for u, v in fault.items()},
        "fault_inject_to_alarm_raised_p50_ms": pct(rec["fault_inject_to_alarm_raised_ms"], 0.5),
        "fault_inject_to_alarm_raised_max_ms": pct(rec["fault_inject_to_alarm_raised_ms"], 1.0),
        "fault_inject_to_stop_sent_entry_p50_ms": pct(
            rec["fault_inject_to_stop_sent_entry_ms"], 0.5
        ),
        "comms_loss_stale_limit_ms": round(
            load_room(stack.room_path)[1]["us1"].link.stale_limit_s * 1000, 1
        ),
        "comms_loss_detect_p50_ms": pct(rec["comms_loss_inject_to_alarm_ms"], 0.5),
        "comms_loss_detect_max_ms": pct(rec["comms_loss_inject_to_alarm_ms"], 1.0),
        "rounds": rounds,
        "rounds_completed": done,
        "stop_not_obeyed_raised": rec["stop_not_obeyed_raised"],
        "aborted": aborted,
    }


async def units32(socket_path: Path, controller_pid: int, window_s: float) -> dict[str, Any]:
    """Start every output of the 32-unit room, then CPU over `window_s` and the loop stats."""
    client = ControllerClient(str(socket_path), operator="bench", client_name="bench")
    await client.connect()
    snap = await client.wait_snapshot()
    settings = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=50, time_s=900)
    for dev in snap.devices:
        await client.send(ConfigureCommand(device=dev.device, settings=settings))
    await asyncio.sleep(0.5)
    refused = 0
    for dev in snap.devices:
        refused += not (await client.send(StartCommand(device=dev.device))).ok
    await asyncio.sleep(2.0)  # ramps under way
    cpu0, t0 = cpu_seconds(controller_pid), time.monotonic()
    await asyncio.sleep(window_s)
    cpu = 100 * (cpu_seconds(controller_pid) - cpu0) / (time.monotonic() - t0)
    snap = await client.wait_snapshot()
    await client.send(StopAllCommand())
    await client.close()
    running = sum(1 for d in snap.devices if d.output_active)
    loop = snap.loop
    return {
        "units32_outputs_running": running,
        "units32_start_refused": refused,
        "units32_loop_lateness_p50_ms": round(loop.lateness_p50_ms, 3),
        "units32_loop_lateness_p99_ms": round(loop.lateness_p99_ms, 3),
        "units32_loop_lateness_max_ms": round(loop.lateness_max_ms, 3),
        "units32_loop_overruns": loop.overruns,
        "units32_controller_cpu_pct": round(cpu, 1),
        "units32_controller_cpu_pct_per_unit": round(cpu / 32, 2),
        "units32_window_s": window_s,
    }


def run_units32(window_s: float) -> dict[str, Any]:
    """32 US-1 units from one `--count 32` simulator, a room of 32 on one controller."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-32-"))
    profile = (config_dir() / "profiles" / "us1-tcp.toml").resolve()
    with (
        open(workdir / "sims.log", "wb") as sim_log,
        SimProcess("us1", ["--count", "32"], stderr=sim_log) as sim,
    ):
        room = 'name = "32 units"\n'
        for i, unit in enumerate(sim.ready["units"]):
            port = split_hostport(unit["endpoints"]["modbus_tcp"])[1]
            room += f'\n[devices.us{i:02d}]\nprofile = "{profile}"\n[devices.us{i:02d}.link]\n'
            room += f"port = {port}\n"
        (workdir / "room.toml").write_text(room)
        socket_path = workdir / "api.sock"
        controller = spawn_controller(
            workdir / "room.toml",
            workdir / "sessions.db",
            socket_path,
            (workdir / "controller.log").open("ab"),
            "bench",
            DEMO_PATIENT,
        )
        try:
            wait_for_socket(controller, socket_path, workdir / "controller.log", 30.0)
            return asyncio.run(units32(socket_path, controller.pid, window_s))
        finally:
            stop_controller(controller)


def stall_counts(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """How many stalls of each kind the controller's stall watch reported; where the loop
    was running code (a blocking call of ours), the innermost frames of each."""
    counts: dict[str, Any] = {
        f"loop_stalls_{kind}": sum(1 for r in reports if r["kind"] == kind)
        for kind in ("blocked", "starved", "idle", "unwatched")
    }
    counts["loop_stalls_blocked_where"] = [r["where"] for r in reports if r["kind"] == "blocked"]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, under 60 s")
    parser.add_argument(
        "--rt-priority", type=int, metavar="N", help="run the controller with --rt-priority N"
    )
    parser.add_argument("--units32", action="store_true", help="only the 32-unit figures")
    parser.add_argument(
        "--tui", action="store_true", help="then tui_perf.py --quick on its own stack (~25 s)"
    )
    parser.add_argument("--watch", nargs="+", help=argparse.SUPPRESS)  # the poller process
    args = parser.parse_args()
    if args.watch:
        watch(args.watch)
        return
    if args.units32:
        print(json.dumps(run_units32(10.0 if args.quick else 30.0)))
        return
    rounds = 4 if args.quick else 20
    t_start = time.monotonic()
    if "SESSIONCONSOLE_RECORD_KEY" not in os.environ:  # a throw-away signing key
        key_dir = tempfile.mkdtemp(prefix="bench-key-")
        os.environ["SESSIONCONSOLE_RECORD_KEY"] = str(Path(key_dir) / "record.key")
    log("starting the demo stack, the headless TUI and the floor")
    load0 = os.getloadavg()[0]
    rt = () if args.rt_priority is None else ("--rt-priority", str(args.rt_priority))
    with DemoStack(controller_args=rt) as stack:
        tui = subprocess.Popen(
            [sys.executable, "-c", TUI, str(stack.socket_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        floor_s = 25.0 if args.quick else 180.0  # about as long as the rounds take
        floor = subprocess.Popen(
            [sys.executable, "-c", FLOOR, str(floor_s)], stdout=subprocess.PIPE, text=True
        )
        cpu0 = cpu_seconds(stack.controller.pid)  # type: ignore[union-attr]
        try:
            t0 = time.monotonic()
            figures = asyncio.run(drive(stack, rounds, settle_s=0.5 if args.quick else 1.0))
            ctrl_cpu = 100 * (cpu_seconds(stack.controller.pid) - cpu0) / (time.monotonic() - t0)  # type: ignore[union-attr]
            tui_alive = tui.poll() is None
        finally:
            tui.terminate()
            tui.wait(10)
            floor_out, _ = floor.communicate(timeout=floor_s + 30)
        stalls = stall_counts(stall_reports(stack.log_path.read_text()))
    bare = json.loads(floor_out)
    if args.quick:
        units = {"units32": "left out of --quick (about 20 s more): run without --quick"}
    else:
        log("32 US-1 units on one controller")
        units = run_units32(30.0)
    result: dict[str, Any] = {
        **figures,
        **units,
        "python_timer_lateness_p50_ms": round(bare["p50"], 3),
        "python_timer_lateness_p99_ms": round(bare["p99"], 3),
        "python_timer_lateness_max_ms": round(bare["max"], 3),
        "controller_cpu_pct": round(ctrl_cpu, 1),
        "controller_rt_priority": args.rt_priority,
        **stalls,
        "tui_running_throughout": tui_alive,
        "load_avg_1m_start": round(load0, 2),
        "load_avg_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "goals": GOALS,
        "goals_met": {
            k: (figures.get(k) is not None and figures[k] <= v) for k, v in GOALS.items()
        },
        "floor_seconds": floor_s,
    }
    if args.tui:  # issue 7's TUI figures, after the rest so neither disturbs the other
        from tui_perf import run as tui_run

        log("the TUI figures (tui_perf.py --quick)")
        result.update(
            {f"tui_{k}": v for k, v in tui_run(launches=3, presses=5, seconds=10).items()}
        )
    result["seconds"] = round(time.monotonic() - t_start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
