"""SessionStore on real files: hash chain, verify, append-only triggers, interrupted sessions."""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionconsole.record.chain import (
    GENESIS_HASH,
    canonical_json,
    entry_hash,
    entry_hash_from_json,
)
from sessionconsole.record.store import (
    INTERRUPTED_REASON,
    SCHEMA_VERSION,
    AmbiguousSessionError,
    EntryDraft,
    SessionEndedError,
    SessionStore,
    StoreError,
    UnknownSessionError,
)
from tests.record.keys import installed_key

T0 = 1_000_000_000


def wall(second: int) -> str:
    """A fixed ISO-8601 UTC wall time, second seconds into the test session."""
    return f"2026-11-03T10:{second // 60:02d}:{second % 60:02d}+00:00"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's record database lives."""
    return tmp_path / "record.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SessionStore]:
    """A fresh store on a real file."""
    with SessionStore(db_path, key=installed_key()) as store:
        yield store


def fill(store: SessionStore, notes: int = 5, *, end: bool = True) -> str:
    """A session with a start, `notes` note entries and (optionally) an end."""
    sid = store.open_session({"therapist": "T-01", "patient": "P-7"}, T0, wall(0))
    for i in range(1, notes + 1):
        store.append(sid, "note", {"text": f"note {i}", "pain": i}, T0 + i, wall(i))
    if end:
        store.end_session(sid, "completed", None, {"notes": notes}, T0 + 99, wall(59))
    return sid


