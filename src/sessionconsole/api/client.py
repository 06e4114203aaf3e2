"""Asyncio client of the controller's local API, used by the TUI, scripts and tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

from sessionconsole.api.messages import (
    MAX_LINE_BYTES,
    SERVER_ADAPTER,
    Command,
    ErrorMessage,
    HeartbeatCommand,
    Hello,
    Reply,
    Request,
    Role,
    Snapshot,
)

log = logging.getLogger(__name__)


class ControllerUnavailable(ConnectionError):
    """The controller's socket is missing, refused, or closed."""


class ControllerClient:
    """One connection to the controller: send commands, receive replies and snapshots."""

    def __init__(
        self,
        socket_path: str,
        operator: str,
        role: Role = "therapist",
        client_name: str = "client",
        on_snapshot: Callable[[Snapshot], None] | None = None,
        heartbeat_interval_s: float | None = 0.5,
        pin: str | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.hello = Hello(operator=operator, role=role, client=client_name, pin=pin)
        self.on_snapshot = on_snapshot
        self.latest: Snapshot | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._snapshot_event = asyncio.Event()
        self._closed_event = asyncio.Event()
        self.heartbeat_interval_s = heartbeat_interval_s
        self._heartbeat_task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, timeout_s: float = 2.0) -> None:
        """Open the socket and introduce the operator."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path, limit=MAX_LINE_BYTES * 4),
                timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise ControllerUnavailable(
                f"cannot reach the controller at {self.socket_path}: {exc}"
            ) from exc
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read(reader), name="api-client-reader")
        reply = await self.send(self.hello)
        if not reply.ok:
            await self.close()
            raise ControllerUnavailable(f"controller refused this client: {reply.error}")
        if self.heartbeat_interval_s is not None:
            self._heartbeat_task = asyncio.create_task(
                self._heartbeats(self.heartbeat_interval_s), name="api-client-heartbeat"
            )

    async def _heartbeats(self, interval_s: float) -> None:
        """Tell the controller this client is alive; a silent client counts as lost.

        Ends once close() has taken the task away, even if its cancel was lost: Python 3.11's
        wait_for swallows a cancel that lands in the turn its reply arrived (fixed in 3.12).
        """
        while self.connected and self._heartbeat_task is asyncio.current_task():
            try:
                await self.send(HeartbeatCommand(), timeout_s=interval_s * 4)
            except (ControllerUnavailable, TimeoutError):
                return
            await asyncio.sleep(interval_s)

    async def send(self, command: Command, timeout_s: float = 5.0) -> Reply:
        """Send one command and wait for its reply."""
        if self._writer is None or self._writer.is_closing():
            raise ControllerUnavailable("not connected to the controller")
        rid = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        line = Request(id=rid, command=command).model_dump_json() + "\n"
        try:
            self._writer.write(line.encode())
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout_s)
        except (OSError, ConnectionError) as exc:
            raise ControllerUnavailable(f"lost the controller: {exc}") from exc
        finally:
            self._pending.pop(rid, None)

    async def wait_snapshot(self, timeout_s: float = 3.0) -> Snapshot:
        """Wait for the next snapshot."""
        self._snapshot_event.clear()
        await asyncio.wait_for(self._snapshot_event.wait(), timeout_s)
        assert self.latest is not None
        return self.latest

    async def wait_closed(self) -> None:
        """Return once the connection has ended (either side closed it)."""
        await self._closed_event.wait()

    async def close(self) -> None:
        """Close the connection and fail every pending request."""
        heartbeats, self._heartbeat_task = self._heartbeat_task, None
        if heartbeats is not None:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self._fail_pending("connection closed")

    def _fail_pending(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ControllerUnavailable(why))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = SERVER_ADAPTER.validate_json(line)
                if isinstance(message, Snapshot):
                    self.latest = message
                    self._snapshot_event.set()
                    if self.on_snapshot is not None:
                        self.on_snapshot(message)
                elif isinstance(message, Reply):
                    future = self._pending.get(message.id) if message.id is not None else None
                    if future is not None and not future.done():
                        future.set_result(message)
                elif isinstance(message, ErrorMessage):
                    log.warning("controller reported: %s", message.error)
        except (OSError, ConnectionError, ValueError) as exc:
            log.warning("controller connection ended: %s", exc)
        finally:
            self._writer = None
            self._closed_event.set()
            self._fail_pending("controller closed the connection")
