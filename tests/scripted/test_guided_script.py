"""A guided session driven by a script on the demo units (simulators, broker, real controller):
steps started by the script only, timers ending them, pause/resume, an out-of-limit adjustment
refused, skip with a reason, and the deviations in the summary and the record."""

from __future__ import annotations

from pathlib import Path

from tests.scripted.support import session_run
from tests.support import entries

PLAN = """
pseudonym = "PT-0042"
title = "Scripted guided session"
author = "T-01"
[limits]
max_intensity_w_cm2 = 1.2

[[steps]]
kind = "stimulation"
region = "lumbar"
side = "bilateral"
duration_s = 3
[steps.stimulation]
output = "es2.ch1"
preset = "tens_conventional"
amplitude_ma = 10.0
electrode_area_cm2 = 25.0

[[steps]]
kind = "ultrasound"
region = "lumbar"
side = "left"
duration_s = 300
[steps.ultrasound]
output = "us1"
preset = "us_chronic_1mhz"
"""

SCRIPT = """
[[step]]
do = "screening"
conditions = []

[[step]]
do = "expect"
current_step = 1

[[step]]
do = "guide"
action = "start"
attended = true

[[step]]
do = "expect"
output_on = "es2:1"
within_s = 5.0

[[step]]
do = "expect"
current_step = 2
within_s = 15.0

[[step]]
do = "expect"
output_off = "es2:1"
within_s = 5.0

[[step]]
do = "guide"
action = "adjust"
ultrasound = { intensity_w_cm2 = 1.5 }
reason = "good tolerance"

[[step]]
do = "expect"
refused = true

[[step]]
do = "guide"
action = "adjust"
ultrasound = { intensity_w_cm2 = 0.6 }
reason = "tender over the site"

[[step]]
do = "guide"
action = "start"

[[step]]
do = "expect"
output_on = "us1"
within_s = 5.0

[[step]]
do = "guide"
action = "pause"
reason = "reposition the patient"

[[step]]
do = "expect"
output_off = "us1"
within_s = 5.0

[[step]]
do = "guide"
action = "resume"

[[step]]
do = "expect"
output_on = "us1"
within_s = 5.0

[[step]]
do = "guide"
action = "skip"
reason = "patient asked to stop"

[[step]]
do = "expect"
current_step = 0

[[step]]
do = "expect"
output_off = "us1"
within_s = 5.0
"""


def test_a_script_runs_a_plan_as_a_guided_session_on_the_demo_units(tmp_path: Path) -> None:
    plan, script, db = tmp_path / "plan.toml", tmp_path / "guided.toml", tmp_path / "s.db"
    plan.write_text(PLAN)
    script.write_text(SCRIPT)
    run = session_run(
        "--demo", "--script", str(script), "--db", str(db), "--plan", str(plan), timeout_s=120
    )
    assert run.code == 0 and run.summary is not None, (run.stderr, run.summary)
    s = run.summary
    assert s["result"] == "passed" and s["steps_run"] == s["steps_total"] == 18
    [refused] = s["refused"]
    assert (refused["step"], refused["do"], refused["rule_id"]) == (7, "guide", "PLAN_LIMIT")
    assert [(d["step"], d["kind"], d["reason"]) for d in s["deviations"]] == [
        (2, "settings_changed", "tender over the site"),
        (2, "shortened", "patient asked to stop"),
    ]
    assert s["outputs"]["es2.ch1"]["runs"] == 1 and s["outputs"]["us1"]["runs"] == 2
    record = entries(db)
    [start] = [e.payload for e in record if e.kind == "session_start"]
    assert start["patient_pseudonym"] == "PT-0042" and start["plan"]["title"] == plan_title()
    stim_on = [
        e.payload for e in record if e.kind == "output_start" and e.payload["device"] == "es2.ch1"
    ]
    assert stim_on[0]["attended"] is True
    [end] = [
        e.payload for e in record if e.kind == "guide" and e.payload["action"] == "session_end"
    ]
    assert [st["state"] for st in end["steps"]] == ["done", "shortened"]


def plan_title() -> str:
    return "Scripted guided session"


def test_a_guide_step_without_a_plan_is_invalid_input(tmp_path: Path) -> None:
    script = tmp_path / "guided.toml"
    script.write_text('[[step]]\ndo = "guide"\naction = "start"\n')
    run = session_run("--demo", "--script", str(script), "--db", str(tmp_path / "s.db"))
    assert run.code == 2 and run.summary is not None
    assert "step 1: do: a guide step needs a plan: run with --plan FILE" in run.stderr
