"""Issue #8's "done when", end to end as processes: a therapist builds a plan from presets
(`plan new`), has it checked (`plan check`), runs it twice as a guided session on the demo
units (`session run --demo --plan`), and sees the patient's progress (`progress`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.scripted.support import session_run
from tests.support import entries

ROOM = Path(__file__).resolve().parents[1] / "plans" / "data" / "bench-room.toml"
STEPS = [
    "manual,technique=trigger_point,region=knee,side=right,s=2",
    "stimulation,preset=tens_conventional,output=es2.ch1,region=knee,side=right,s=3,"
    "amplitude_ma=12,electrode_area_cm2=16",
]
VISIT = """
[[step]]
do = "screening"
conditions = []

[[step]]
do = "pain"
when = "before"
score = {before}

[[step]]
do = "guide"
action = "start"

[[step]]
do = "expect"
current_step = 2
within_s = 15.0

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
current_step = 0
within_s = 20.0

[[step]]
do = "expect"
output_off = "es2:1"
within_s = 5.0

[[step]]
do = "rom"
joint = "knee"
movement = "flexion"
side = "right"
degrees = {knee}
mode = "active"

[[step]]
do = "pain"
when = "after"
score = {after}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`sessionconsole ARGS` as a child process."""
    command = [sys.executable, "-m", "sessionconsole.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_a_plan_built_from_presets_runs_guided_twice_and_shows_as_progress(
    tmp_path: Path,
) -> None:
    plan, db = tmp_path / "knee.toml", tmp_path / "clinic.db"
    steps = [arg for spec in STEPS for arg in ("--step", spec)]
    built = cli(
        "plan", "new", "PT-0088", "--title", "Knee, right", "--author", "T-02",
        "--room", str(ROOM), "-o", str(plan), *steps,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    checked = cli("plan", "check", str(plan), "--room", str(ROOM))
    assert " refuse: " not in checked.stdout, checked.stdout  # (a warn: no patient file given)
    for number, visit in enumerate([(6, 4, 95), (4, 2, 110)], start=1):
        before, after, knee = visit
        script = tmp_path / f"visit{number}.toml"
        script.write_text(VISIT.format(before=before, after=after, knee=knee))
        run = session_run(
            "--demo", "--plan", str(plan), "--script", str(script), "--db", str(db),
            timeout_s=120,
        )  # fmt: skip
        assert run.code == 0 and run.summary is not None, (run.summary, run.stderr)
        assert run.summary["result"] == "passed" and run.summary["deviations"] == []
    record = entries(db)
    guided_ends = [
        e.payload for e in record if e.kind == "guide" and e.payload["action"] == "session_end"
    ]
    assert [[s["state"] for s in end["steps"]] for end in guided_ends] == [["done", "done"]] * 2
    # The manual step's hands-on time is logged as its technique (what billing reads).
    techniques = [
        (e.payload["action"], e.payload["notes"]) for e in record if e.kind == "technique"
    ]
    assert techniques == [("begin", "plan step 1 (start)"), ("end", "plan step 1 (step_end)")] * 2
    shown = cli("progress", "PT-0088", "--db", str(db), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    sessions = json.loads(shown.stdout)["sessions"]
    assert [(s["pain_before"], s["pain_after"]) for s in sessions] == [(6, 4), (4, 2)]
    assert [[r["degrees"] for r in s["rom"]] for s in sessions] == [[95], [110]]
    assert {s["verification"] for s in sessions} == {"verified"}
