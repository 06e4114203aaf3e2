"""Byte-stream endpoints of one ES-2: a pseudo-terminal and a TCP socket (`socket://`).

Each port owns a `FrameReader` (its own byte stream) and hands received bytes to `on_bytes`.
Writes never block the simulator: a serial line with nobody reading just loses bytes. When the
pty's queue is full (nobody read it), its unread bytes are flushed, so a client opening later
never receives stale frames; a TCP client that does not read loses frames beyond 64 KiB.

- pty: `os.openpty()`, slave in raw mode; the simulator keeps the slave fd open, so a client
  closing its end never hangs the pty up and the path stays valid for the process lifetime.
- TCP: one client at a time; a new connection replaces the previous one (like moving the
  cable to another computer), so a console that lost a half-open socket can reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import tty
from collections.abc import Callable

from .frames import FrameReader

MAX_PENDING_BYTES = 4096
READ_CHUNK = 4096
log = logging.getLogger(__name__)


class Port:
    """Common part of a byte-stream endpoint: its frame reader and receive callback."""

    def __init__(self, on_bytes: Callable[[Port, bytes], None]) -> None:
        """Deliver received bytes to `on_bytes(port, data)`."""
        self.on_bytes = on_bytes
        self.reader = FrameReader()

    def write(self, data: bytes) -> None:
        """Send bytes now or discard them (overridden)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the endpoint (overridden)."""


class PtyPort(Port):
    """The device's serial line on a pseudo-terminal; clients open `path`."""

    def __init__(self, on_bytes: Callable[[Port, bytes], None]) -> None:
        """Create the pty pair (raw mode) and start reading the master side."""
        super().__init__(on_bytes)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.pending = b""
        self.waiting = False
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        """Pass received bytes on."""
        try:
            data = os.read(self.master, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # cannot happen while we hold the slave open; never spin
            log.warning("pty read failed: %s", exc)
            return
        if data:
            self.on_bytes(self, data)

    def write(self, data: bytes) -> None:
        """Queue behind unfinished output (keeping the newest bytes) and write what fits."""
        self.pending = (self.pending + data)[-MAX_PENDING_BYTES:]
        self._flush()

    def _flush(self) -> None:
        """Write pending output; a full queue means nobody reads the line: its bytes are lost."""
        written = self._try_write()
        if written is None:
            termios.tcflush(self.slave, termios.TCIFLUSH)  # unread bytes: gone, not stale later
            written = self._try_write() or 0
        self.pending = self.pending[written:]
        if self.pending and not self.waiting:
            self.loop.add_writer(self.master, self._flush)
        elif not self.pending and self.waiting:
            self.loop.remove_writer(self.master)
        self.waiting = bool(self.pending)

    def _try_write(self) -> int | None:
        """Write what the pty takes; None when its queue is full."""
        if not self.pending:
            return 0
        try:
            return os.write(self.master, self.pending)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            log.warning("pty write failed: %s", exc)
            return len(self.pending)

    def close(self) -> None:
        """Stop serving and close both pty ends."""
        self.loop.remove_reader(self.master)
        self.loop.remove_writer(self.master)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpPort(Port):
    """The device's serial byte stream on TCP, one client at a time (the newest wins)."""

    def __init__(self, on_bytes: Callable[[Port, bytes], None]) -> None:
        """Create (not yet listening)."""
        super().__init__(on_bytes)
        self.server: asyncio.Server | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (0 = a free port); return the bound address."""
        self.server = await asyncio.start_server(self._serve, host, port)
        bound = self.server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Take over the line from any previous client and pass its bytes on."""
        if self.writer is not None:
            self.writer.close()
        self.writer = writer
        self.reader.reset()
        try:
            while data := await reader.read(READ_CHUNK):
                if self.writer is not writer:
                    break
                self.on_bytes(self, data)
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            # Shutdown: asyncio.run cancels this handler while a client is connected. Ending
            # normally, since Python 3.11's start_server callback calls task.exception() on a
            # cancelled handler and logs the CancelledError as an error (fixed in 3.12).
            pass
        finally:
            if self.writer is writer:
                self.writer = None
            writer.close()

    def write(self, data: bytes) -> None:
        """Send to the connected client; discard when none or when it does not read."""
        writer = self.writer
        if writer is None or writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() + len(data) > 16 * MAX_PENDING_BYTES:
            return
        writer.write(data)

    def close(self) -> None:
        """Stop listening and drop the client."""
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()
