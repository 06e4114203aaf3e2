"""Test helper: a bundled register-map profile pointed at a running simulator's endpoint."""

from __future__ import annotations

from typing import Any

from sessionconsole.model.modbus_map import ModbusGenericProfile
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import read_toml
from sessionconsole.testing.profiles import modbus_profile_at


def bundled_data(profile_file: str) -> dict[str, Any]:
    """The TOML of `config/profiles/<profile_file>` as a dict."""
    return read_toml(config_dir() / "profiles" / profile_file)


def bundled(
    profile_file: str,
    endpoint: str,
    watchdog_ms: int = 400,
    request_timeout_ms: int = 100,
    **changes: Any,
) -> ModbusGenericProfile:
    """The profile with its link aimed at `endpoint`: `host:port` (TCP) or a pty path (RTU, 8N1)."""
    data = bundled_data(profile_file)
    return modbus_profile_at(data, endpoint, watchdog_ms, request_timeout_ms, **changes)
