"""Every example script (one per simulator fault of SIMULATORS.md) runs on the demo stack and
every expectation in it holds: what the console does about each fault, run in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scripted.support import EXAMPLES, assert_script_held, session_run

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
    assert_script_held(script, run, db)


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
