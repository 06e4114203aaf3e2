"""Run `sessionconsole session run` as a real process and read its JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
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


def session_run(*args: str, timeout_s: float = 60.0) -> Run:
    """`sessionconsole session run ARGS --json` in a child process."""
    proc = subprocess.run(
        [sys.executable, "-m", "sessionconsole.cli", "session", "run", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return Run(proc.returncode, summary, proc.stderr)
