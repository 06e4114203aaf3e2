"""Run `sessionconsole session run` as a real process and read its JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "scripts"


@dataclass
class Run:
    """Exit code, the parsed summary (None when stdout held none) and stderr."""

    code: int
    summary: dict[str, Any] | None
    stderr: str


def session_run(*args: str, timeout_s: float = 60.0, tmpdir: Path | None = None) -> Run:
    """`sessionconsole session run ARGS --json` in a child process (its temporary files in
    `tmpdir` when given)."""
    env = None if tmpdir is None else {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.run(
        [sys.executable, "-m", "sessionconsole.cli", "session", "run", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=env,
    )
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return Run(proc.returncode, summary, proc.stderr)


def assert_script_held(script: Path, run: Run, db: Path) -> None:
    """The run passed every step of `script`, raised every alarm it expects (none when it
    expects none), ended its session normally, and the record in `db` verifies."""
    assert run.summary is not None, run.stderr
    assert (run.code, run.summary["result"]) == (0, "passed"), run.summary
    steps = tomllib.loads(script.read_text())["step"]
    assert run.summary["steps_run"] == run.summary["steps_total"] == len(steps)
    expected_alarms = {s["alarm"] for s in steps if s["do"] == "expect" and "alarm" in s}
    assert expected_alarms <= {a["rule_id"] for a in run.summary["alarms"]}
    if any(s.get("no_alarm") for s in steps):
        assert run.summary["alarms"] == [], run.summary["alarms"]
    assert run.summary["session_exit_status"] == "completed"
    verify = subprocess.run(
        [sys.executable, "-m", "sessionconsole.cli", "records", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the record's chain holds
