"""A patient's progress as text, JSON or CSV (what `sessionconsole progress` prints; pure).

The JSON is the TUI's input (it may not import `record`), so its shape is part of the CLI's
contract: see docs/PROGRESS.md.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sessionconsole.record.progress import FAILED, VERIFIED, PatientProgress, SessionProgress

JSON_VERSION = 1
CSV_COLUMNS = (
    "session_id",
    "started_wall",
    "verification",
    "kind",
    "name",
    "side",
    "mode",
    "value",
    "detail",
)


def progress_json(progress: PatientProgress) -> str:
    """The whole report as one JSON document (sessions oldest first)."""
    document = {
        "version": JSON_VERSION,
        "pseudonym": progress.pseudonym,
        "key_id": progress.key_id,
        "sessions": [_session_dict(s) for s in progress.sessions],
    }
    return json.dumps(document, ensure_ascii=False, indent=1)


def _session_dict(s: SessionProgress) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "started_wall": s.started_wall,
        "ended_wall": s.ended_wall,
        "exit_status": s.exit_status,
        "verification": s.verification,
        "problem": s.problem,
        "pain_before": s.pain_before,
        "pain_after": s.pain_after,
        "rom": [
            {
                "joint": m.joint,
                "movement": m.movement,
                "side": m.side,
                "mode": m.mode,
                "degrees": m.degrees,
                "notes": m.notes,
                "wall": m.wall,
            }
            for m in s.rom
        ],
        "goals": [
            {"goal": g.goal, "status": g.status, "measure": g.measure, "wall": g.wall}
            for g in s.goals
        ],
    }


def progress_csv(progress: PatientProgress) -> str:
    """One row per measure (pain before/after, each ROM reading, each goal status)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in progress.sessions:
        head = (s.session_id, s.started_wall, s.verification)
        for when, score in (("before", s.pain_before), ("after", s.pain_after)):
            if score is not None:
                writer.writerow((*head, "pain", "NPRS", when, "", score, ""))
        for m in s.rom:
            name = f"{m.joint} {m.movement}"
            writer.writerow((*head, "rom", name, m.side, m.mode, m.degrees, m.notes))
        for g in s.goals:
            writer.writerow((*head, "goal", g.goal, "", "", g.status, g.measure))
    return out.getvalue()


def progress_text(progress: PatientProgress) -> str:
    """A report for people: verification findings first, then one block per session."""
    lines = [f"Progress of {progress.pseudonym}: {len(progress.sessions)} sessions"]
    if not progress.sessions:
        lines.append(f"no sessions recorded for {progress.pseudonym}")
    lines += _findings(progress)
    for s in progress.sessions:
        lines.append("")
        lines += _session_lines(s)
    lines += _goal_lines(progress)
    return "\n".join(lines) + "\n"


def _findings(progress: PatientProgress) -> list[str]:
    """FAILED / NOT PROVEN lines, or the one line saying every session verified."""
    lines = [
        f"FAILED verification: session {s.session_id} ({s.day}): {s.problem}"
        for s in progress.failed
    ]
    lines += [
        f"NOT PROVEN: session {s.session_id} ({s.day}): {s.verification}: {s.problem}"
        for s in progress.unproven
    ]
    if progress.sessions and not lines:
        lines.append(f"all sessions verified (signed by key {progress.key_id})")
    return lines


def _session_lines(s: SessionProgress) -> list[str]:
    flag = "" if s.verification == VERIFIED else f"  [{s.verification.upper()}]"
    status = s.exit_status or "open"
    lines = [f"{s.started_wall[:16].replace('T', ' ')}  session {s.session_id}  {status}{flag}"]
    before, after = _score(s.pain_before), _score(s.pain_after)
    lines.append(f"  pain (NPRS 0-10): before {before}, after {after}")
    for m in s.rom:
        note = f"  ({m.notes})" if m.notes else ""
        lines.append(f"  ROM {m.joint} {m.movement} {m.side} {m.mode}: {m.degrees} deg{note}")
    for g in s.goals:
        measure = f" ({g.measure})" if g.measure else ""
        lines.append(f"  goal {g.goal!r}: {g.status}{measure}")
    if s.verification == FAILED:
        lines.append("  values above are from a session that FAILED verification")
    return lines


def _goal_lines(progress: PatientProgress) -> list[str]:
    """Each goal's statuses over the sessions, oldest first (the last one is where it stands)."""
    names = progress.goal_names()
    if not names:
        return []
    lines = ["", "Goals over sessions:"]
    for name in names:
        steps = [
            f"{s.day} {g.status}" for s in progress.sessions for g in s.goals if g.goal == name
        ]
        lines.append(f"  {name}: " + " -> ".join(steps))
    return lines


def _score(score: int | None) -> str:
    return "-" if score is None else f"{score}/10"
