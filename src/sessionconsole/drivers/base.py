"""The interface every device driver offers the core loop.

The core never waits on a driver: requests only set flags or queue writes that the driver's
own I/O task carries out, stops first. A driver keeps the newest reading(s) for the tick to
take, sends a heartbeat only when the core asks (the charge pump), keeps a stop pending
across a lost link until the device has taken it, and never replays anything else after a
reconnect.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class DeviceDriver(Protocol):
    """What `core/` relies on, whatever the device and transport."""

    device_id: str
    connected: bool
    last_error: str | None

    def start(self) -> None:
        """Start the I/O task (connect, poll, reconnect with backoff)."""

    async def close(self) -> None:
        """End the I/O task and close the transport, waiting at most about a second."""

    def request_stop(self) -> None:
        """Stop every output of the device at once, ahead of anything queued."""

    def request_heartbeat(self) -> None:
        """Feed the device's watchdog once (called only by the tick that ran the kernel)."""

    @property
    def stop_pending(self) -> bool:
        """A stop was asked for and the device has not yet acknowledged it."""

    async def wait_stop_taken(self) -> None:
        """Return once no stop is pending."""
