"""Issue 7's TUI figures against the real three-unit stack: launch to first live values,
keystroke to screen, and frame rate and CPU while three units stream.

One demo stack (mosquitto, the US-1 on Modbus TCP, the ES-2 on a pty, the CX-3 through
mosquitto, and a controller, as processes: `DemoStack`, as `demo_startup.py` and `run.py`).
The TUI is `SessionConsoleApp` in this process under Textual's headless test driver
(`App.run_test()`, 100x30), so what it costs is this process's CPU. Nothing in `ui/` is
changed for the bench; it observes the app through two wrapped methods of the one instance:

- `app.show(snapshot)`: what `_refresh_view` calls when a new snapshot is due (the app
  coalesces the controller's 20 Hz snapshots and draws at most every 100 ms): "snapshots
  drawn".
- `app._display(screen, update)`: where every screen's compositor hands its finished frame
  to the driver (Textual's private API, 8.x; Textual has no public per-frame hook:
  `call_after_refresh` is one-shot). Each call with an update is one "frame", stamped with
  the screen it shows. Under the headless driver Textual stops there and skips encoding the
  update into terminal escape sequences; the bench does that encoding itself
  (`render_segments`, the output thrown away) so frames cost what they would on a terminal,
  minus the write. `--no-encode` leaves it out.

Figures (all from `time.monotonic()`, the clock the other benches use):

1. launch -> first live values (`launch_*`): from just before the app is constructed to the
   first frame drawn after `show()` was given a snapshot in which an output has telemetry.
   The stack is already up with every unit connected (stack start-up is
   `demo_startup.py`'s figure). Repeated `--launches` times, a new app each time.
2. keystroke -> screen (`key_*`): with the three outputs running, Pilot presses a key and the
   clock stops at the first frame that shows its effect: `l` (alarm list) -> a frame of the
   alarm list screen; `escape` -> a frame of the session screen; `right` / `left` on the
   focused side tabs -> a session-screen frame in which the compositor has the Log tab's /
   the settings form's widget visible. `--presses` of each; p50/p95/max.
3. streaming (`stream_*`): one output of each unit running (the same outputs and settings
   as `run.py`, started through the app's own controller connection), the session screen
   up, for `--seconds`: snapshots received (the controller sends 20 Hz) and drawn per
   second, frames per second, and this process's CPU (`time.process_time`: every thread)
   and the event loop thread's (`time.thread_time`) as a share of one core, beside the
   controller's (`/proc/PID/stat`).
4. STOP key -> wire is `run.py`'s (`stop_key_to_wire_*`); not repeated here.

    .venv/bin/python bench/tui_perf.py [--quick] [--launches N] [--presses N] [--seconds S]

Progress goes to stderr; the last line on stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import TabbedContent, Tabs

from sessionconsole.api.messages import Snapshot, StopAllCommand
from sessionconsole.demo import DemoStack
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.session_log import SessionLog

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benches, run as scripts
from run import pct, start_outputs
from sim_cost import cpu_seconds

SIZE = (100, 30)  # the size run.py and demo_startup.py use
KEY_TIMEOUT_S = 5.0


def log(text: str) -> None:
    print(f"[bench/tui_perf] {text}", file=sys.stderr, flush=True)


@dataclass
class Probe:
    """What the wrapped methods saw: times of snapshots received and drawn, and of frames."""

    received: list[float] = field(default_factory=list)
    drawn: list[float] = field(default_factory=list)
    frames: list[tuple[float, Screen[Any]]] = field(default_factory=list)
    first_live_drawn: float | None = None
    first_live_frame: float | None = None
    # A key press waiting for its effect: (pressed at, "frame shows it" predicate).
    waiting: tuple[float, Callable[[Screen[Any]], bool]] | None = None
    effect_seen: float | None = None

    def count_since(self, times: list[float], t0: float) -> int:
        return sum(1 for t in times if t >= t0)


def instrument(app: SessionConsoleApp, encode: bool = True) -> Probe:
    """Wrap `app`'s snapshot callback, `show` and `_display` (this instance only) to record
    into the returned Probe. Must run before `run_test()`: the connection worker picks
    `_on_snapshot` up when it connects."""
    probe = Probe()
    if not hasattr(app, "_display"):  # Textual moved its frame hand-over: fix the bench
        raise RuntimeError("App._display is gone in this Textual; the frame probe needs it")
    on_snapshot, show, display = app._on_snapshot, app.show, app._display

    def snapshot_in(snapshot: Snapshot) -> None:
        probe.received.append(time.monotonic())
        on_snapshot(snapshot)

    def drawn(snapshot: Snapshot) -> None:
        show(snapshot)
        now = time.monotonic()
        probe.drawn.append(now)
        if probe.first_live_drawn is None and any(
            d.telemetry_age_ms is not None for d in snapshot.devices
        ):
            probe.first_live_drawn = now

    def frame(screen: Screen[Any], update: Any) -> None:
        batching = bool(app._batch_count)
        display(screen, update)
        if update is None or batching:
            return
        if encode and hasattr(update, "render_segments"):
            update.render_segments(app.console)  # what the terminal driver would write
        now = time.monotonic()
        probe.frames.append((now, screen))
        if probe.first_live_drawn is not None and probe.first_live_frame is None:
            probe.first_live_frame = now
        if probe.waiting is not None and probe.effect_seen is None:
            pressed, shows_it = probe.waiting
            if now >= pressed and shows_it(screen):
                probe.effect_seen = now

    app._on_snapshot = snapshot_in  # type: ignore[method-assign]
    app.show = drawn  # type: ignore[method-assign]
    app._display = frame  # type: ignore[method-assign,assignment]
    return probe


def summary(values: list[float], prefix: str) -> dict[str, Any]:
    """p50/p95/max (nearest rank, ms) and the count of `values` (seconds)."""
    ms = [v * 1000 for v in values]
    return {
        f"{prefix}_p50_ms": pct(ms, 0.5),
        f"{prefix}_p95_ms": pct(ms, 0.95),
        f"{prefix}_max_ms": pct(ms, 1.0),
        f"{prefix}_n": len(ms),
    }


async def launch_once(socket_path: Path, encode: bool) -> dict[str, float]:
    """One app from construction to its first frame with live values; seconds of each step."""
    t0 = time.monotonic()
    app = SessionConsoleApp(str(socket_path), operator="bench")
    probe = instrument(app, encode)
    async with app.run_test(size=SIZE) as pilot:
        while probe.first_live_frame is None:
            if time.monotonic() - t0 > 30:
                raise TimeoutError("no live values drawn within 30 s of launch")
            await pilot.pause(0.005)
    assert probe.first_live_drawn is not None and probe.frames
    return {
        "first_frame_s": probe.frames[0][0] - t0,
        "first_live_drawn_s": probe.first_live_drawn - t0,
        "first_live_frame_s": probe.first_live_frame - t0,
    }


async def measure_launch(socket_path: Path, launches: int, encode: bool) -> dict[str, Any]:
    """`launches` fresh apps on the running stack: launch -> first frame / live values."""
    runs = [await launch_once(socket_path, encode) for _ in range(launches)]
    out: dict[str, Any] = {"launch_runs": launches}
    for key in ("first_frame_s", "first_live_drawn_s", "first_live_frame_s"):
        values = [r[key] for r in runs]
        out[f"launch_{key[:-2]}_median_ms"] = round(statistics.median(values) * 1000, 1)
        out[f"launch_{key[:-2]}_max_ms"] = round(max(values) * 1000, 1)
    return out


async def key_to_frame(
    pilot: Pilot[Any], probe: Probe, key: str, shows_it: Callable[[Screen[Any]], bool]
) -> float:
    """Press `key`; seconds until the first frame for which `shows_it(screen)` holds."""
    probe.effect_seen = None
    await pilot.pause(0.05)  # let the previous key's repaints settle
    pressed = time.monotonic()
    probe.waiting = (pressed, shows_it)
    await pilot.press(key)
    while probe.effect_seen is None:
        if time.monotonic() - pressed > KEY_TIMEOUT_S:
            raise TimeoutError(f"no frame showed the effect of {key!r} within {KEY_TIMEOUT_S} s")
        await pilot.pause(0.002)
    probe.waiting = None
    return probe.effect_seen - pressed


async def measure_keys(
    app: SessionConsoleApp, pilot: Pilot[Any], probe: Probe, presses: int
) -> dict[str, Any]:
    """`presses` rounds of: l (alarm list), escape (back), right and left on the side tabs."""
    session, alarms = app.session_screen, app.alarm_list
    side = session.query_one("#side", TabbedContent)
    log_widget = session.query_one(SessionLog)
    session.query_one("#side", TabbedContent).query_one(Tabs).focus()
    await pilot.pause(0.1)

    def visible(widget: Any) -> Callable[[Screen[Any]], bool]:
        return lambda s: s is session and widget in s._compositor.visible_widgets

    cases: dict[str, tuple[str, Callable[[Screen[Any]], bool]]] = {
        "alarm_list_open": ("l", lambda s: s is alarms),
        "alarm_list_close": ("escape", lambda s: s is session),
        "tab_to_log": ("right", visible(log_widget)),
        "tab_to_output": ("left", visible(session.form)),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(presses):
        for name, (key, shows_it) in cases.items():
            times[name].append(await key_to_frame(pilot, probe, key, shows_it))
        assert side.active == "tab-output", side.active  # each round ends where it began
    out: dict[str, Any] = summary([t for v in times.values() for t in v], "key_to_frame")
    for name, values in times.items():
        out.update(summary(values, f"key_{name}"))
    return out


async def measure_stream(
    app: SessionConsoleApp, probe: Probe, seconds: float, controller_pid: int
) -> dict[str, Any]:
    """Frames, snapshots and CPU over `seconds` with the outputs running, session screen up."""
    t0 = time.monotonic()
    cpu0, thread0 = time.process_time(), time.thread_time()
    ctrl0 = cpu_seconds(controller_pid)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    cpu, thread = time.process_time() - cpu0, time.thread_time() - thread0
    ctrl = cpu_seconds(controller_pid) - ctrl0
    frames = [t for t, screen in probe.frames if t >= t0 and screen is app.session_screen]
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    latest = app._latest
    running = sum(1 for d in latest.devices if d.output_active) if latest else 0
    return {
        "stream_seconds": round(wall, 2),
        "stream_outputs_running_at_end": running,
        "stream_snapshots_received_per_s": round(probe.count_since(probe.received, t0) / wall, 2),
        "stream_snapshots_drawn_per_s": round(probe.count_since(probe.drawn, t0) / wall, 2),
        "stream_frames_per_s": round(len(frames) / wall, 2),
        "stream_frame_gap_p50_ms": pct([g * 1000 for g in gaps], 0.5),
        "stream_frame_gap_max_ms": pct([g * 1000 for g in gaps], 1.0),
        "stream_tui_process_cpu_pct": round(100 * cpu / wall, 1),
        "stream_tui_loop_thread_cpu_pct": round(100 * thread / wall, 1),
        "stream_controller_cpu_pct": round(100 * ctrl / wall, 1),
    }


async def measure_running(
    stack: DemoStack, presses: int, seconds: float, encode: bool
) -> dict[str, Any]:
    """One app: start the three outputs through its own connection, measure streaming, then
    key presses while they still run, then STOP ALL."""
    app = SessionConsoleApp(str(stack.socket_path), operator="bench")
    probe = instrument(app, encode)
    assert stack.controller is not None
    async with app.run_test(size=SIZE) as pilot:
        while app.client is None or app._latest is None:
            await pilot.pause(0.02)
        await start_outputs(app.client, stack.sims)
        await asyncio.sleep(1.0)  # ramps and panel history under way
        out = await measure_stream(app, probe, seconds, stack.controller.pid)
        out.update(await measure_keys(app, pilot, probe, presses))
        latest = app._latest
        out["keys_outputs_running_at_end"] = (
            sum(1 for d in latest.devices if d.output_active) if latest else 0
        )
        # Why outputs stopped, if they did (a loaded machine can starve a unit's link).
        out["alarms_raised"] = sorted({a.rule_id for a in latest.alarms}) if latest else []
        await app.client.send(StopAllCommand())
    return out


def run(
    launches: int = 10, presses: int = 20, seconds: float = 30.0, encode: bool = True
) -> dict[str, Any]:
    """Start the demo stack, measure every figure, stop it; the figures as one dict."""
    t_start = time.monotonic()
    if "SESSIONCONSOLE_RECORD_KEY" not in os.environ:  # a throw-away signing key
        key_dir = tempfile.mkdtemp(prefix="bench-key-")
        os.environ["SESSIONCONSOLE_RECORD_KEY"] = str(Path(key_dir) / "record.key")
    load0 = os.getloadavg()[0]
    with DemoStack() as stack:
        if stack.left_out:
            raise RuntimeError(f"needs all three units; left out: {stack.left_out}")
        log(f"stack up; {launches} launches")
        figures = asyncio.run(measure_launch(stack.socket_path, launches, encode))
        log(f"outputs on, {seconds:.0f} s streaming, then {presses} rounds of key presses")
        figures.update(asyncio.run(measure_running(stack, presses, seconds, encode)))
    figures.update(
        {
            "encode_frames": encode,
            "size": f"{SIZE[0]}x{SIZE[1]}",
            "load_avg_1m_start": round(load0, 2),
            "load_avg_1m_end": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "seconds": round(time.monotonic() - t_start, 1),
        }
    )
    return figures


def sane(figures: dict[str, Any]) -> bool:
    """Every number is finite and not negative (what the smoke test also checks)."""
    return all(not isinstance(v, float) or (math.isfinite(v) and v >= 0) for v in figures.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="about 30 s: 3 launches, 5 presses, 10 s"
    )
    parser.add_argument("--launches", type=int, help="fresh apps to launch (default 10)")
    parser.add_argument("--presses", type=int, help="rounds of the four keys (default 20)")
    parser.add_argument("--seconds", type=float, help="streaming window (default 30)")
    parser.add_argument(
        "--no-encode", action="store_true", help="leave out encoding frames for a terminal"
    )
    args = parser.parse_args()
    launches, presses, seconds = (3, 5, 10.0) if args.quick else (10, 20, 30.0)
    figures = run(
        launches=args.launches or launches,
        presses=args.presses or presses,
        seconds=args.seconds or seconds,
        encode=not args.no_encode,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
