"""Where the embedded default configuration and the owner's own files live."""

from __future__ import annotations

import os
from pathlib import Path

RECORD_KEY_ENV = "SESSIONCONSOLE_RECORD_KEY"
"""Environment variable naming the installation's record-signing key file."""


def config_dir() -> Path:
    """The configuration folder: $SESSIONCONSOLE_CONFIG, else the repository's config/."""
    env = os.environ.get("SESSIONCONSOLE_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "config"


def user_config_dir() -> Path:
    """The owner's own SessionConsole folder: $XDG_CONFIG_HOME/sessionconsole or ~/.config/…."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sessionconsole"


def record_key_path() -> Path:
    """The record-signing key file: $SESSIONCONSOLE_RECORD_KEY, else record.key in the owner's
    folder (kept outside the database so an editor of the database cannot re-sign it)."""
    env = os.environ.get(RECORD_KEY_ENV)
    if env:
        return Path(env)
    return user_config_dir() / "record.key"
