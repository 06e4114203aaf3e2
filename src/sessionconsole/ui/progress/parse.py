"""Read what `sessionconsole progress --format json` prints (pure; the CLI's own format).

The UI may not import `record`, so the report arrives as JSON from a child process and is
read here into small typed rows; a document of another shape is a ValueError saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON_VERSION = 1


@dataclass(frozen=True, slots=True)
class RomReading:
    """One range-of-motion reading of a session."""

    joint: str
    movement: str
    side: str
    mode: str
    degrees: int

    @property
    def series(self) -> tuple[str, str, str, str]:
        """What the reading is comparable with across sessions."""
        return self.joint, self.movement, self.side, self.mode


@dataclass(frozen=True, slots=True)
class GoalMark:
    """A goal's status as one session recorded it."""

    goal: str
    status: str
    measure: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session of the report."""

    session_id: str
    started_wall: str
    verification: str
    problem: str | None
    pain_before: int | None
    pain_after: int | None
    rom: tuple[RomReading, ...]
    goals: tuple[GoalMark, ...]

    @property
    def day(self) -> str:
        """YYYY-MM-DD (UTC) of the session's start."""
        return self.started_wall[:10]


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """A patient's sessions, oldest first."""

    pseudonym: str
    sessions: tuple[SessionRow, ...]

    def rom_series(self) -> list[tuple[str, str, str, str]]:
        """Each (joint, movement, side, mode) measured, in first-seen order."""
        seen: dict[tuple[str, str, str, str], None] = {}
        for session in self.sessions:
            for reading in session.rom:
                seen.setdefault(reading.series, None)
        return list(seen)

    def goal_names(self) -> list[str]:
        """Each goal named, in first-seen order."""
        seen: dict[str, None] = {}
        for session in self.sessions:
            for mark in session.goals:
                seen.setdefault(mark.goal, None)
        return list(seen)


def parse_report(stdout: str) -> ProgressReport:
    """The JSON document as a ProgressReport; ValueError when it is not one."""
    try:
        doc = json.loads(stdout)
        if doc.get("version") != JSON_VERSION:
            raise ValueError(f"report version {doc.get('version')!r}, expected {JSON_VERSION}")
        sessions = tuple(_session(s) for s in doc["sessions"])
        return ProgressReport(str(doc["pseudonym"]), sessions)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a progress report: missing or malformed {exc}") from None


def _session(raw: dict[str, Any]) -> SessionRow:
    rom = tuple(
        RomReading(r["joint"], r["movement"], r["side"], r["mode"], int(r["degrees"]))
        for r in raw["rom"]
    )
    goals = tuple(GoalMark(g["goal"], g["status"], g.get("measure") or "") for g in raw["goals"])
    return SessionRow(
        raw["session_id"],
        raw["started_wall"],
        raw["verification"],
        raw.get("problem"),
        raw.get("pain_before"),
        raw.get("pain_after"),
        rom,
        goals,
    )
