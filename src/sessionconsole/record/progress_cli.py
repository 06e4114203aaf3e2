"""`sessionconsole progress PATIENT --db PATH`: a patient's pain, range of motion and goals.

Exit 0: every session verified; 1: a session failed verification (the report still lists it,
marked); 2: bad input (pseudonym, database, key file); 3: nothing failed but some session is
not proven (unsigned entries, or run with --no-verify).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from sessionconsole.model.paths import record_key_path
from sessionconsole.record.chunks import ChunkError
from sessionconsole.record.progress import PseudonymError, check_pseudonym, gather_progress
from sessionconsole.record.progress_report import progress_csv, progress_json, progress_text
from sessionconsole.record.signing import RecordKeyError, load_key
from sessionconsole.record.store import SessionStore, StoreError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_PROVEN = 3
RENDERERS = {"text": progress_text, "json": progress_json, "csv": progress_csv}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `progress` to a CLI's sub-commands."""
    progress = subparsers.add_parser(
        "progress",
        help="a patient's pain, range of motion and goals over sessions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    progress.add_argument("patient", metavar="PATIENT", help="patient pseudonym, e.g. PT-0042")
    progress.add_argument("--db", required=True, metavar="PATH", help="session record database")
    progress.add_argument("--format", choices=sorted(RENDERERS), default="text")
    progress.add_argument(
        "--key",
        metavar="PATH",
        default=None,
        help="installation key file to verify signatures with (default: "
        "$SESSIONCONSOLE_RECORD_KEY or ~/.config/sessionconsole/record.key)",
    )
    progress.add_argument(
        "--no-verify",
        action="store_true",
        help="do not check signatures (every session is then reported as not checked)",
    )
    progress.set_defaults(func=cmd_progress)


def cmd_progress(args: argparse.Namespace) -> int:
    """Gather, print, and exit by what verification found."""
    try:
        pseudonym = check_pseudonym(args.patient)
        if not Path(args.db).is_file():  # say so before asking for a key it would not need
            raise FileNotFoundError(args.db)
        key = None if args.no_verify else load_key(Path(args.key or record_key_path()))
        with SessionStore(args.db, create=False, key=key) as store:
            progress = gather_progress(store, pseudonym, verify=key is not None)
    except FileNotFoundError:
        return _error(f"no record database at {args.db}")
    except RecordKeyError as exc:
        return _error(f"{exc}; or pass --no-verify to read without checking signatures")
    except (PseudonymError, StoreError, ChunkError, sqlite3.DatabaseError) as exc:
        return _error(str(exc))
    sys.stdout.write(RENDERERS[args.format](progress))
    if progress.failed:
        return EXIT_FAILED
    return EXIT_NOT_PROVEN if progress.unproven else EXIT_OK


def _error(message: str) -> int:
    """One `error:` line on stderr and the usage exit code."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE
