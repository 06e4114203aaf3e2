"""Session record: append-only, hash-chained SQLite store."""

from sessionconsole.record.recorder import Recorder, RecorderClosedError
from sessionconsole.record.store import (
    EXIT_STATUSES,
    INTERRUPTED_REASON,
    AmbiguousSessionError,
    Entry,
    EntryDraft,
    SessionEndedError,
    SessionInfo,
    SessionStore,
    StoreError,
    UnknownSessionError,
    VerifyFailure,
    VerifyReport,
    utc_wall_now,
)

__all__ = [
    "EXIT_STATUSES",
    "INTERRUPTED_REASON",
    "AmbiguousSessionError",
    "Entry",
    "EntryDraft",
    "Recorder",
    "RecorderClosedError",
    "SessionEndedError",
    "SessionInfo",
    "SessionStore",
    "StoreError",
    "UnknownSessionError",
    "VerifyFailure",
    "VerifyReport",
    "utc_wall_now",
]
