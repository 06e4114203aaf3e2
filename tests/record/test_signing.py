"""Installation key and signed entries: edits caught even when every hash is recomputed."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from sessionconsole.model.paths import record_key_path
from sessionconsole.record.chain import GENESIS_HASH, canonical_json, entry_hash
from sessionconsole.record.cli import add_parser
from sessionconsole.record.signing import (
    RecordKey,
    RecordKeyError,
    create_key,
    load_key,
    load_or_create_key,
)
from sessionconsole.record.store import _MIGRATIONS, SessionStore, StoreError

T0 = 1_000_000_000
WALL = "2026-11-03T10:00:00+00:00"


def run(*argv: str) -> int:
    """Run one `records` command through a parser built by add_parser."""
    parser = argparse.ArgumentParser(prog="sessionconsole")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def fill(store: SessionStore, notes: int = 4) -> str:
    """A completed session: start, `notes` notes, end."""
    sid = store.open_session({"therapist": "T-01"}, T0, WALL)
    for i in range(1, notes + 1):
        store.append(sid, "note", {"text": f"note {i}"}, T0 + i, WALL)
    store.end_session(sid, "completed", None, {}, T0 + 99, WALL)
    return sid


def raw(db: Path) -> sqlite3.Connection:
    """A connection as someone editing the file would use, with the append-only guards gone."""
    conn = sqlite3.connect(db, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def rechain_from(conn: sqlite3.Connection, sid: str, seq: int) -> None:
    """Recompute prev_hash and hash of every entry from seq on, as a forger without the key."""
    rows = conn.execute(
        "SELECT seq, mono_ns, wall, kind, payload, prev_hash FROM entries"
        " WHERE session_id = ? AND seq >= ? ORDER BY seq",
        (sid, seq),
    ).fetchall()
    prev = rows[0][5]
    for number, mono_ns, wall, kind, payload, _ in rows:
        digest = entry_hash(
            session_id=sid,
            seq=number,
            mono_ns=mono_ns,
            wall=wall,
            kind=kind,
            payload=json.loads(payload),
            prev_hash=prev,
        )
        conn.execute(
            "UPDATE entries SET prev_hash = ?, hash = ? WHERE session_id = ? AND seq = ?",
            (prev, digest, sid, number),
        )
        prev = digest


# -- the key file ------------------------------------------------------------------------------


def test_the_key_is_created_owner_only_on_first_use_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "sessionconsole" / "record.key"
    first = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_text().strip()) == 64
    again = load_or_create_key(path)
    assert again.key_id == first.key_id
    assert first.secret.hex() not in repr(first)
    with pytest.raises(FileExistsError):
        create_key(path)  # never overwrites an installation's key


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "record.key"
    create_key(path)
    path.chmod(0o640)
    with pytest.raises(RecordKeyError, match=r"mode 0640: group/others .*\(chmod 600 "):
        load_key(path)
    path.chmod(0o604)
    with pytest.raises(RecordKeyError, match="mode 0604"):
        load_or_create_key(path)


def test_a_missing_or_malformed_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecordKeyError, match=r"no record key at .*missing\.key"):
        load_key(tmp_path / "missing.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not hex at all\n")
    bad.chmod(0o600)
    with pytest.raises(RecordKeyError, match="is not 64 hex digits"):
        load_key(bad)
    bad.write_text("ab" * 16 + "\n")  # 16 bytes, too short
    with pytest.raises(RecordKeyError, match="is not 64 hex digits"):
        load_key(bad)


def test_the_key_path_comes_from_the_env_else_the_owners_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONCONSOLE_RECORD_KEY", str(tmp_path / "k"))
    assert record_key_path() == tmp_path / "k"
    monkeypatch.delenv("SESSIONCONSOLE_RECORD_KEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert record_key_path() == tmp_path / "xdg" / "sessionconsole" / "record.key"


# -- signed entries ----------------------------------------------------------------------------


def test_every_entry_is_signed_with_the_key(tmp_path: Path, key: RecordKey) -> None:
    db = tmp_path / "r.db"
    with SessionStore(db, key=key) as store:
        sid = fill(store)
        report = store.verify()
    assert report.proven and report.key_id == key.key_id and report.entries_checked == 6
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT hash, key_id, mac FROM entries WHERE session_id = ?", (sid,))
    for digest, key_id, mac in rows:
        assert key_id == key.key_id and key.signed(digest, mac)


def test_one_changed_byte_is_named_by_verify(
    tmp_path: Path, key: RecordKey, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    with SessionStore(db, key=key) as store:
        sid = fill(store)
    with raw(db) as conn:
        conn.execute(
            "UPDATE entries SET payload = replace(payload, 'note 3', 'note 8')"
            " WHERE session_id = ? AND seq = 4",
            (sid,),
        )
    assert run("records", "verify", "--db", str(db)) == 1
    assert capsys.readouterr().out == f"FAILED: session {sid} entry 4 (note): hash mismatch\n"


def test_an_edit_with_the_whole_chain_recomputed_still_fails(
    tmp_path: Path, key: RecordKey, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    with SessionStore(db, key=key) as store:
        sid = fill(store)
    with raw(db) as conn:
        conn.execute(
            "UPDATE entries SET payload = ? WHERE session_id = ? AND seq = 3",
            (canonical_json({"text": "note X"}), sid),
        )
        rechain_from(conn, sid, 3)
    assert run("records", "verify", "--db", str(db)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAILED: session {sid} entry 3 (note): signature does not match")


def test_re_signing_with_another_key_is_named_as_such(tmp_path: Path, key: RecordKey) -> None:
    db = tmp_path / "r.db"
    forger = RecordKey(b"\x01" * 32)
    with SessionStore(db, key=forger) as store:
        sid = fill(store)
    with SessionStore(db, create=False, key=key) as store:
        (failure,) = store.verify().failures
    assert (failure.session_id, failure.seq) == (sid, 1)
    assert failure.reason == (
        f"signed with another installation key (key id {forger.key_id}; "
        f"the key given is {key.key_id})"
    )


def test_verify_without_a_key_is_an_error_not_a_pass(
    tmp_path: Path, key: RecordKey, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    with SessionStore(db, key=key) as store:
        fill(store)
    with SessionStore(db, create=False) as store, pytest.raises(StoreError, match="needs the"):
        store.verify()
    missing = tmp_path / "nowhere.key"
    assert run("records", "verify", "--db", str(db), "--key", str(missing)) == 2
    assert f"error: no record key at {missing}" in capsys.readouterr().err
    os.chmod(key.path or "", 0o644)
    assert run("records", "verify", "--db", str(db)) == 2
    assert "must be owner-only" in capsys.readouterr().err


def test_a_store_opened_without_the_key_reads_but_does_not_write(
    tmp_path: Path, key: RecordKey
) -> None:
    db = tmp_path / "r.db"
    with SessionStore(db, key=key) as store:
        sid = fill(store)
    with SessionStore(db, create=False) as store:
        assert len(store.entries(sid)) == 6
        with pytest.raises(StoreError, match="opened without the installation key"):
            store.open_session({}, T0, WALL)


# -- version-1 records (written before signing) ------------------------------------------------


def write_v1_record(db: Path, notes: int = 3, *, end: bool = True) -> str:
    """A record exactly as schema 1 wrote it: chained, unsigned."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in _MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    sid = "ab" * 16
    conn.execute("INSERT INTO sessions (session_id, started_wall) VALUES (?, ?)", (sid, WALL))
    kinds = [("session_start", {"therapist": "T-09"})]
    kinds += [("note", {"text": f"old {i}"}) for i in range(notes)]
    if end:
        kinds.append(("session_end", {"exit_status": "completed", "reason": None, "summary": {}}))
    prev = GENESIS_HASH
    for seq, (kind, payload) in enumerate(kinds, start=1):
        digest = entry_hash(
            session_id=sid,
            seq=seq,
            mono_ns=T0 + seq,
            wall=WALL,
            kind=kind,
            payload=payload,
            prev_hash=prev,
        )
        conn.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, seq, T0 + seq, WALL, kind, canonical_json(payload), prev, digest),
        )
        prev = digest
    if end:
        conn.execute(
            "UPDATE sessions SET ended_wall = ?, exit_status = 'completed' WHERE session_id = ?",
            (WALL, sid),
        )
    conn.close()
    return sid


