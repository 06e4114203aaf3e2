"""Test helper: a bundled register-map profile pointed at a running simulator's endpoint."""

from __future__ import annotations

from typing import Any

from sessionconsole.model.modbus_map import ModbusGenericProfile
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import read_toml


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
    link = dict(data["link"])
    if endpoint.startswith("/"):
        for key in ("host", "port", "telemetry_hz"):
            link.pop(key, None)
        link.update(kind="modbus_rtu", port=endpoint, parity="N")
    else:
        host, _, port = endpoint.rpartition(":")
        link.update(host=host, port=int(port))
    link["request_timeout_ms"] = request_timeout_ms
    data.update(link=link, watchdog_ms=watchdog_ms, **changes)
    return ModbusGenericProfile.model_validate(data)
