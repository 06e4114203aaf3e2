"""Link and watchdog timing rules shared by every device profile."""

from __future__ import annotations

import math


def stale_limit_s(telemetry_hz: float, network_allowance_ms: float, wire_ms: float = 0.0) -> float:
    """Telemetry older than this while an output runs counts as comms loss.

    Three missed cycles (a cycle is the telemetry period or, on a slow line, a poll's wire
    time), plus one more wire time (a reading is stamped when its last reply has arrived, and
    a write may go ahead of a poll), plus the network allowance; rounded up to a millisecond.
    So a slow RS-485 line and a loopback simulator are each judged by their own link.
    """
    cycle_ms = max(1000.0 / telemetry_hz, wire_ms)
    return math.ceil(3 * cycle_ms + wire_ms + network_allowance_ms) / 1000.0


def check_heartbeat_inside_watchdog(heartbeat_interval_ms: int, watchdog_ms: int) -> None:
    """Raise ValueError unless a heartbeat fits twice into the device's watchdog timeout."""
    if heartbeat_interval_ms * 2 > watchdog_ms:
        raise ValueError(
            f"heartbeat_interval_ms {heartbeat_interval_ms} must be at most half of "
            f"watchdog_ms {watchdog_ms}, or one late heartbeat trips the unit"
        )
