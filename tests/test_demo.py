"""`sessionconsole demo` as a person runs it: in a terminal (tmux), then quit; nothing left over."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid` (controller, simulator), by /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def wait_until(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def tmux(tmp_path: Path) -> str:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the terminal test: apt-get install tmux (.ci/run does)")
    return f"sc-demo-{os.getpid()}-{tmp_path.name}"


def tmux_on(session: str) -> list[str]:
    """tmux with a server of the test's own (-L): a shared server would start the demo with
    the environment of whichever test started it (another test's record key, say)."""
    return ["tmux", "-L", session]


def capture(session: str) -> str:
    return subprocess.run(
        [*tmux_on(session), "capture-pane", "-t", session, "-p"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


EXE = Path(sys.executable).parent / "sessionconsole"


def demo_in_tmux(tmux: str, tmp_path: Path) -> tuple[Path, Path]:
    """`sessionconsole demo` in a 100x30 tmux window; (its database, the file with its pid)."""
    db, pid_file = tmp_path / "demo.db", tmp_path / "pid"
    command = f"echo $$ > {pid_file}; exec {EXE} demo --db {db} --operator tester"
    new_session = ["new-session", "-d", "-s", tmux, "-x", "100", "-y", "30", command]
    subprocess.run([*tmux_on(tmux), *new_session], check=True)
    return db, pid_file


def test_demo_in_a_terminal_shows_live_values_stops_on_f12_and_quits_clean(
    tmux: str, tmp_path: Path
) -> None:
    db, pid_file = demo_in_tmux(tmux, tmp_path)
    try:

        def full_screen() -> bool:
            screen = capture(tmux)
            return all(s in screen for s in ("telemetry", "Ultrasound", "STOP ALL", "IDLE"))

        # The demo opens on the Start screen (pseudonym, plan, screening); Esc skips it.
        # (Its pseudonym field is filled in from the controller, which replaces the hint.)
        assert wait_until(lambda: "To session ^G" in capture(tmux), 15), capture(tmux)
        subprocess.run([*tmux_on(tmux), "send-keys", "-t", tmux, "Escape"], check=True)
        # The first frames may be partly drawn: wait for the whole session screen.
        assert wait_until(full_screen, 15), capture(tmux)
        demo_pid = int(pid_file.read_text())
        helpers = children_of(demo_pid)
        assert len(helpers) >= 5, helpers  # controller, three simulators, mosquitto
        subprocess.run([*tmux_on(tmux), "send-keys", "-t", tmux, "F12"], check=True)
        assert wait_until(lambda: "LOW PRIORITY ALARM" in capture(tmux), 5), capture(tmux)
        subprocess.run([*tmux_on(tmux), "send-keys", "-t", tmux, "C-q"], check=True)
        assert wait_until(lambda: not alive(demo_pid), 15)
        assert wait_until(lambda: not any(alive(p) for p in helpers), 5), helpers
    finally:
        subprocess.run([*tmux_on(tmux), "kill-server"], capture_output=True, check=False)
    verify = subprocess.run(
        [str(EXE), "records", "verify", "--db", str(db)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    listing = subprocess.run(
        [str(EXE), "records", "list", "--db", str(db)], capture_output=True, text=True
    ).stdout
    assert "completed" in listing


def test_closing_the_terminal_or_killing_the_demo_leaves_nothing_running(tmp_path: Path) -> None:
    script = (
        "import time, sys; from sessionconsole.demo import DemoStack\n"
        "s = DemoStack().start()\n"
        "print(s.left_out, *s.pids(), flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    left_out, *pids = proc.stdout.readline().split()
    helpers = [int(p) for p in pids]
    assert left_out == "{}", left_out  # all three units (mosquitto is installed here)
    assert len(helpers) == 5 and all(alive(p) for p in helpers), helpers
    assert set(children_of(proc.pid)) >= set(helpers)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up code of ours runs
    proc.wait(5)
    assert wait_until(lambda: not any(alive(p) for p in helpers), 10), helpers


def test_the_demo_room_names_all_three_units_with_their_test_ports() -> None:
    from sessionconsole.demo import DemoStack
    from sessionconsole.model.room import load_room

    with DemoStack() as stack:
        room, profiles = load_room(stack.room_path)
        assert set(room.devices) == {"us1", "es2", "cx3"}
        for unit, device in room.devices.items():
            assert device.sim_control == stack.sims[unit].control
        helpers = stack.pids()
    assert sorted(p.kind for p in profiles.values()) == ["cx3", "es2", "us1"]
    assert wait_until(lambda: not any(alive(p) for p in helpers), 5), helpers


def test_without_mosquitto_the_demo_runs_the_cx3_on_the_embedded_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 7 item 6: no mosquitto installed -> an MQTT broker in a child process, CX-3 live."""
    import asyncio

    import sessionconsole.demo as demo
    from sessionconsole.api.client import ControllerClient
    from sessionconsole.testing.embedded_broker import EmbeddedBroker
    from sessionconsole.testing.mqtt import MosquittoNotInstalled

    def not_installed() -> str:
        raise MosquittoNotInstalled("mosquitto is not installed: apt-get install mosquitto")

    monkeypatch.setattr(demo, "find_mosquitto", not_installed)

    async def cx3_outputs_live(stack: demo.DemoStack) -> set[str]:
        client = ControllerClient(str(stack.socket_path), operator="tester")
        await client.connect()
        try:
            for _ in range(300):  # a liveness bound of 30 s, not a timing claim
                snap = await client.wait_snapshot()
                live = {d.device for d in snap.devices if d.connected}
                if {"cx3.us", "cx3.stim"} <= live:
                    return live
                await asyncio.sleep(0.1)
            return live
        finally:
            await client.close()

    with demo.DemoStack() as stack:
        assert isinstance(stack.broker, EmbeddedBroker) and "cx3" not in stack.left_out
        assert stack.broker.proc is not None and stack.broker.proc.pid in stack.pids()
        live = asyncio.run(cx3_outputs_live(stack))
        helpers = stack.pids()
    assert {"cx3.us", "cx3.stim"} <= live, live
    assert wait_until(lambda: not any(alive(p) for p in helpers), 10), helpers


def test_a_closed_terminal_ends_the_demo_its_units_and_the_session(
    tmux: str, tmp_path: Path
) -> None:
    """tmux kill-session = the terminal window closed: SIGHUP, and no terminal to draw on."""
    db, pid_file = demo_in_tmux(tmux, tmp_path)
    try:
        assert wait_until(lambda: "To session ^G" in capture(tmux), 15), capture(tmux)
        subprocess.run([*tmux_on(tmux), "send-keys", "-t", tmux, "Escape"], check=True)
        assert wait_until(lambda: "telemetry" in capture(tmux), 15), capture(tmux)
        demo_pid = int(pid_file.read_text())
        helpers = children_of(demo_pid)
        assert len(helpers) >= 5, helpers
        time.sleep(3)  # running a while, as a person would, before the window is closed
    finally:
        subprocess.run([*tmux_on(tmux), "kill-server"], capture_output=True, check=False)
    # The UI may wedge on a terminal that is gone; the last resort ends it within seconds.
    assert wait_until(lambda: not alive(demo_pid), 30), "the demo outlived its terminal"
    assert wait_until(lambda: not any(alive(p) for p in helpers), 15), helpers
    listing = subprocess.run(
        [str(EXE), "records", "list", "--db", str(db)], capture_output=True, text=True
    ).stdout
    assert "completed" in listing, listing  # the controller stopped the outputs and ended it


def test_a_child_whose_parent_died_before_it_could_ask_exits_at_once() -> None:
    """die_with_parent's fork-time race: the parent gone before the child's prctl (here: a
    parent pid that is not the child's) means no SIGTERM will ever come, so the child exits."""
    import functools

    from sessionconsole.testing import die_with_parent

    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    orphan = subprocess.Popen(sleeper, preexec_fn=functools.partial(die_with_parent, 1))
    kept = subprocess.Popen(sleeper, preexec_fn=functools.partial(die_with_parent, os.getpid()))
    try:
        assert orphan.wait(timeout=10) == 1
        time.sleep(0.2)
        assert kept.poll() is None  # its parent is alive: it runs
    finally:
        for proc in (orphan, kept):
            proc.kill()
            proc.wait()
