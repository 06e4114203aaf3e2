"""The interface every device driver offers the core loop.

The core never waits on a driver: requests only set flags or queue writes that the driver's
own I/O task carries out, stops first. A driver keeps the newest reading(s) for the tick to
take, sends a heartbeat only when the core asks (the charge pump), keeps a stop pending
across a lost link until the device has taken it, and never replays anything else after a
reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)


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


CLOSE_TIMEOUT_S = 1.0
BACKOFF_INITIAL_S = 0.1  # between reconnect attempts: doubles after each failed one
BACKOFF_MAX_S = 2.0
RESTART_DELAY_S = 0.1  # after an I/O task failed unexpectedly; doubles while it keeps failing
RESTART_DELAY_MAX_S = 2.0


class DriverLifecycle:
    """What every driver shares: one I/O task, a bounded close, stop tracking, error reports.

    Subclasses implement `_run()` (the I/O task), `_release()` (close the transport) and
    `request_stop()`. The closing flag ends a subclass's loops even if a cancellation is
    lost: Python 3.11's `asyncio.wait_for` (used inside pymodbus and paho) can swallow one
    that races a completion.

    `_run()` handles the failures it expects (lost links, refusals). Anything else (a bug,
    a library surprise) would end the task silently and leave the device without stops and
    heartbeats; the supervisor reports it, drops the link and runs `_run()` again with a
    stop pending: once the unit is reached and identified again, the stop goes out before
    anything else is commanded (nothing queued before the failure is replayed).
    """

    def __init__(self, device_id: str, on_error: Callable[[str, str], None] | None) -> None:
        self.device_id = device_id
        self.on_error = on_error
        self.connected = False
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._stop_taken = asyncio.Event()  # clear: the first write once reached is a stop
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._heartbeat_pending = False
        self.io_task_restarts = 0

    async def _run(self) -> None:
        raise NotImplementedError

    async def _release(self) -> None:
        raise NotImplementedError

    def request_stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the I/O task (connect, serve, reconnect with backoff) under its supervisor."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"driver-{self.device_id}")

    async def _supervise(self) -> None:
        """Run `_run()`; after an unexpected exception report it and run it again, stop first."""
        delay = RESTART_DELAY_S
        loop = asyncio.get_running_loop()
        while not self._closing:
            started = loop.time()
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever it was, the device needs a stop
                if self._closing:
                    return
                if loop.time() - started > RESTART_DELAY_MAX_S:
                    delay = RESTART_DELAY_S  # it ran well for a while: not the same failure
                self.io_task_restarts += 1
                log.error("%s: I/O task failed", self.device_id, exc_info=exc)
                self._report(
                    f"{self.device_id}: I/O task failed ({type(exc).__name__}: {exc}); link "
                    f"dropped, reconnecting in {delay:.2f} s with a stop pending"
                )
                await self._after_failure()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_DELAY_MAX_S)

    async def _after_failure(self) -> None:
        """Leave no half-open link and nothing queued but a stop; never raises."""
        self.connected = False
        try:
            await self._release_after_failure()
        except Exception:  # a transport that will not close is dropped anyway
            log.exception("%s: closing the link after a failure failed", self.device_id)
        self.request_stop()

    async def _release_after_failure(self) -> None:
        """Close the link after a failure (subclasses forget what the link carried, too)."""
        await self._release()

    async def close(self) -> None:
        """End the I/O task and release the transport; never waits more than a second."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)
            if not done:
                log.error("%s: I/O task did not end within %.1f s", self.device_id, CLOSE_TIMEOUT_S)
            self._task = None
        await self._release()

    async def wait_stop_taken(self) -> None:
        """Return once no stop is pending (the device acknowledged the last one)."""
        await self._stop_taken.wait()

    def request_heartbeat(self) -> None:
        """Feed the device's watchdog once; called only by the tick that ran the kernel."""
        self._heartbeat_pending = True
        self._wake.set()

    def _report(self, message: str) -> None:
        """Remember and hand on a device error; log it once per change."""
        if message != self.last_error:
            log.warning("%s", message)
        self.last_error = message
        if self.on_error is not None:
            self.on_error(self.device_id, message)
