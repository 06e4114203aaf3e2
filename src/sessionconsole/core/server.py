"""The controller's local API server: JSON lines on an owner-only (or one-group) Unix socket.

Every connection's peer credentials are checked as well (core/peers.py): a stranger that
gets past a loosened socket mode is refused with one line and disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sessionconsole.api.messages import (
    MAX_LINE_BYTES,
    REQUEST_ADAPTER,
    ErrorMessage,
    Reply,
    Request,
)
from sessionconsole.core.peers import PeerPolicy, peer_of

log = logging.getLogger(__name__)

MAX_CLIENT_BUFFER = 1024 * 1024


@dataclass(eq=False)
class ClientSession:
    """One connected client: who operates it, and where replies go."""

    id: int
    writer: asyncio.StreamWriter
    operator: str | None = None
    role: str | None = None
    name: str = "unknown"
    closed: bool = field(default=False)

    def send_line(self, line: bytes) -> None:
        """Queue one line; a client that stops reading is dropped rather than slowing the loop."""
        if self.closed:
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > MAX_CLIENT_BUFFER:
            log.warning("client %d (%s) is not reading; dropping it", self.id, self.name)
            self.close()
            return
        self.writer.write(line)

    def reply(self, reply: Reply) -> None:
        """Send a reply."""
        self.send_line(reply.model_dump_json().encode() + b"\n")

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        self.writer.close()


class ApiServer:
    """Accepts clients and hands each parsed request to `on_request`; broadcasts lines."""

    def __init__(
        self,
        socket_path: Path,
        on_request: Callable[[ClientSession, Request], None],
        on_disconnect: Callable[[ClientSession], None] | None = None,
        policy: PeerPolicy | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.policy = policy or PeerPolicy(owner_uid=os.getuid())
        self.refused = 0
        self.on_request = on_request
        self.on_disconnect = on_disconnect
        self.clients: set[ClientSession] = set()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on the socket, owner-only, replacing a stale socket file.

        The socket is bound under a temporary name and renamed into place once it listens,
        so the path existing means the controller is ready (clients may wait for it).
        """
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.socket_path.with_name(f".{self.socket_path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(staging), limit=MAX_LINE_BYTES
            )
        finally:
            os.umask(old_umask)
        if self.policy.group_gid is None:
            os.chmod(staging, 0o600)
        else:
            os.chown(staging, -1, self.policy.group_gid)
            os.chmod(staging, 0o660)
        os.replace(staging, self.socket_path)

    async def close(self) -> None:
        """Stop listening and close every client."""
        for client in list(self.clients):
            client.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def broadcast(self, line: bytes) -> None:
        """Send one line to every client."""
        for client in list(self.clients):
            client.send_line(line)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = ClientSession(next(self._ids), writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            peer = peer_of(sock)
            if not self.policy.allows(peer):
                self.refused += 1
                reason = self.policy.refusal(peer)
                log.warning("refused an API client: %s", reason)
                self._error(client, f"refused: {reason}")
                await _close_gently(reader, writer)
                return
        self.clients.add(client)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    self._error(client, f"line longer than {MAX_LINE_BYTES} bytes; closing")
                    break
                if not line:
                    break
                try:
                    request = REQUEST_ADAPTER.validate_json(line)
                except ValidationError as exc:
                    self._error(client, _describe(exc))
                    continue
                self.on_request(client, request)
        except (ConnectionError, OSError) as exc:
            log.info("client %d disconnected: %s", client.id, exc)
        finally:
            self.clients.discard(client)
            client.closed = True
            writer.close()
            if self.on_disconnect is not None:
                self.on_disconnect(client)

    @staticmethod
    def _error(client: ClientSession, message: str) -> None:
        client.send_line(ErrorMessage(error=message).model_dump_json().encode() + b"\n")


async def _close_gently(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close after the peer has had our last line: closing with its data unread would reset
    the connection and lose the line. Waits at most a second for the peer to finish."""
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(1.0):
            while await reader.read(4096):
                pass
    writer.close()


def _describe(exc: ValidationError) -> str:
    """One line per problem: where in the message, and what was wrong."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)
