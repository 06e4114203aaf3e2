"""SQLite session store: one append-only, hash-chained sequence of entries per session.

Durability: WAL with ``synchronous=FULL``, so a COMMIT returns only after the WAL is synced.
Append-only: triggers refuse UPDATE/DELETE of entries (a guard against accidents); the hash
chain (see chain.py) signed per entry with the installation key (see signing.py) is the tamper
evidence. The schema is versioned with ``PRAGMA user_version`` and grows by appending to
``_MIGRATIONS``; version 2 added the signature columns (version-1 entries stay unsigned).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, get_args

from sessionconsole.record.chain import (
    GENESIS_HASH,
    JsonDict,
    JsonValueError,
    canonical_json,
    check_json,
    entry_hash,
    entry_hash_from_json,
)
from sessionconsole.record.signing import RecordKey

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
SESSION_START: Final = "session_start"
PATIENT_KIND: Final = "patient"  # names the patient of a session opened without one
SESSION_END: Final = "session_end"
INTERRUPTED_REASON: Final = "controller stopped before the session ended"
ExitStatus = Literal["completed", "stopped", "aborted", "interrupted"]
EXIT_STATUSES: Final[tuple[str, ...]] = get_args(ExitStatus)

_KIND_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_SESSION_ID_RE: Final = re.compile(r"[0-9a-f]{32}\Z")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_SCHEMA_V1: Final = (
    """CREATE TABLE sessions (
        session_id   TEXT PRIMARY KEY CHECK (length(session_id) = 32),
        started_wall TEXT NOT NULL,
        ended_wall   TEXT,
        exit_status  TEXT CHECK (exit_status IN ('completed','stopped','aborted','interrupted')),
        reason       TEXT
    ) STRICT""",
    """CREATE TABLE entries (
        session_id TEXT NOT NULL REFERENCES sessions(session_id),
        seq        INTEGER NOT NULL CHECK (seq >= 1),
        mono_ns    INTEGER NOT NULL,
        wall       TEXT NOT NULL,
        kind       TEXT NOT NULL,
        payload    TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) STRICT""",
    """CREATE TRIGGER entries_refuse_update BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'record entries are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER entries_refuse_delete BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'record entries are append-only: DELETE refused'); END""",
    """CREATE TRIGGER sessions_refuse_delete BEFORE DELETE ON sessions
        BEGIN SELECT RAISE(ABORT, 'record sessions are append-only: DELETE refused'); END""",
    """CREATE TRIGGER sessions_end_once BEFORE UPDATE ON sessions
        WHEN OLD.ended_wall IS NOT NULL
          OR NEW.session_id IS NOT OLD.session_id
          OR NEW.started_wall IS NOT OLD.started_wall
        BEGIN
            SELECT RAISE(ABORT, 'record sessions: only the end of an open session may be set');
        END""",
)

# Version 2: each entry's HMAC-SHA256 under the installation key, and which key made it.
# NULL in entries written at version 1 (verify reports them as unsigned).
_SCHEMA_V2: Final = (
    "ALTER TABLE entries ADD COLUMN key_id TEXT",
    "ALTER TABLE entries ADD COLUMN mac TEXT",
)

# _MIGRATIONS[n] takes a database from user_version n to n + 1.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_SCHEMA_V1, _SCHEMA_V2)

_ENTRY_COLUMNS: Final = "session_id, seq, mono_ns, wall, kind, payload, prev_hash, hash"


class StoreError(Exception):
    """The record database cannot do what was asked; the message says which and why."""


class UnknownSessionError(StoreError):
    """No session matches the given id or reference."""


class AmbiguousSessionError(StoreError):
    """A session id prefix matches more than one session."""


