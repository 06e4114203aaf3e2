"""`records` sub-commands: list, show, bill and verify sessions; export one (export_cli.py)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from sessionconsole.model.paths import record_key_path
from sessionconsole.record.billable import bill_entries
from sessionconsole.record.billing import Bill
from sessionconsole.record.chain import canonical_json
from sessionconsole.record.chunks import ChunkError
from sessionconsole.record.export_cli import add_export_parser
from sessionconsole.record.filters import FilterError, SessionFilter, parse_day, patient_of
from sessionconsole.record.signing import RecordKeyError, load_key
from sessionconsole.record.store import (
    SessionInfo,
    SessionStore,
    StoreError,
    UnknownSessionError,
    UnsignedEntries,
    VerifyFailure,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNSIGNED = 3  # nothing failed, but some entries carry no signature (schema-1 records)

Handler = Callable[[argparse.Namespace], int]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `records` (list, show, verify, export) to a CLI's sub-commands."""
    records = subparsers.add_parser("records", help="inspect and verify session records")
    commands = records.add_subparsers(dest="records_command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="one line per session")
    _add_db_option(listing)
    _add_filter_options(listing)
    listing.set_defaults(func=cmd_list)

    show = commands.add_parser("show", help="the entries of one session")
    show.add_argument(
        "session",
        metavar="SESSION",
        help="session id, unique id prefix, or 'last' (the last one matching the filters)",
    )
    show.add_argument("--json", action="store_true", help="print a JSON array of entries")
    _add_db_option(show)
    _add_filter_options(show)
    show.set_defaults(func=cmd_show)

    billing = commands.add_parser(
        "bill", help="minutes and units per CPT code (8-minute rule) for one session"
    )
    billing.add_argument(
        "session", metavar="SESSION", help="session id, unique id prefix, or 'last'"
    )
    _add_db_option(billing)
    billing.set_defaults(func=cmd_bill)

    verify = commands.add_parser(
        "verify",
        help="recompute every hash, link and signature",
        description="Exit 0: all verified and signed; 1: an entry fails (named); 2: cannot "
        "check (no database, no key); 3: nothing fails but some entries are unsigned.",
    )
    verify.add_argument(
        "session", metavar="SESSION", nargs="?", help="only this session (id, prefix or 'last')"
    )
    _add_db_option(verify)
    verify.add_argument(
        "--key",
        metavar="PATH",
        default=None,
        help="installation key file (default: $SESSIONCONSOLE_RECORD_KEY or "
        "~/.config/sessionconsole/record.key)",
    )
    verify.set_defaults(func=cmd_verify)

    add_export_parser(commands)


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    """The --db PATH option every records command takes."""
    parser.add_argument("--db", required=True, metavar="PATH", help="session record database")


def _add_filter_options(parser: argparse.ArgumentParser) -> None:
    """--since/--until (UTC days, inclusive), --therapist, --patient (pseudonym)."""
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="started on or after this UTC day")
    parser.add_argument("--until", metavar="YYYY-MM-DD", help="started on or before this UTC day")
    parser.add_argument("--therapist", metavar="ID", help="session_start therapist, exactly")
    parser.add_argument("--patient", metavar="PSEUDONYM", help="patient pseudonym, exactly")


def _filter(args: argparse.Namespace) -> SessionFilter:
    """The SessionFilter the options ask for (FilterError on a bad date or an empty range)."""
    return SessionFilter(
        since=parse_day(args.since, "--since"),
        until=parse_day(args.until, "--until"),
        therapist=args.therapist,
        patient=args.patient,
    )


def _matching(store: SessionStore, wanted: SessionFilter) -> list[SessionInfo]:
    """Sessions in opening order that the filter keeps."""
    sessions = store.sessions()
    if not wanted.active:
        return sessions
    meta = store.start_meta()
    return [s for s in sessions if wanted.matches(s.started_wall, meta.get(s.session_id, {}))]


def _error(message: str) -> int:
    """Print an error for the user and return the usage/environment exit code."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _open_store(args: argparse.Namespace) -> SessionStore:
    """Open an existing record database; never creates one (nor the key, which verify needs)."""
    key = None
    if args.records_command == "verify":
        key = load_key(Path(args.key) if args.key else record_key_path())
    return SessionStore(args.db, create=False, key=key)


def _guarded(handler: Callable[[argparse.Namespace, SessionStore], int]) -> Handler:
    """Run handler on the opened store; turn a missing/foreign db or bad session into exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            with _open_store(args) as store:
                return handler(args, store)
        except FileNotFoundError:
            return _error(f"no record database at {args.db}")
        except (StoreError, RecordKeyError, FilterError, ChunkError, sqlite3.DatabaseError) as exc:
            return _error(str(exc))

    run.__doc__ = handler.__doc__
    return run


