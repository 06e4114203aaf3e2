"""One patient's progress across sessions: pain before/after, range of motion, functional goals.

Pure over a SessionStore: sessions are picked by the pseudonym in their session_start entry,
read through `load_session_view`, and put in time order. Each session is also re-verified
(hashes, links, signatures) when the store was opened with the installation key; a session
that fails is kept in the report and marked, never dropped, so a chart cannot look clean over
a tampered record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from sessionconsole.model.session import check_pseudonym as check_session_pseudonym
from sessionconsole.record.filters import patient_of
from sessionconsole.record.session_view import GoalStatus, RomMeasurement, load_session_view
from sessionconsole.record.store import SessionInfo, SessionStore, StoreError

Verification = Literal["verified", "failed", "unsigned", "not checked"]
VERIFIED: Final[Verification] = "verified"
FAILED: Final[Verification] = "failed"
UNSIGNED: Final[Verification] = "unsigned"
NOT_CHECKED: Final[Verification] = "not checked"


class PseudonymError(ValueError):
    """The patient reference is not a pseudonym (a code such as PT-0042, never a name)."""


@dataclass(frozen=True, slots=True)
class SessionProgress:
    """What one session recorded about the patient's progress, and whether it verifies."""

    session_id: str
    started_wall: str
    ended_wall: str | None
    exit_status: str | None
    pain_before: int | None
    pain_after: int | None
    rom: tuple[RomMeasurement, ...]
    goals: tuple[GoalStatus, ...]
    verification: Verification
    problem: str | None = None  # why verification failed or was not done

    @property
    def day(self) -> str:
        """The UTC calendar day the session started on (YYYY-MM-DD)."""
        return self.started_wall[:10]


@dataclass(frozen=True, slots=True)
class PatientProgress:
    """Every session of one pseudonym in time order, with what verification found."""

    pseudonym: str
    sessions: tuple[SessionProgress, ...]
    key_id: str | None  # the key signatures were checked against (None: not checked)

    @property
    def failed(self) -> tuple[SessionProgress, ...]:
        """Sessions whose hashes, links or signatures do not check out."""
        return tuple(s for s in self.sessions if s.verification == FAILED)

    @property
    def unproven(self) -> tuple[SessionProgress, ...]:
        """Sessions that did not fail but are not proven (unsigned, or no key to check)."""
        return tuple(s for s in self.sessions if s.verification in (UNSIGNED, NOT_CHECKED))

    def rom_series(self) -> list[tuple[str, str, str, str]]:
        """Each (joint, movement, side, mode) measured in any session, in first-seen order."""
        seen: dict[tuple[str, str, str, str], None] = {}
        for session in self.sessions:
            for m in session.rom:
                seen.setdefault((m.joint, m.movement, m.side, m.mode), None)
        return list(seen)

    def goal_names(self) -> list[str]:
        """Each goal named in any session, in first-seen order."""
        seen: dict[str, None] = {}
        for session in self.sessions:
            for g in session.goals:
                seen.setdefault(g.goal, None)
        return list(seen)


def check_pseudonym(text: str) -> str:
    """The pseudonym, or a PseudonymError saying what a pseudonym looks like (the session
    model's own rule and words)."""
    try:
        return check_session_pseudonym(text)
    except ValueError as exc:
        raise PseudonymError(str(exc)) from None


def gather_progress(store: SessionStore, pseudonym: str, *, verify: bool) -> PatientProgress:
    """Every session recorded for `pseudonym`, oldest first, each verified when `verify`
    (the store must then hold the installation key)."""
    check_pseudonym(pseudonym)
    meta = store.start_meta()
    mine = [s for s in store.sessions() if patient_of(meta.get(s.session_id, {})) == pseudonym]
    mine.sort(key=lambda s: (_instant(s.started_wall), s.session_id))
    sessions, key_ids = [], set()
    for info in mine:
        checked = _verification(store, info.session_id) if verify else None
        if checked is not None and checked[2] is not None:
            key_ids.add(checked[2])
        sessions.append(_session(store, info, checked))
    return PatientProgress(pseudonym, tuple(sessions), min(key_ids) if key_ids else None)


_Checked = tuple[Verification, str | None, str | None]  # outcome, problem, key id


def _session(store: SessionStore, info: SessionInfo, checked: _Checked | None) -> SessionProgress:
    """One session's progress measures, read through its view, with its verification."""
    outcome: _Checked = checked or (NOT_CHECKED, "signatures not checked (no key given)", None)
    view = load_session_view(store, info.session_id)
    before, after = view.pain("before"), view.pain("after")
    return SessionProgress(
        info.session_id,
        info.started_wall,
        info.ended_wall,
        info.exit_status,
        None if before is None else before.score,
        None if after is None else after.score,
        tuple(view.rom_measurements),
        tuple(_normalised(g) for g in view.goal_statuses),
        outcome[0],
        outcome[1],
    )


def _verification(store: SessionStore, session_id: str) -> _Checked:
    """Re-verify one session: verified, failed (naming the first bad entry), or unsigned."""
    try:
        report = store.verify(session_id)
    except StoreError as exc:
        return NOT_CHECKED, str(exc), None
    if report.failures:
        f = report.failures[0]
        return FAILED, f"entry {f.seq} ({f.kind or 'missing'}): {f.reason}", report.key_id
    if report.unsigned:
        u = report.unsigned[0]
        why = f"entries {u.first_seq}-{u.last_seq} carry no signature (schema 1)"
        return UNSIGNED, why, report.key_id
    return VERIFIED, None, report.key_id


def _normalised(goal: GoalStatus) -> GoalStatus:
    """The goal with runs of white space folded, so the same goal groups across sessions."""
    text = " ".join(goal.goal.split())
    if text == goal.goal:
        return goal
    return GoalStatus(text, goal.status, goal.measure, goal.mono_ns, goal.wall)


def _instant(wall: str) -> datetime:
    """A stored wall time as an aware datetime (the record writes UTC ISO 8601)."""
    return datetime.fromisoformat(wall)
