"""`session run` with real processes: a failed expectation, a room of fixture simulators, and
nothing left running when the runner itself is killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from sessionconsole.testing import SimProcess
from tests.scripted.support import session_run
from tests.support import entries
from tests.test_demo import alive, children_of, wait_until

US1_ON = """
[[step]]
do = "configure"
device = "us1"
args = { frequency_khz = 1000, intensity_w_cm2 = 1.0, duty_pct = 100, time_s = 60 }

[[step]]
do = "start"
device = "us1"

[[step]]
do = "expect"
output_on = "us1"
within_s = 2.0
"""


def test_a_failed_expectation_ends_the_script_at_once_with_outputs_stopped(
    tmp_path: Path,
) -> None:
    script = tmp_path / "fails.toml"
    script.write_text(
        US1_ON
        + '[[step]]\ndo = "expect"\nalarm = "HEAD_OVERTEMP"\nwithin_s = 0.3\n'
        + '[[step]]\ndo = "note"\ntext = "never sent"\n'
    )
    db = tmp_path / "s.db"
    run = session_run("--demo", "--script", str(script), "--db", str(db))
    assert run.code == 1 and run.summary is not None, run.stderr
    s = run.summary
    assert (s["result"], s["steps_run"], s["steps_total"]) == ("expectation_failed", 4, 5)
    failed = s["failed_expectation"]
    assert failed["step"] == 4 and failed["condition"] == "alarm = 'HEAD_OVERTEMP'"
    assert failed["observed"] == "alarms raised: none"
    assert s["outputs"]["us1"]["runs"] == 1 and s["outputs"]["us1"]["on_time_s"] > 0
    record = entries(db)
    kinds = [e.kind for e in record if e.payload.get("device") == "us1"]
    assert kinds.count("output_start") == kinds.count("output_stop") == 1
    assert not [e for e in record if e.kind == "note"]  # the script ended before step 5
    # stopped by the runner (a plain stop), before the session ended
    assert any(
        e.kind == "operator_action" and e.payload["command"]["type"] == "stop" for e in record
    )


PROFILES = {
    "us1": """kind = "us1"
name = "US-1 test"
era_cm2 = 5.0
bnr = 4.2
watchdog_ms = 300
heartbeat_interval_ms = 50
[link]
kind = "modbus_tcp"
host = "127.0.0.1"
port = 5020
[limits]
max_intensity_w_cm2 = 2.0
max_time_s = 900
""",
    "es2": """kind = "es2"
name = "ES-2 test"
watchdog_ms = 300
heartbeat_interval_ms = 50
[link]
kind = "serial"
port = "/dev/null"
[limits]
max_amplitude_ma = 20.0
electrode_area_cm2 = 25.0
""",
}


def test_a_room_of_fixture_simulators_runs_sim_steps_through_their_test_ports(
    us1_sim: SimProcess, es2_sim: SimProcess, tmp_path: Path
) -> None:
    for unit, text in PROFILES.items():
        (tmp_path / f"{unit}.toml").write_text(text)
    room = tmp_path / "room.toml"
    room.write_text(
        'name = "Fixture room"\n'
        f'[devices.us1]\nprofile = "us1.toml"\nsim_control = "{us1_sim.control}"\n'
        f"[devices.us1.link]\nport = {us1_sim.modbus_tcp[1]}\n"
        f'[devices.es2]\nprofile = "es2.toml"\nsim_control = "{es2_sim.control}"\n'
        f'[devices.es2.link]\nport = "{es2_sim.endpoints["serial_pty"]}"\n'
    )
    script = tmp_path / "room.toml.script"
    script.write_text(
        US1_ON
        + """
[[step]]
do = "configure"
device = "es2"
channel = 2
args = { mode = "ASYM", freq_hz = 50, pw_us = 100, ramp_s = 0, amplitude_ma = 25.0 }

[[step]]
do = "expect"
refused = true

[[step]]
do = "sim"
device = "us1"
request = { op = "inject", fault = "patient_stop" }

[[step]]
do = "expect"
alarm = "PATIENT_STOP"
within_s = 1.0

[[step]]
do = "expect"
output_off = "us1"
within_s = 1.0
"""
    )
    # A short TMPDIR of its own (a Unix socket path holds at most 107 bytes).
    scratch = Path(tempfile.mkdtemp(prefix="sc-", dir="/tmp"))
    try:
        run = session_run(
            "--room", str(room), "--script", str(script), "--db", str(tmp_path / "d.db"),
            tmpdir=scratch,
        )  # fmt: skip
        left = list(scratch.iterdir())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert run.code == 0 and run.summary is not None, (run.summary, run.stderr)
    assert left == []  # the controller's socket and log are cleaned up
    [refusal] = run.summary["refused"]
    assert (refusal["step"], refusal["device"], refusal["rule_id"]) == (
        4,
        "es2.ch2",
        "SETPOINT_LIMIT",
    )
    assert "PATIENT_STOP" in {a["rule_id"] for a in run.summary["alarms"]}
    assert us1_sim.request({"op": "state"})["physics"]["output_active"] is False


def test_killing_the_runner_leaves_nothing_running(tmp_path: Path) -> None:
    script = tmp_path / "long.toml"
    script.write_text(US1_ON + '[[step]]\ndo = "wait"\ns = 60\n')
    command = ["session", "run", "--demo", "--script", str(script), "--db", str(tmp_path / "d.db")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionconsole.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # controller, three simulators and mosquitto, once the script is under way
        assert wait_until(lambda: len(children_of(proc.pid)) >= 5, 15)
        helpers = children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert wait_until(lambda: not any(alive(p) for p in helpers), 10), helpers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