def _list(args: argparse.Namespace, store: SessionStore) -> int:
    """Print one line per session: id, start, end, status, entries, therapist, patient."""
    wanted = _filter(args)
    sessions = _matching(store, wanted)
    if not sessions:
        print("no sessions match the filters" if wanted.active else "no sessions recorded")
    meta = store.start_meta()
    for info in sessions:
        end = info.ended_wall or "-"
        status = info.exit_status or "open"
        start = meta.get(info.session_id, {})
        who = f"{start.get('therapist') or '-'}  {patient_of(start) or '-'}"
        print(
            f"{info.session_id}  {info.started_wall}  {end}  {status}  "
            f"{info.entry_count} entries  {who}"
        )
    return EXIT_OK


def _resolve(args: argparse.Namespace, store: SessionStore) -> str:
    """SESSION as an id; with filters, 'last' is the last match and an id must match."""
    wanted = _filter(args)
    if not wanted.active:
        return store.resolve_session(args.session)
    matching = [s.session_id for s in _matching(store, wanted)]
    if args.session == "last":
        if not matching:
            raise UnknownSessionError("no session matches the filters")
        return matching[-1]
    session_id = store.resolve_session(args.session)
    if session_id not in matching:
        raise UnknownSessionError(f"session {session_id} does not match the filters")
    return session_id


def _show(args: argparse.Namespace, store: SessionStore) -> int:
    """Print a session's entries, one per line, or as a JSON array with --json."""
    entries = store.entries(_resolve(args, store))
    if args.json:
        rows = [json.dumps(entry.as_dict(), ensure_ascii=False) for entry in entries]
        print("[\n" + ",\n".join(rows) + "\n]")
        return EXIT_OK
    for entry in entries:
        payload = canonical_json(entry.payload)
        print(f"{entry.seq:>6}  {entry.wall}  {entry.kind:<14}  {payload}")
    return EXIT_OK


def _verify(args: argparse.Namespace, store: SessionStore) -> int:
    """Verify one or all sessions; exit 1 naming each first bad entry."""
    session_id = None if args.session is None else store.resolve_session(args.session)
    report = store.verify(session_id)
    for failure in report.failures:
        print(_failure_line(failure))
    for unsigned in report.unsigned:
        print(_unsigned_line(unsigned))
    if not report.ok:
        return EXIT_FAILED
    counts = f"{report.sessions_checked} sessions, {report.entries_checked} entries"
    if report.unsigned:
        print(f"NOT PROVEN: {counts} checked; the chains link but unsigned entries remain")
        return EXIT_UNSIGNED
    print(f"OK: {counts} verified, signed by key {report.key_id}")
    return EXIT_OK


def _failure_line(failure: VerifyFailure) -> str:
    """One FAILED line naming the session, entry, kind and why."""
    kind = failure.kind or "missing"
    return f"FAILED: session {failure.session_id} entry {failure.seq} ({kind}): {failure.reason}"


def _unsigned_line(unsigned: UnsignedEntries) -> str:
    """One UNSIGNED line: which entries carry no signature and what that means."""
    return (
        f"UNSIGNED: session {unsigned.session_id} entries {unsigned.first_seq}-"
        f"{unsigned.last_seq} ({unsigned.count}) were written before records were signed "
        "(schema 1): their hashes link, but an edit with recomputed hashes cannot be ruled out"
    )


def _bill(args: argparse.Namespace, store: SessionStore) -> int:
    """Print minutes and units per code, the totals and the notes (overlaps, choices)."""
    session_id = store.resolve_session(args.session)
    print(bill_text(session_id, bill_entries(store.entries(session_id))))
    return EXIT_OK


def bill_text(session_id: str, result: Bill) -> str:
    """`records bill`'s output: a line per code, the timed totals, then the notes."""
    lines = [f"session {session_id}", f"{'code':<8}{'minutes':>8}{'units':>7}"]
    for line in result.lines:
        timed = "" if line.timed else "  untimed"
        lines.append(f"{line.code:<8}{line.minutes:>8}{line.units:>7}{timed}")
    lines.append(f"timed: {result.timed_minutes} minutes, {result.timed_units} units")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


cmd_list: Handler = _guarded(_list)
cmd_show: Handler = _guarded(_show)
cmd_verify: Handler = _guarded(_verify)
cmd_bill: Handler = _guarded(_bill)
