"""Run `sessionconsole` sub-commands (records, plan check, devices probe) as child processes.

The UI may import only `api` and `model`, so what lives in `record/`, `plans/` and `drivers/`
is reached the way a person would: through the command line, in a worker, never blocking.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 30.0
# What `records export -o` gets per format (CSV writes several files: a folder).
EXPORT_SUFFIX = {"html": ".html", "json": ".json", "fhir": ".fhir.json", "csv": "-csv"}


@dataclass(frozen=True, slots=True)
class CliResult:
    """One finished command: its arguments, exit code and output."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Exit code 0."""
        return self.code == 0


CliRunner = Callable[[Sequence[str]], Awaitable[CliResult]]


def command_line(args: Sequence[str]) -> str:
    """The command as a person would type it (for the screen, and to copy)."""
    return shlex.join(["sessionconsole", *args])


async def run_sessionconsole(args: Sequence[str], timeout_s: float = TIMEOUT_S) -> CliResult:
    """Run `sessionconsole ARGS` with this interpreter; a timeout kills it (code -9)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sessionconsole.cli",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return CliResult(tuple(args), -9, "", f"timed out after {timeout_s:g} s")
    code = proc.returncode if proc.returncode is not None else -1
    return CliResult(tuple(args), code, out.decode(errors="replace"), err.decode(errors="replace"))


@dataclass(frozen=True, slots=True)
class RecordsAccess:
    """How the UI reaches the session record: the database (if known), where exports go."""

    db: str | None
    export_dir: str
    run: CliRunner = run_sessionconsole

    def bill_args(self, session_id: str) -> list[str]:
        """`records bill` for one session (the database path filled in, or a placeholder)."""
        return ["records", "bill", session_id, "--db", self.db or "DB"]

    def export_args(self, session_id: str, fmt: str) -> list[str]:
        """`records export` writing into the export folder (CSV: a folder of its own)."""
        output = f"{self.export_dir.rstrip('/')}/{session_id}{EXPORT_SUFFIX[fmt]}"
        db = self.db or "DB"
        return ["records", "export", session_id, "--db", db, "--format", fmt, "-o", output]

    async def export(self, session_id: str, fmt: str) -> tuple[list[str], CliResult]:
        """Create the export folder (in a thread) and run `records export` into it."""
        args = self.export_args(session_id, fmt)
        try:
            await asyncio.to_thread(Path(self.export_dir).mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            return args, CliResult(tuple(args), 2, "", f"cannot create {self.export_dir}: {exc}")
        return args, await self.run(args)
