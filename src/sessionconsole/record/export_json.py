"""JSON export: the whole session, every entry exactly as stored (hashes included).

Kept verbatim so the export can be re-verified away from the console: each entry's hash is
recomputable from the fields beside it (see chain.entry_hash).
"""

from __future__ import annotations

import json
from typing import Final, TextIO

from sessionconsole.record.session_view import SessionView

EXPORT_FORMAT: Final = "sessionconsole-session"
EXPORT_VERSION: Final = 1


def write_json(view: SessionView, out: TextIO) -> None:
    """Write the session as one JSON document: a header, then the entries in chain order."""
    header = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "session": {
            "session_id": view.session_id,
            "started_wall": view.started_wall,
            "ended_wall": view.ended_wall,
            "exit_status": view.exit_status,
            "reason": view.reason,
            "entry_count": len(view.entries),
        },
    }
    text = json.dumps(header, ensure_ascii=False, indent=1)
    out.write(text[: text.rindex("}")].rstrip() + ',\n "entries": [\n')
    last = len(view.entries) - 1
    for i, entry in enumerate(view.entries):
        out.write("  " + json.dumps(entry.as_dict(), ensure_ascii=False))
        out.write(",\n" if i < last else "\n")
    out.write(" ]\n}\n")
