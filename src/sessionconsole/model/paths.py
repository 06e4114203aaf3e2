"""Where the embedded default configuration lives."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """The configuration folder: $SESSIONCONSOLE_CONFIG, else the repository's config/."""
    env = os.environ.get("SESSIONCONSOLE_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "config"
