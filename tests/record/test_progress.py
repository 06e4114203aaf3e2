"""The progress module over sessions written by the real Recorder: order, measures, findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessionconsole.record.progress import PseudonymError, gather_progress
from sessionconsole.record.signing import RecordKey
from sessionconsole.record.store import SessionStore
from tests.record.progress_support import STAIRS, WALK, three_visits
from tests.record.test_store import tamperer


@pytest.fixture
def clinic(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three visits of PT-0042 (written out of order) and one of PT-0099."""
    db = tmp_path / "record.db"
    return db, three_visits(db)


def test_sessions_come_in_time_order_with_pain_rom_and_goals(
    clinic: tuple[Path, list[str]], key: RecordKey
) -> None:
    db, (first, second, third, _other) = clinic
    with SessionStore(db, create=False, key=key) as store:
        progress = gather_progress(store, "PT-0042", verify=True)
    assert [s.session_id for s in progress.sessions] == [first, second, third]
    assert [s.day for s in progress.sessions] == ["2026-03-02", "2026-03-09", "2026-03-16"]
    assert [(s.pain_before, s.pain_after) for s in progress.sessions] == [(7, 5), (5, 3), (3, 1)]
    assert [[(m.degrees, m.mode) for m in s.rom] for s in progress.sessions] == [
        [(85, "active"), (95, "passive")],
        [(104, "active")],
        [(120, "active"), (128, "passive")],
    ]
    assert progress.rom_series() == [
        ("knee", "flexion", "right", "active"),
        ("knee", "flexion", "right", "passive"),
    ]
    # The same goal typed with a double space groups with the others.
    assert progress.goal_names() == [WALK, STAIRS]
    walk = [(g.status, g.measure) for s in progress.sessions for g in s.goals if g.goal == WALK]
    assert walk == [("not-started", ""), ("progressing", "250 m"), ("met", "420 m")]
    assert {s.verification for s in progress.sessions} == {"verified"}
    assert progress.key_id == key.key_id and not progress.failed and not progress.unproven


def test_another_patients_sessions_are_not_mixed_in(
    clinic: tuple[Path, list[str]], key: RecordKey
) -> None:
    db, ids = clinic
    with SessionStore(db, create=False, key=key) as store:
        other = gather_progress(store, "PT-0099", verify=True)
        nobody = gather_progress(store, "PT-7777", verify=True)
    assert [s.session_id for s in other.sessions] == [ids[3]]
    assert other.sessions[0].pain_after is None and other.sessions[0].rom[0].side == "left"
    assert nobody.sessions == () and nobody.key_id is None


def test_a_tampered_session_is_reported_not_hidden(
    clinic: tuple[Path, list[str]], key: RecordKey
) -> None:
    db, (first, second, _third, _other) = clinic
    with tamperer(db) as conn:  # someone "improves" the second visit's knee reading
        row = conn.execute(
            "SELECT seq, payload FROM entries WHERE session_id = ? AND kind = 'range_of_motion'",
            (second,),
        ).fetchone()
        edited = json.loads(row[1]) | {"degrees": 130}
        conn.execute(
            "UPDATE entries SET payload = ? WHERE session_id = ? AND seq = ?",
            (json.dumps(edited), second, row[0]),
        )
    with SessionStore(db, create=False, key=key) as store:
        progress = gather_progress(store, "PT-0042", verify=True)
    assert [s.session_id for s in progress.failed] == [second]
    failed = progress.failed[0]
    assert failed.rom[0].degrees == 130  # still shown, but marked
    assert failed.problem is not None and f"entry {row[0]} (range_of_motion)" in failed.problem
    assert progress.sessions[0].session_id == first
    assert progress.sessions[0].verification == "verified"


def test_without_verification_every_session_is_marked_not_checked(
    clinic: tuple[Path, list[str]],
) -> None:
    db, _ids = clinic
    with SessionStore(db, create=False) as store:
        progress = gather_progress(store, "PT-0042", verify=False)
    assert len(progress.unproven) == 3 and progress.key_id is None
    assert {s.verification for s in progress.sessions} == {"not checked"}
    assert "not checked" in (progress.sessions[0].problem or "")


@pytest.mark.parametrize("bad", ["Jane Doe", "ab", "", "PT 0042", "x" * 40])
def test_a_name_or_malformed_pseudonym_is_refused(tmp_path: Path, bad: str) -> None:
    db = tmp_path / "record.db"
    three_visits(db)
    store = SessionStore(db, create=False)
    with store, pytest.raises(PseudonymError, match="never the patient's name"):
        gather_progress(store, bad, verify=False)


def test_a_session_without_progress_measures_still_counts(tmp_path: Path, key: RecordKey) -> None:
    from tests.record.progress_support import Visit, write_visit

    db = tmp_path / "record.db"
    sid = write_visit(db, Visit("2026-04-01"))
    with SessionStore(db, create=False, key=key) as store:
        (only,) = gather_progress(store, "PT-0042", verify=True).sessions
    assert only.session_id == sid and (only.pain_before, only.pain_after) == (None, None)
    assert only.rom == () and only.goals == () and only.exit_status == "completed"


def test_a_session_named_by_a_later_patient_entry_counts(tmp_path: Path, key: RecordKey) -> None:
    """A session opened without --patient belongs to the pseudonym its `patient` entry names."""
    from tests.record.progress_support import Visit, knee, write_visit

    db = tmp_path / "record.db"
    sid = write_visit(
        db, Visit("2026-04-01", pseudonym="", rom=(knee(90),)), patient_entry="PT-0042"
    )
    with SessionStore(db, create=False, key=key) as store:
        (only,) = gather_progress(store, "PT-0042", verify=True).sessions
    assert only.session_id == sid and only.rom[0].degrees == 90
    assert only.verification == "verified"