class SessionEndedError(StoreError):
    """The session already has its session_end entry, so nothing more may be appended."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One record entry exactly as stored: its place in the chain and its content."""

    session_id: str
    seq: int
    mono_ns: int
    wall: str
    kind: str
    payload: JsonDict
    prev_hash: str
    hash: str

    def as_dict(self) -> JsonDict:
        """All columns as a JSON-ready dict (for exports and `records show --json`)."""
        return {
            "session_id": self.session_id,
            "seq": self.seq,
            "mono_ns": self.mono_ns,
            "wall": self.wall,
            "kind": self.kind,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class EntryDraft(NamedTuple):
    """An entry to append: everything but its place in the chain, which the store assigns."""

    session_id: str
    kind: str
    payload: Mapping[str, Any]
    mono_ns: int
    wall: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One row of the sessions table plus how many entries the session holds."""

    session_id: str
    started_wall: str
    ended_wall: str | None
    exit_status: str | None
    reason: str | None
    entry_count: int


@dataclass(frozen=True, slots=True)
class VerifyFailure:
    """The first entry of a session that does not check out, and why."""

    session_id: str
    seq: int
    kind: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class UnsignedEntries:
    """A session's leading entries that carry no signature (written before schema version 2)."""

    session_id: str
    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        """How many entries of the session are unsigned."""
        return self.last_seq - self.first_seq + 1


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of re-hashing, re-linking and checking signatures: counts and findings.

    failures are proven problems; unsigned entries are a separate finding: their chain links,
    but without a signature an edit with recomputed hashes cannot be ruled out.
    """

    sessions_checked: int
    entries_checked: int
    failures: tuple[VerifyFailure, ...] = field(default=())
    unsigned: tuple[UnsignedEntries, ...] = field(default=())
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when no checked entry failed its hash, link or signature."""
        return not self.failures

    @property
    def proven(self) -> bool:
        """True when nothing failed and every entry is signed by the key verified against."""
        return self.ok and not self.unsigned


@dataclass(slots=True)
class _Head:
    """Last link of a session's chain while a write transaction appends to it."""

    seq: int
    hash: str
    ended: bool


def with_patient(meta: JsonDict, patient_payload: str | JsonDict) -> JsonDict:
    """meta with the pseudonym a `patient` entry names, when meta has no patient of its own."""
    if isinstance(meta.get("patient_pseudonym", meta.get("patient")), str):
        return meta
    payload = json.loads(patient_payload) if isinstance(patient_payload, str) else patient_payload
    pseudonym = payload.get("pseudonym") if isinstance(payload, dict) else None
    return {**meta, "patient_pseudonym": pseudonym} if isinstance(pseudonym, str) else meta


def utc_wall_now() -> str:
    """Current wall-clock time as ISO-8601 UTC, the format the store expects for `wall`."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def wall_after(wall: str, delta_ns: int) -> str:
    """The ISO-8601 UTC wall time delta_ns after wall (derives sample times from an anchor)."""
    moment = datetime.fromisoformat(wall) + timedelta(microseconds=delta_ns // 1000)
    return moment.isoformat(timespec="microseconds")


def _check_wall(wall: object) -> None:
    """Refuse a wall time that is not an ISO-8601 string in UTC."""
    if not isinstance(wall, str):
        raise ValueError(f"wall must be an ISO-8601 UTC string, got {type(wall).__name__}")
    try:
        moment = datetime.fromisoformat(wall)
    except ValueError as exc:
        raise ValueError(f"wall {wall!r} is not ISO-8601") from exc
    offset = moment.utcoffset()
    if offset is None or offset != timedelta(0):
        raise ValueError(f"wall {wall!r} must be in UTC (suffix +00:00 or Z)")


def _check_mono(mono_ns: object) -> None:
    """Refuse a monotonic timestamp that is not a 64-bit integer of nanoseconds."""
    if not isinstance(mono_ns, int) or isinstance(mono_ns, bool):
        raise ValueError(f"mono_ns must be int nanoseconds, got {type(mono_ns).__name__}")
    if not _INT64_MIN <= mono_ns <= _INT64_MAX:
        raise ValueError(f"mono_ns {mono_ns} does not fit in 64 bits")


def _check_kind(kind: object) -> None:
    """Refuse an entry kind that is not a short snake_case word."""
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise ValueError(f"kind {kind!r} must be snake_case: a-z, 0-9, _ (at most 64 chars)")


def _check_payload(payload: object, where: str) -> None:
    """Refuse a payload that is not a dict of exactly round-tripping JSON values."""
    if not isinstance(payload, Mapping):
        raise JsonValueError(f"{where} must be a dict, got {type(payload).__name__}")
    check_json(payload, where)


def _check_draft(draft: EntryDraft) -> None:
    """Validate every field of a draft before any of it reaches the database."""
    _check_kind(draft.kind)
    _check_mono(draft.mono_ns)
    _check_wall(draft.wall)
    _check_payload(draft.payload, f"{draft.kind} payload")


def check_append_draft(draft: EntryDraft) -> None:
    """Raise ValueError unless draft may be appended (also usable before queueing it)."""
    if draft.kind in (SESSION_START, SESSION_END):
        raise ValueError(f"{draft.kind} entries are written by open_/end_session only")
    _check_draft(draft)


def session_end_draft(
    session_id: str,
    exit_status: str,
    reason: str | None,
    summary: Mapping[str, Any],
    mono_ns: int,
    wall: str,
) -> EntryDraft:
    """Validate an ending and build its session_end draft."""
    if exit_status not in EXIT_STATUSES:
        raise ValueError(f"exit_status {exit_status!r} is not one of {EXIT_STATUSES}")
    if reason is not None and not isinstance(reason, str):
        raise ValueError(f"reason must be str or None, got {type(reason).__name__}")
    _check_payload(summary, "session_end summary")
    payload = {"exit_status": exit_status, "reason": reason, "summary": summary}
    draft = EntryDraft(session_id, SESSION_END, payload, mono_ns, wall)
    _check_draft(draft)
    return draft


def session_start_draft(
    session_id: str, meta: Mapping[str, Any], mono_ns: int, wall: str
) -> EntryDraft:
    """Validate a session start and build its session_start draft."""
    if not isinstance(session_id, str) or not _SESSION_ID_RE.match(session_id):
        raise ValueError(f"session_id {session_id!r} must be 32 lowercase hex digits")
    draft = EntryDraft(session_id, SESSION_START, meta, mono_ns, wall)
    _check_draft(draft)
    return draft


def _entry_from_row(row: tuple[Any, ...]) -> Entry:
    """Build an Entry from a row selected with _ENTRY_COLUMNS."""
    session_id, seq, mono_ns, wall, kind, payload, prev_hash, hash_ = row
    return Entry(session_id, seq, mono_ns, wall, kind, json.loads(payload), prev_hash, hash_)


class SessionStore:
    """The session record database; one instance per thread (sqlite3 connections are not shared)."""

    def __init__(
        self, path: str | PathLike[str], *, create: bool = True, key: RecordKey | None = None
    ) -> None:
        """Open (and with create, make or migrate) the record database at path.

        Writing and verifying need the installation key; listing and reading do not. Without
        create an older schema is read as it is (not migrated) and cannot be written.
        """
        self.path = Path(path)
        self._key = key
        self.schema_version = 0
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no record database at {self.path}")
        self._conn = self._connect(create)
        try:
            self._configure()
            self._migrate(create)
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, create: bool) -> sqlite3.Connection:
        """Connect in autocommit mode so transactions are exactly the ones this class begins."""
        target = str(self.path) if create else self.path.resolve().as_uri() + "?mode=rw"
        try:
            return sqlite3.connect(target, uri=not create, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open record database {self.path}: {exc}") from exc

    def _configure(self) -> None:
        """WAL for concurrent readers, FULL sync so commits are on disk, foreign keys on."""
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:  # locked, unreadable, ...
            raise StoreError(f"cannot open record database {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a SQLite database: {exc}") from exc
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: WAL journal mode unavailable (got {mode!r})")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    def _user_version(self) -> int:
        """The schema version recorded in the database header."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, create: bool) -> None:
        """Bring the schema up to SCHEMA_VERSION, refusing unknown or foreign databases."""
        version = self._user_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has record schema {version}; this program knows up to "
                f"{SCHEMA_VERSION} (written by a newer SessionConsole?)"
            )
        self.schema_version = version
        if version == SCHEMA_VERSION:
            return
        if version == 0 and not create:
            raise StoreError(f"{self.path} is not a SessionConsole record database")
        if not create:
            return  # read an older record as it is; a reader does not rewrite the file
        with self._write_transaction() as conn:
            # Re-read inside the lock: another process may have migrated meanwhile.
            for step in range(self._user_version(), SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")
        self.schema_version = SCHEMA_VERSION
        log.info("record database %s at schema version %d", self.path, SCHEMA_VERSION)

    def _signing_key(self) -> RecordKey:
        """The key to sign new entries with; refuse writing without one or to an old schema."""
        if self._key is None:
            raise StoreError(
                f"{self.path} was opened without the installation key: it can be read, not written"
            )
        if self.schema_version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has record schema {self.schema_version} and was opened without "
                f"create, so it was not upgraded to {SCHEMA_VERSION}: it can be read, not written"
            )
        return self._key

    def _signature_columns(self) -> str:
        """The select-list for key_id and mac (NULLs in a schema-1 file read as it is)."""
        return "key_id, mac" if self.schema_version >= 2 else "NULL, NULL"

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed (and synced) on success, rolled back otherwise."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._rollback_quietly()
            raise

    @contextmanager
    def _read_snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so multi-query reads see one consistent state of the file."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            self._rollback_quietly()

    def _rollback_quietly(self) -> None:
        """Roll back if a transaction is open; a failing rollback is logged, not raised."""
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed on %s", self.path)

    # -- writing ---------------------------------------------------------------------------

    def open_session(
        self, meta: Mapping[str, Any], mono_ns: int, wall: str, *, session_id: str | None = None
    ) -> str:
        """Start a session: its sessions row and its session_start entry carrying meta."""
        sid = uuid.uuid4().hex if session_id is None else session_id
        draft = session_start_draft(sid, meta, mono_ns, wall)
        self._signing_key()
        with self._write_transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (session_id, started_wall) VALUES (?, ?)", (sid, wall)
            )
            self._insert(conn, draft, {})
        log.info("session %s opened", sid)
        return sid

    def append(
        self, session_id: str, kind: str, payload: Mapping[str, Any], mono_ns: int, wall: str
    ) -> Entry:
        """Append one entry to an open session in its own (synced) transaction."""
        return self.append_many([EntryDraft(session_id, kind, payload, mono_ns, wall)])[0]

    def append_many(self, drafts: Sequence[EntryDraft]) -> list[Entry]:
        """Append entries (to one or several open sessions) in a single transaction."""
        for draft in drafts:
            check_append_draft(draft)
        if not drafts:
            return []
        self._signing_key()
        heads: dict[str, _Head] = {}
        with self._write_transaction() as conn:
            return [self._insert(conn, draft, heads) for draft in drafts]

    def end_session(
        self,
        session_id: str,
        exit_status: str,
        reason: str | None,
        summary: Mapping[str, Any],
        mono_ns: int,
        wall: str,
    ) -> Entry:
        """Close a session: its session_end entry, then the end fields of its sessions row."""
        draft = session_end_draft(session_id, exit_status, reason, summary, mono_ns, wall)
        self._signing_key()
        with self._write_transaction() as conn:
            entry = self._end(conn, draft)
        log.info("session %s ended: %s", session_id, exit_status)
        return entry

    def close_interrupted(self, mono_ns: int, wall: str) -> list[str]:
        """End every session left open (by a crash or kill) as interrupted; returns their ids."""
        _check_mono(mono_ns)
        _check_wall(wall)
        self._signing_key()
        with self._write_transaction() as conn:
            open_ids = [
                row[0]
                for row in conn.execute(
                    "SELECT session_id FROM sessions WHERE ended_wall IS NULL ORDER BY rowid"
                )
            ]
            for sid in open_ids:
                summary = self._interrupted_summary(conn, sid)
                draft = session_end_draft(
                    sid, "interrupted", INTERRUPTED_REASON, summary, mono_ns, wall
                )
                self._end(conn, draft)
        for sid in open_ids:
            log.warning("session %s closed as interrupted", sid)
        return open_ids

    def _end(self, conn: sqlite3.Connection, draft: EntryDraft) -> Entry:
        """Inside a transaction: write the session_end entry and fill in the sessions row."""
        entry = self._insert(conn, draft, {})
        conn.execute(
            "UPDATE sessions SET ended_wall = ?, exit_status = ?, reason = ? WHERE session_id = ?",
            (draft.wall, draft.payload["exit_status"], draft.payload["reason"], draft.session_id),
        )
        return entry

    @staticmethod
    def _interrupted_summary(conn: sqlite3.Connection, session_id: str) -> JsonDict:
        """What is known of an interrupted session: where its record stops."""
        row = conn.execute(
            "SELECT seq, wall FROM entries WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        if row is None:
            return {"last_entry_seq": 0, "last_entry_wall": None}
        return {"last_entry_seq": row[0], "last_entry_wall": row[1]}

    def _insert(
        self, conn: sqlite3.Connection, draft: EntryDraft, heads: dict[str, _Head]
    ) -> Entry:
        """Inside a transaction: chain draft onto its session's head, sign it and insert it."""
        key = self._signing_key()
        head = heads.get(draft.session_id) or self._load_head(conn, draft.session_id)
        if head.ended:
            raise SessionEndedError(f"session {draft.session_id} has ended; cannot append")
        payload_json = canonical_json(draft.payload)
        seq = head.seq + 1
        fields = (draft.session_id, seq, draft.mono_ns, draft.wall, draft.kind)
        digest = entry_hash_from_json(
            session_id=draft.session_id,
            seq=seq,
            mono_ns=draft.mono_ns,
            wall=draft.wall,
            kind=draft.kind,
            payload_json=payload_json,
            prev_hash=head.hash,
        )
        conn.execute(
            f"INSERT INTO entries ({_ENTRY_COLUMNS}, key_id, mac)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*fields, payload_json, head.hash, digest, key.key_id, key.sign(digest)),
        )
        heads[draft.session_id] = _Head(seq, digest, ended=draft.kind == SESSION_END)
        return Entry(*fields, json.loads(payload_json), head.hash, digest)

    @staticmethod
    def _load_head(conn: sqlite3.Connection, session_id: str) -> _Head:
        """Read the last link of a session's chain and whether the session has ended."""
        row = conn.execute(
            "SELECT ended_wall FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise UnknownSessionError(f"no session {session_id!r} in the record")
        last = conn.execute(
            "SELECT seq, hash FROM entries WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        seq, digest = (0, GENESIS_HASH) if last is None else (last[0], last[1])
        return _Head(seq, digest, ended=row[0] is not None)

    # -- reading ---------------------------------------------------------------------------

    def sessions(self) -> list[SessionInfo]:
        """Every session in the order they were opened, with entry counts."""
        rows = self._conn.execute(
            "SELECT s.session_id, s.started_wall, s.ended_wall, s.exit_status, s.reason,"
            " (SELECT COUNT(*) FROM entries e WHERE e.session_id = s.session_id)"
            " FROM sessions s ORDER BY s.rowid"
        ).fetchall()
        return [SessionInfo(*row) for row in rows]

    def start_meta(self) -> dict[str, JsonDict]:
        """Each session's session_start payload (who, patient pseudonym, plan…), by id; a
        session opened without a patient has the one its first `patient` entry named."""
        rows = self._conn.execute(
            "SELECT session_id, payload FROM entries WHERE seq = 1 AND kind = ?", (SESSION_START,)
        ).fetchall()
        result: dict[str, JsonDict] = {}
        for session_id, payload in rows:
            meta = json.loads(payload)
            result[str(session_id)] = meta if isinstance(meta, dict) else {}
        named = self._conn.execute(
            "SELECT session_id, payload FROM entries WHERE kind = ? ORDER BY session_id, seq",
            (PATIENT_KIND,),
        ).fetchall()
        for session_id, payload in named:
            result[str(session_id)] = with_patient(result.get(str(session_id), {}), payload)
        return result

    def resolve_session(self, ref: str) -> str:
        """Turn a full id, a unique id prefix or `last` into a session id."""
        if ref == "last":
            row = self._conn.execute(
                "SELECT session_id FROM sessions ORDER BY rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise UnknownSessionError("the record holds no sessions")
            return str(row[0])
        prefix = ref.lower()
        if not prefix or not re.fullmatch(r"[0-9a-f]{1,32}", prefix):
            raise UnknownSessionError(f"{ref!r} is not a session id, id prefix or 'last'")
        matches = [
            str(row[0])
            for row in self._conn.execute(
                "SELECT session_id FROM sessions WHERE substr(session_id, 1, ?) = ? LIMIT 6",
                (len(prefix), prefix),
            )
        ]
        if not matches:
            raise UnknownSessionError(f"no session id starts with {ref!r}")
        if len(matches) > 1:
            shown = ", ".join(matches[:5])
            raise AmbiguousSessionError(f"{ref!r} matches several sessions: {shown}")
        return matches[0]

    def iter_entries(self, session_id: str) -> Iterator[Entry]:
        """Entries of one session in chain order, read lazily."""
        cursor = self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        for row in cursor:
            yield _entry_from_row(row)

    def entries(self, session_id: str) -> list[Entry]:
        """All entries of one session in chain order."""
        with self._read_snapshot():
            self._require_session(session_id)
            return list(self.iter_entries(session_id))

    def _require_session(self, session_id: str) -> tuple[Any, ...]:
        """The sessions row of session_id, or UnknownSessionError."""
        row = self._conn.execute(
            "SELECT session_id, ended_wall, exit_status FROM sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            raise UnknownSessionError(f"no session {session_id!r} in the record")
        return tuple(row)

    # -- verifying -------------------------------------------------------------------------

    def verify(self, session_id: str | None = None) -> VerifyReport:
        """Recompute every hash, link and signature of one or all sessions; report findings."""
        key = self._key
        if key is None:
            raise StoreError(
                f"verifying {self.path} needs the installation key (signatures cannot be "
                "checked without it)"
            )
        with self._read_snapshot() as conn:
            if session_id is None:
                rows = conn.execute(
                    "SELECT session_id, ended_wall, exit_status FROM sessions ORDER BY rowid"
                ).fetchall()
                failures = self._orphan_failures(conn)
            else:
                rows = [self._require_session(session_id)]
                failures = []
            checked = 0
            unsigned: list[UnsignedEntries] = []
            columns = f"{_ENTRY_COLUMNS}, {self._signature_columns()}"
            for sid, ended_wall, exit_status in rows:
                walk = _ChainWalk(sid, key)
                cursor = conn.execute(
                    f"SELECT {columns} FROM entries WHERE session_id = ? ORDER BY seq", (sid,)
                )
                failure = walk.run(cursor) or _ending_problem(
                    sid, walk.last, ended_wall, exit_status
                )
                checked += walk.count
                if failure is not None:
                    failures.append(failure)
                if walk.unsigned_last:
                    unsigned.append(UnsignedEntries(sid, 1, walk.unsigned_last))
        return VerifyReport(len(rows), checked, tuple(failures), tuple(unsigned), key.key_id)

    @staticmethod
    def _orphan_failures(conn: sqlite3.Connection) -> list[VerifyFailure]:
        """Entries whose session is missing from the sessions table (a deleted session)."""
        rows = conn.execute(
            "SELECT session_id, MIN(seq) FROM entries"
            " WHERE session_id NOT IN (SELECT session_id FROM sessions) GROUP BY session_id"
        ).fetchall()
        return [
            VerifyFailure(sid, seq, None, "session missing from sessions table")
            for sid, seq in rows
        ]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> SessionStore:
        """Use as a context manager that closes on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close on leaving the with block."""
        self.close()


def _link_problem(row: tuple[Any, ...], expected_seq: int, prev_hash: str) -> str | None:
    """Why one stored row does not continue the chain, or None if it does."""
    session_id, seq, mono_ns, wall, kind, payload_text, row_prev, row_hash = row
    if seq != expected_seq:
        return "sequence gap"
    if row_prev != prev_hash:
        return "prev_hash does not link"
    try:
        payload = json.loads(payload_text)
    except (TypeError, ValueError):
        return "payload is not valid JSON"
    if not isinstance(payload, dict) or canonical_json(payload) != payload_text:
        return "payload is not canonical JSON"
    digest = entry_hash(
        session_id=session_id,
        seq=seq,
        mono_ns=mono_ns,
        wall=wall,
        kind=kind,
        payload=payload,
        prev_hash=row_prev,
    )
    return None if digest == row_hash else "hash mismatch"


@dataclass(slots=True)
class _ChainWalk:
    """Walks one session's rows in seq order: links, hashes, then signatures."""

    session_id: str
    key: RecordKey
    count: int = 0
    prev_hash: str = GENESIS_HASH
    last: tuple[Any, ...] | None = None
    unsigned_last: int = 0  # seq of the last of the leading unsigned entries

    def run(self, rows: Iterator[tuple[Any, ...]]) -> VerifyFailure | None:
        """Check every row; the first failure found, or None."""
        for row in rows:
            self.count += 1
            problem = self._problem(row)
            if problem is not None:
                return VerifyFailure(self.session_id, row[1], row[4], problem)
            self.prev_hash, self.last = row[7], row
        return None

    def _problem(self, row: tuple[Any, ...]) -> str | None:
        """Why one row breaks the chain or its signature, or None."""
        problem = _link_problem(row[:8], self.count, self.prev_hash)
        if problem is None and self.last is not None and self.last[4] == SESSION_END:
            problem = "entry after session_end"
        if problem is None and self.count == 1 and row[4] != SESSION_START:
            problem = "first entry is not session_start"
        return problem or self._signature_problem(row)

    def _signature_problem(self, row: tuple[Any, ...]) -> str | None:
        """Check the row's signature; leading unsigned (schema-1) entries are only counted."""
        seq, digest, key_id, mac = row[1], row[7], row[8], row[9]
        if mac is None and key_id is None:
            if self.unsigned_last != seq - 1:
                return "signature removed: unsigned entry after signed ones"
            self.unsigned_last = seq
            return None
        if key_id != self.key.key_id:
            return (
                f"signed with another installation key (key id {key_id}; "
                f"the key given is {self.key.key_id})"
            )
        if not isinstance(mac, str) or not self.key.signed(digest, mac):
            return "signature does not match (edited, hashes recomputed without the key?)"
        return None


def _ending_problem(
    session_id: str, last: tuple[Any, ...] | None, ended_wall: str | None, exit_status: str | None
) -> VerifyFailure | None:
    """Check the sessions row agrees with the chain's tail (catches a cut-off tail too)."""
    if last is None:
        return VerifyFailure(session_id, 1, None, "session has no entries")
    seq, wall, kind, payload_text = last[1], last[3], last[4], last[5]
    if kind != SESSION_END:
        if ended_wall is None:
            return None
        return VerifyFailure(
            session_id, seq, kind, "session is marked ended but its last entry is not session_end"
        )
    ended_as = json.loads(payload_text).get("exit_status")
    if ended_wall != wall or exit_status != ended_as:
        return VerifyFailure(session_id, seq, kind, "sessions row disagrees with session_end")
    return None