def tamperer(db_path: Path) -> sqlite3.Connection:
    """A raw connection with the append-only triggers dropped, as someone editing the file."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def test_chain_links_every_entry_to_the_one_before(store: SessionStore) -> None:
    sid = fill(store)
    entries = store.entries(sid)
    assert [e.seq for e in entries] == list(range(1, 8))
    assert [e.kind for e in entries][::6] == ["session_start", "session_end"]
    assert entries[0].prev_hash == GENESIS_HASH == "0" * 64
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash


def test_hash_is_sha256_of_the_canonical_json_of_all_other_fields(store: SessionStore) -> None:
    sid = store.open_session({"ö": 1}, T0, wall(0))
    entry = store.append(sid, "note", {"b": [1, 2.5], "a": "ü"}, T0 + 5, wall(1))
    fields: dict[str, Any] = {
        "session_id": sid,
        "seq": 2,
        "mono_ns": T0 + 5,
        "wall": wall(1),
        "kind": "note",
        "payload": {"a": "ü", "b": [1, 2.5]},
        "prev_hash": store.entries(sid)[0].hash,
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert entry.hash == hashlib.sha256(text.encode()).hexdigest()
    assert entry.hash == entry_hash(**fields)


def test_chains_run_per_session(store: SessionStore) -> None:
    first, second = fill(store, 2, end=False), fill(store, 3, end=False)
    store.append(first, "note", {"x": 1}, T0 + 50, wall(50))
    assert store.entries(second)[0].prev_hash == GENESIS_HASH
    assert [e.seq for e in store.entries(first)] == [1, 2, 3, 4]


def test_verify_passes_on_an_untouched_record(store: SessionStore) -> None:
    fill(store)
    fill(store, 3, end=False)
    report = store.verify()
    assert report.ok
    assert (report.sessions_checked, report.entries_checked) == (2, 7 + 4)


def test_one_changed_payload_byte_is_named_by_verify(store: SessionStore, db_path: Path) -> None:
    other, sid = fill(store), fill(store)
    with tamperer(db_path) as conn:
        (payload,) = conn.execute(
            "SELECT payload FROM entries WHERE session_id = ? AND seq = 4", (sid,)
        ).fetchone()
        edited = payload.replace('"pain":3', '"pain":0')
        assert len(edited) == len(payload) and edited != payload
        conn.execute(
            "UPDATE entries SET payload = ? WHERE session_id = ? AND seq = 4", (edited, sid)
        )
    report = store.verify()
    assert not report.ok
    assert [(f.session_id, f.seq, f.kind, f.reason) for f in report.failures] == [
        (sid, 4, "note", "hash mismatch")
    ]
    assert store.verify(other).ok


def test_rehashing_the_edited_entry_alone_fails_its_signature(
    store: SessionStore, db_path: Path
) -> None:
    sid = fill(store)
    with tamperer(db_path) as conn:
        edited = store.entries(sid)[3]
        payload = dict(edited.payload, pain=0)
        digest = entry_hash(
            session_id=sid,
            seq=4,
            mono_ns=edited.mono_ns,
            wall=edited.wall,
            kind="note",
            payload=payload,
            prev_hash=edited.prev_hash,
        )
        conn.execute(
            "UPDATE entries SET payload = ?, hash = ? WHERE session_id = ? AND seq = 4",
            (canonical_json(payload), digest, sid),
        )
    (failure,) = store.verify().failures
    assert (failure.session_id, failure.seq, failure.kind) == (sid, 4, "note")
    assert failure.reason.startswith("signature does not match")


def test_a_deleted_entry_is_a_sequence_gap(store: SessionStore, db_path: Path) -> None:
    sid = fill(store)
    with tamperer(db_path) as conn:
        conn.execute("DELETE FROM entries WHERE session_id = ? AND seq = 3", (sid,))
    (failure,) = store.verify(sid).failures
    assert (failure.seq, failure.kind, failure.reason) == (4, "note", "sequence gap")


def test_a_cut_off_tail_of_an_ended_session_is_caught(store: SessionStore, db_path: Path) -> None:
    sid = fill(store)
    with tamperer(db_path) as conn:
        conn.execute("DELETE FROM entries WHERE session_id = ? AND seq = 7", (sid,))
    (failure,) = store.verify(sid).failures
    assert failure.seq == 6
    assert "last entry is not session_end" in failure.reason


def test_triggers_refuse_update_and_delete(store: SessionStore, db_path: Path) -> None:
    sid = fill(store)
    conn = sqlite3.connect(db_path, isolation_level=None)
    refused = [
        "UPDATE entries SET kind = 'x'",
        "UPDATE entries SET payload = '{}' WHERE seq = 2",
        "DELETE FROM entries WHERE seq = 7",
        "DELETE FROM sessions",
        "UPDATE sessions SET exit_status = 'aborted'",  # already ended: the end is final
    ]
    for statement in refused:
        with pytest.raises(sqlite3.IntegrityError, match=r"append-only|only the end"):
            conn.execute(statement)
    conn.close()
    assert store.verify().ok
    assert len(store.entries(sid)) == 7


def test_close_interrupted_ends_every_open_session(store: SessionStore) -> None:
    done, open_a, open_b = fill(store), fill(store, 2, end=False), fill(store, 0, end=False)
    closed = store.close_interrupted(T0 + 500, wall(30))
    assert closed == [open_a, open_b]
    statuses = {s.session_id: (s.exit_status, s.reason, s.ended_wall) for s in store.sessions()}
    assert statuses[done] == ("completed", None, wall(59))
    assert statuses[open_a] == ("interrupted", INTERRUPTED_REASON, wall(30))
    last = store.entries(open_a)[-1]
    assert last.kind == "session_end"
    assert last.payload == {
        "exit_status": "interrupted",
        "reason": INTERRUPTED_REASON,
        "summary": {"last_entry_seq": 3, "last_entry_wall": wall(2)},
    }
    assert store.verify().ok
    assert store.close_interrupted(T0 + 600, wall(31)) == []


def test_an_ended_session_takes_no_more_entries(store: SessionStore) -> None:
    sid = fill(store)
    with pytest.raises(SessionEndedError):
        store.append(sid, "note", {}, T0, wall(1))
    with pytest.raises(SessionEndedError):
        store.end_session(sid, "stopped", "again", {}, T0, wall(1))


@pytest.mark.parametrize(
    ("kind", "payload", "mono_ns", "at", "message"),
    [
        ("note", {"x": float("nan")}, T0, wall(1), r"payload\.x: nan"),
        ("note", {"x": {1: "a"}}, T0, wall(1), r"key 1 is int"),
        ("note", {"x": object()}, T0, wall(1), r"payload\.x: object"),
        ("note", {}, 1.5, wall(1), "mono_ns must be int"),
        ("note", {}, 2**64, wall(1), "64 bits"),
        ("note", {}, T0, "2026-11-03T10:00:00", "must be in UTC"),
        ("note", {}, T0, "yesterday", "not ISO-8601"),
        ("Bad Kind", {}, T0, wall(1), "snake_case"),
        ("session_end", {}, T0, wall(1), "end_session only"),
    ],
)
def test_bad_entries_are_refused_with_a_clear_error(
    store: SessionStore, kind: str, payload: Any, mono_ns: Any, at: str, message: str
) -> None:
    sid = fill(store, 0, end=False)
    with pytest.raises(ValueError, match=message):
        store.append(sid, kind, payload, mono_ns, at)
    assert len(store.entries(sid)) == 1


def test_bad_exit_status_is_refused(store: SessionStore) -> None:
    sid = fill(store, 0, end=False)
    with pytest.raises(ValueError, match="exit_status 'done'"):
        store.end_session(sid, "done", None, {}, T0, wall(1))


def test_append_many_writes_all_or_nothing(store: SessionStore) -> None:
    sid = fill(store, 0, end=False)
    good = EntryDraft(sid, "note", {"n": 1}, T0, wall(1))
    with pytest.raises(UnknownSessionError):
        store.append_many([good, EntryDraft("f" * 32, "note", {}, T0, wall(1))])
    assert len(store.entries(sid)) == 1
    assert [e.seq for e in store.append_many([good, good])] == [2, 3]


def test_database_is_wal_full_sync_versioned(store: SessionStore, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopening_keeps_the_chain_going(db_path: Path) -> None:
    with SessionStore(db_path, key=installed_key()) as store:
        sid = fill(store, 2, end=False)
    with SessionStore(db_path, create=False, key=installed_key()) as store:
        assert store.append(sid, "note", {}, T0, wall(9)).seq == 4
        assert store.verify().ok


def test_opening_refuses_missing_foreign_and_newer_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no record database"):
        SessionStore(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "text.db").write_text("not sqlite at all, just some text " * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        SessionStore(tmp_path / "text.db")
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreError, match="not a SessionConsole record database"):
        SessionStore(tmp_path / "empty.db", create=False)
    newer = sqlite3.connect(tmp_path / "newer.db")
    newer.execute("PRAGMA user_version = 99")
    newer.close()
    with pytest.raises(StoreError, match="schema 99"):
        SessionStore(tmp_path / "newer.db")


def test_sessions_resolve_by_id_prefix_and_last(store: SessionStore) -> None:
    a = store.open_session({}, T0, wall(0), session_id="ab" + "0" * 30)
    b = store.open_session({}, T0, wall(0), session_id="ac" + "0" * 30)
    assert store.resolve_session("last") == b
    assert store.resolve_session("AB") == a
    assert store.resolve_session(b) == b
    with pytest.raises(AmbiguousSessionError, match="several"):
        store.resolve_session("a")
    with pytest.raises(UnknownSessionError):
        store.resolve_session("ff")
    with pytest.raises(UnknownSessionError):
        store.resolve_session("not-hex")
    assert [s.entry_count for s in store.sessions()] == [1, 1]


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
payloads = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def test_any_json_payload_round_trips_and_verifies(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "hypothesis.db", key=installed_key()) as store:
        sid = store.open_session({}, T0, wall(0))

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(payload=payloads)
        def round_trip(payload: dict[str, Any]) -> None:
            entry = store.append(sid, "note", payload, T0, wall(1))
            assert entry.payload == payload
            assert store.entries(sid)[-1] == entry

        round_trip()
        assert store.verify().ok


@settings(max_examples=200, deadline=None)
@given(
    payload=payloads,
    kind=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    text=st.text(max_size=12),
    number=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_the_fast_hash_equals_the_defining_one(
    payload: dict[str, Any], kind: str, text: str, number: int
) -> None:
    fields: dict[str, Any] = {
        "session_id": text,
        "seq": abs(number),
        "mono_ns": number,
        "wall": text,
        "kind": kind,
        "prev_hash": text[::-1],
    }
    assert entry_hash(payload=payload, **fields) == entry_hash_from_json(
        payload_json=canonical_json(payload), **fields
    )
