"""Every example script (one per simulator fault of SIMULATORS.md) runs on the demo stack and
every expectation in it holds: what the console does about each fault, run in CI."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.scripted.support import EXAMPLES, session_run

SCRIPTS = sorted(EXAMPLES.glob("*.toml"))
FAULTS = (
    "patient_stop",
    "electrode_off",
    "overcurrent",
    "overtemp",
    "output_deviation",
    "head_disconnect",
    "ignore_stop",
    "link_drop",
    "link_disconnect",
    "link_delay",
    "link_corrupt",
    "reboot",
)


def test_there_is_an_example_for_every_fault_of_the_simulators() -> None:
    assert {p.stem for p in SCRIPTS} >= set(FAULTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_script_holds_on_the_demo_stack(script: Path, tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    run = session_run("--demo", "--script", str(script), "--db", str(db))
    assert run.summary is not None, run.stderr
    assert (run.code, run.summary["result"]) == (0, "passed"), run.summary
    steps = tomllib.loads(script.read_text())["step"]
    assert run.summary["steps_run"] == run.summary["steps_total"] == len(steps)
    expected_alarms = {s["alarm"] for s in steps if s["do"] == "expect" and "alarm" in s}
    assert expected_alarms <= {a["rule_id"] for a in run.summary["alarms"]}
    if any(s.get("no_alarm") for s in steps):
        assert run.summary["alarms"] == []
    assert run.summary["session_exit_status"] == "completed"
    verify = subprocess.run(
        [sys.executable, "-m", "sessionconsole.cli", "records", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the record's chain holds


def test_the_example_in_the_docs_runs_as_documented(tmp_path: Path) -> None:
    doc = (EXAMPLES.parents[1] / "docs" / "SCRIPTED_SESSIONS.md").read_text()
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "doc.toml"
    script.write_text(block)
    run = session_run("--demo", "--script", str(script), "--db", str(tmp_path / "s.db"))
    assert run.summary is not None and run.code == 0, (run.summary, run.stderr)
    [refusal] = run.summary["refused"]
    assert (refusal["do"], refusal["rule_id"]) == ("set", "SETPOINT_LIMIT")
    assert {"us1", "es2.ch1"} <= set(run.summary["outputs"])
