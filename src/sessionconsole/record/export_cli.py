"""`records export SESSION --db PATH --format json|csv|fhir|html [-o FILE]`.

Reads the session once into a SessionView and hands it to the chosen exporter. Without -o the
document goes to stdout; CSV (several files) needs -o naming a folder. Every failure is one
`error:` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import sys
from pathlib import Path
from typing import Final, TextIO

from sessionconsole.record.chunks import ChunkError
from sessionconsole.record.export_csv import write_csv_folder
from sessionconsole.record.export_fhir import fhir_bundle
from sessionconsole.record.export_html import session_report_html
from sessionconsole.record.export_json import write_json
from sessionconsole.record.session_view import SessionView, load_session_view
from sessionconsole.record.store import SessionStore, StoreError

FORMATS: Final = ("json", "csv", "fhir", "html")
EXIT_OK: Final = 0
EXIT_ERROR: Final = 2


def add_export_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `export` to the `records` sub-commands."""
    export = commands.add_parser("export", help="export one session as JSON, CSV, FHIR or HTML")
    export.add_argument(
        "session", metavar="SESSION", help="session id, unique id prefix, or 'last'"
    )
    export.add_argument("--db", required=True, metavar="PATH", help="session record database")
    export.add_argument("--format", required=True, choices=FORMATS, help="export format")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="output file (a folder for csv); default stdout"
    )
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Export one session; exit 2 with one clear line on any failure."""
    if args.format == "csv" and not args.output:
        return _error("csv export writes several files: name a folder with -o FOLDER")
    try:
        with SessionStore(args.db, create=False) as store:
            view = load_session_view(store, store.resolve_session(args.session))
    except FileNotFoundError:
        return _error(f"no record database at {args.db}")
    except (StoreError, ChunkError, sqlite3.DatabaseError) as exc:
        return _error(str(exc))
    try:
        export_view(view, args.format, None if args.output is None else Path(args.output))
    except OSError as exc:
        where = exc.filename if exc.filename is not None else args.output
        return _error(f"cannot write {where}: {exc.strerror or exc}")
    return EXIT_OK


def export_view(view: SessionView, fmt: str, output: Path | None) -> list[Path]:
    """Write view in fmt to output (stdout when None); return the files written."""
    if fmt == "csv":
        if output is None:
            raise ValueError("csv export needs an output folder")
        return write_csv_folder(view, output)
    if output is None:
        _render(view, fmt, sys.stdout)
        return []
    buffer = io.StringIO()  # render first, so a failing exporter leaves no half-written file
    _render(view, fmt, buffer)
    output.write_text(buffer.getvalue(), encoding="utf-8")
    return [output]


def _render(view: SessionView, fmt: str, out: TextIO) -> None:
    """Write one single-document format to out."""
    if fmt == "json":
        write_json(view, out)
    elif fmt == "fhir":
        json.dump(fhir_bundle(view), out, ensure_ascii=False, indent=1)
        out.write("\n")
    elif fmt == "html":
        out.write(session_report_html(view))
    else:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _error(message: str) -> int:
    """One error line on stderr; the exit code for a failed export."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR
