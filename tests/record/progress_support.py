"""Visits of one patient written through the real Recorder: pain, ROM readings, goal statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionconsole.record.recorder import Recorder
from sessionconsole.record.store import wall_after

S = 1_000_000_000


@dataclass(frozen=True)
class Visit:
    """One session's progress measures, as a therapist would enter them."""

    day: str  # YYYY-MM-DD; the session starts at 09:00 UTC
    pseudonym: str = "PT-0042"
    pain_before: int | None = None
    pain_after: int | None = None
    rom: tuple[dict[str, Any], ...] = ()
    goals: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def knee(degrees: int, side: str = "right", mode: str = "active") -> dict[str, Any]:
    """A knee flexion reading."""
    return {"joint": "knee", "movement": "flexion", "side": side, "degrees": degrees, "mode": mode}


def write_visit(db: Path, visit: Visit, patient_entry: str | None = None) -> str:
    """Write one session for the visit through the Recorder; its id. An empty pseudonym
    opens it without one; `patient_entry` then names the patient later, as the controller's
    `patient` command does."""
    wall0 = f"{visit.day}T09:00:00.000000+00:00"
    clock = [0]

    def at() -> tuple[int, str]:
        clock[0] += S
        return 10 * S + clock[0], wall_after(wall0, clock[0])

    people = {"patient_pseudonym": visit.pseudonym} if visit.pseudonym else {}
    meta = {"therapist": "T-01", **people, **visit.extra}
    with Recorder(db) as recorder:
        sid = recorder.open_session(meta, 10 * S, wall0).result(timeout=5)
        if patient_entry is not None:
            named = {"pseudonym": patient_entry, "operator": "T-01"}
            recorder.submit(sid, "patient", named, *at()).result(timeout=5)
        if visit.pain_before is not None:
            pain = {"when": "before", "score": visit.pain_before, "operator": "T-01"}
            recorder.submit(sid, "pain_score", pain, *at()).result(timeout=5)
        for reading in visit.rom:
            payload = {"notes": "", "operator": "T-01", **reading}
            recorder.submit(sid, "range_of_motion", payload, *at()).result(timeout=5)
        for goal in visit.goals:
            payload = {"measure": "", "operator": "T-01", **goal}
            recorder.submit(sid, "goal_status", payload, *at()).result(timeout=5)
        if visit.pain_after is not None:
            pain = {"when": "after", "score": visit.pain_after, "operator": "T-01"}
            recorder.submit(sid, "pain_score", pain, *at()).result(timeout=5)
        recorder.end_session(sid, "completed", None, {"alarms": 0}, *at()).result(timeout=5)
    return sid


WALK = "walk 400 m without a rest"
STAIRS = "climb one flight of stairs"


def three_visits(db: Path) -> list[str]:
    """PT-0042 over three weeks (written out of order), and one visit of another patient."""
    third = Visit(
        "2026-03-16",
        pain_before=3,
        pain_after=1,
        rom=(knee(120), knee(128, mode="passive")),
        goals=({"goal": WALK, "status": "met", "measure": "420 m"},),
    )
    first = Visit(
        "2026-03-02",
        pain_before=7,
        pain_after=5,
        rom=(knee(85), knee(95, mode="passive")),
        goals=({"goal": WALK, "status": "not-started"}, {"goal": STAIRS, "status": "not-started"}),
    )
    second = Visit(
        "2026-03-09",
        pain_before=5,
        pain_after=3,
        rom=(knee(104),),
        goals=(
            {"goal": f" {WALK.replace(' ', '  ')}", "status": "progressing", "measure": "250 m"},
        ),
    )
    other = Visit("2026-03-05", pseudonym="PT-0099", pain_before=9, rom=(knee(30, "left"),))
    ids = {name: write_visit(db, v) for name, v in (("third", third), ("first", first))}
    ids["other"] = write_visit(db, other)
    ids["second"] = write_visit(db, second)
    return [ids["first"], ids["second"], ids["third"], ids["other"]]
