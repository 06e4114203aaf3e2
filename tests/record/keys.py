"""The signing key record tests use: the throw-away file tests/conftest.py points the env at."""

from __future__ import annotations

import os
from pathlib import Path

from sessionconsole.record.signing import RecordKey, load_or_create_key


def installed_key() -> RecordKey:
    """The test's installation key (created on first use, like the real one)."""
    return load_or_create_key(Path(os.environ["SESSIONCONSOLE_RECORD_KEY"]))