def test_a_v1_record_opens_read_only_and_verifies_as_unsigned(
    tmp_path: Path, key: RecordKey, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "v1.db"
    sid = write_v1_record(db)
    with SessionStore(db, create=False, key=key) as store:
        assert store.schema_version == 1
        assert [e.kind for e in store.entries(sid)][-1] == "session_end"
        report = store.verify()
        with pytest.raises(StoreError, match=r"schema 1 .* not upgraded"):
            store.append(sid, "note", {}, T0, WALL)
    assert report.ok and not report.proven
    ((unsigned),) = report.unsigned
    assert (unsigned.session_id, unsigned.first_seq, unsigned.last_seq) == (sid, 1, 5)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 1  # untouched
    assert run("records", "verify", "--db", str(db)) == 3
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"UNSIGNED: session {sid} entries 1-5 (5) were written before")
    assert out[1].startswith("NOT PROVEN: 1 sessions, 5 entries checked")


def test_a_v1_record_is_migrated_by_a_writer_and_new_entries_are_signed(
    tmp_path: Path, key: RecordKey
) -> None:
    db = tmp_path / "v1.db"
    old = write_v1_record(db, end=False)  # left open: the writer closes it as interrupted
    with SessionStore(db, key=key) as store:
        assert store.schema_version == 2
        assert store.close_interrupted(T0 + 50, WALL) == [old]
        new = fill(store)
        report = store.verify()
    assert report.ok, report.failures
    assert [(u.session_id, u.last_seq) for u in report.unsigned] == [(old, 4)]
    assert new not in {u.session_id for u in report.unsigned}
    with raw(db) as conn:  # a forger strips the signature of the entry written at v2
        conn.execute(
            "UPDATE entries SET key_id = NULL, mac = NULL WHERE session_id = ? AND seq = 5", (new,)
        )
    with SessionStore(db, create=False, key=key) as store:
        (failure,) = store.verify().failures
    assert (failure.session_id, failure.seq) == (new, 5)
    assert failure.reason == "signature removed: unsigned entry after signed ones"
    with raw(db) as conn:  # stripping a whole session makes it look old: never "proven"
        conn.execute("UPDATE entries SET key_id = NULL, mac = NULL WHERE session_id = ?", (new,))
    with SessionStore(db, create=False, key=key) as store:
        report = store.verify()
    assert report.ok and not report.proven
    assert [(u.session_id, u.count) for u in report.unsigned] == [(old, 4), (new, 6)]


def test_an_edit_in_a_v1_record_is_still_caught_by_its_hashes(
    tmp_path: Path, key: RecordKey
) -> None:
    db = tmp_path / "v1.db"
    sid = write_v1_record(db)
    with raw(db) as conn:
        conn.execute("UPDATE entries SET wall = ? WHERE seq = 2", ("2026-11-03T11:00:00+00:00",))
    with SessionStore(db, create=False, key=key) as store:
        (failure,) = store.verify().failures
    assert (failure.session_id, failure.seq, failure.reason) == (sid, 2, "hash mismatch")


def test_the_controller_refuses_to_start_with_an_unsafe_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sessionconsole.cli import main
    from tests.support import write_room

    room = write_room(tmp_path, port=1)
    loose = tmp_path / "loose.key"
    create_key(loose)
    loose.chmod(0o644)
    argv = ["controller", "--room", str(room), "--db", str(tmp_path / "r.db")]
    assert main([*argv, "--key", str(loose)]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "mode 0644" in err
    assert not (tmp_path / "r.db").exists()  # refused before anything was recorded
