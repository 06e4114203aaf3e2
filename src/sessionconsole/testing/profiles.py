"""Profiles aimed at simulators: a bundled generic Modbus profile pointed at a test endpoint.

Tests and benches run the shipped register maps against a simulator on a free port or a
pty; only the link changes (and the watchdog and reply timeout, which tests keep short).
"""

from __future__ import annotations

from typing import Any

from sessionconsole.model.modbus_map import ModbusGenericProfile

__all__ = ["modbus_profile_at"]


def modbus_profile_at(
    data: dict[str, Any],
    endpoint: str,
    watchdog_ms: int = 400,
    request_timeout_ms: int = 100,
    **changes: Any,
) -> ModbusGenericProfile:
    """The `modbus_generic` profile `data` with its link aimed at `endpoint`.

    `host:port` is Modbus TCP; a path is Modbus RTU at 8N1 (a Linux pty keeps no parity).
    """
    link = dict(data["link"])
    if endpoint.startswith("/"):
        for key in ("host", "port", "telemetry_hz"):
            link.pop(key, None)
        link.update(kind="modbus_rtu", port=endpoint, parity="N")
    else:
        host, _, port = endpoint.rpartition(":")
        link.update(host=host, port=int(port))
    link["request_timeout_ms"] = request_timeout_ms
    return ModbusGenericProfile.model_validate(
        {**data, "link": link, "watchdog_ms": watchdog_ms, **changes}
    )
