"""Issue #8 item 7 end to end: three scripted sessions of one patient on a real controller and
US-1 simulator, then `sessionconsole progress` on the record, as processes; and the
controller's own check of a range-of-motion reading against the vocabulary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import GoalStatusCommand, RangeOfMotionCommand
from sessionconsole.testing import SimProcess
from tests.scripted.support import session_run
from tests.support import ControllerProcess, entries, write_room

VISIT = """
[[step]]
do = "pain"
when = "before"
score = {before}

[[step]]
do = "configure"
device = "us1"
args = {{ frequency_khz = 1000, intensity_w_cm2 = 1.0, duty_pct = 50, time_s = 60 }}

[[step]]
do = "start"
device = "us1"

[[step]]
do = "expect"
output_on = "us1"
within_s = 3.0

[[step]]
do = "stop"
device = "us1"

[[step]]
do = "rom"
joint = "knee"
movement = "flexion"
side = "right"
degrees = {knee}
mode = "active"

[[step]]
do = "goal"
goal = "walk 400 m without a rest"
status = "{status}"
measure = "{measure}"

[[step]]
do = "pain"
when = "after"
score = {after}
"""

VISITS = [
    {"before": 7, "after": 5, "knee": 85, "status": "not-started", "measure": ""},
    {"before": 5, "after": 4, "knee": 102, "status": "progressing", "measure": "250 m"},
    {"before": 3, "after": 1, "knee": 121, "status": "met", "measure": "410 m"},
]


def progress(*args: str) -> subprocess.CompletedProcess[str]:
    """`sessionconsole progress ARGS` as a child process."""
    command = [sys.executable, "-m", "sessionconsole.cli", "progress", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_three_scripted_sessions_show_as_progress(us1_sim: SimProcess, tmp_path: Path) -> None:
    room = write_room(tmp_path, us1_sim.modbus_tcp[1], watchdog_ms=1000)
    db = tmp_path / "clinic.db"
    for number, visit in enumerate(VISITS, 1):
        script = tmp_path / f"visit{number}.toml"
        script.write_text(VISIT.format(**visit))
        run = session_run(
            "--room", str(room), "--script", str(script), "--db", str(db), "--patient", "PT-0042"
        )
        assert run.code == 0 and run.summary is not None, (run.summary, run.stderr)
    other = tmp_path / "other.toml"
    other.write_text(VISIT.format(**VISITS[0]))
    assert (
        session_run(
            "--room", str(room), "--script", str(other), "--db", str(db), "--patient", "PT-0099"
        ).code
        == 0
    )

    shown = progress("PT-0042", "--db", str(db), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    sessions = doc["sessions"]
    assert [(s["pain_before"], s["pain_after"]) for s in sessions] == [(7, 5), (5, 4), (3, 1)]
    assert [[r["degrees"] for r in s["rom"]] for s in sessions] == [[85], [102], [121]]
    assert [s["goals"][0]["status"] for s in sessions] == ["not-started", "progressing", "met"]
    assert {s["verification"] for s in sessions} == {"verified"}
    assert [s["started_wall"] for s in sessions] == sorted(s["started_wall"] for s in sessions)

    text = progress("PT-0042", "--db", str(db))
    assert text.returncode == 0 and "all sessions verified" in text.stdout
    assert "ROM knee flexion right active: 121 deg" in text.stdout
    refused = progress("Jane Doe", "--db", str(db))
    assert refused.returncode == 2 and "never the patient's name" in refused.stderr


async def test_the_controller_checks_rom_against_the_vocabulary_and_records_it(
    us1_sim: SimProcess, tmp_path: Path
) -> None:
    room = write_room(tmp_path, us1_sim.modbus_tcp[1], watchdog_ms=1000)
    ctl = ControllerProcess(
        room, tmp_path / "s.db", tmp_path / "api.sock", ("--patient", "PT-0042")
    ).start()
    try:
        client = ControllerClient(str(ctl.socket_path), "dana", client_name="test")
        await client.connect()
        try:
            wrong_side = RangeOfMotionCommand(
                joint="cervical_spine",
                movement="rotation",
                side="midline",
                degrees=50,
                mode="active",
            )
            reply = await client.send(wrong_side)
            assert not reply.ok
            assert reply.error == "cervical_spine rotation is measured left or right, not 'midline'"
            unknown = wrong_side.model_copy(update={"joint": "tail", "side": "left"})
            assert "unknown joint 'tail'" in ((await client.send(unknown)).error or "")
            good = wrong_side.model_copy(update={"side": "left"})
            assert (await client.send(good)).ok
            # The reply comes after the synced commit: a second reader sees the entry now.
            assert [e.payload["side"] for e in entries(ctl.db) if e.kind == "range_of_motion"] == [
                "left"
            ]
            goal = GoalStatusCommand(goal="turn head to reverse the car", status="progressing")
            assert (await client.send(goal)).ok
        finally:
            await client.close()
    finally:
        ctl.stop()
    recorded = {e.kind: e.payload for e in entries(ctl.db)}
    assert recorded["range_of_motion"] == {
        "joint": "cervical_spine",
        "movement": "rotation",
        "side": "left",
        "degrees": 50,
        "mode": "active",
        "notes": "",
        "operator": "dana",
    }
    assert recorded["goal_status"]["status"] == "progressing"
    assert sum(e.kind == "range_of_motion" for e in entries(ctl.db)) == 1
