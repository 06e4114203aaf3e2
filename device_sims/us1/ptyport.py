"""A pseudo-terminal owned by the simulator: it serves the master fd, clients open the slave path.

The simulator holds a slave fd open itself, so a client may close and reopen the path as often
as it likes without the master seeing a hang-up (EIO), and the pty vanishes with the process
however it ends (even SIGKILL): no helper process, no link file, nothing to clean up.

The slave's termios is shared by every fd on it, so `line()` reads what the client configured.
A pty carries only part of a UART's settings: Linux forces 8 data bits and no parity on it
(and glibc's tcsetattr fails with EINVAL when a parity change is all that was asked, which is
how pyserial's second reconfigure of a port opened with parity "E" ends: pyserial issue #196),
so clients must open it with parity "N"; baud rate and stop bits do stick and can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import tty
from typing import NamedTuple, Protocol

log = logging.getLogger(__name__)

BAUD_CONSTANTS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
}


class PtyLine(NamedTuple):
    """The part of a serial line's settings a pty keeps: baud rate and stop bits."""

    baudrate: int
    stopbits: int

    def __str__(self) -> str:
        """E.g. `19200 baud, 1 stop bit`."""
        return f"{self.baudrate} baud, {self.stopbits} stop bit{'s' if self.stopbits > 1 else ''}"


class StreamReceiver(Protocol):
    """What the transport needs of its protocol (pymodbus's ModbusProtocol has both)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called once the transport is reading."""

    def data_received(self, data: bytes) -> None:
        """Called with each chunk the client wrote."""


class PtyPair:
    """A raw pty pair: master for the simulator, slave path for clients, set to `line`."""

    def __init__(self, line: PtyLine) -> None:
        """Open the pair, make both ends raw and set `line` (a client usually sets it again)."""
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.master_fd)
        tty.setraw(self.slave_fd)
        attrs = termios.tcgetattr(self.slave_fd)
        speed = next(code for code, rate in BAUD_CONSTANTS.items() if rate == line.baudrate)
        attrs[2] = (attrs[2] & ~termios.CSTOPB) | (termios.CSTOPB if line.stopbits == 2 else 0)
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(self.slave_fd, termios.TCSANOW, attrs)
        os.set_blocking(self.master_fd, False)
        self.path = os.ttyname(self.slave_fd)

    def line(self) -> PtyLine:
        """Baud rate and stop bits currently set on the slave (by the last client)."""
        attrs = termios.tcgetattr(self.slave_fd)
        cflag, ospeed = attrs[2], attrs[5]
        return PtyLine(BAUD_CONSTANTS.get(ospeed, 0), 2 if cflag & termios.CSTOPB else 1)

    def close(self) -> None:
        """Close both ends; the slave path disappears once clients close it too."""
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyTransport(asyncio.Transport):
    """Non-blocking asyncio transport over the master fd of a `PtyPair`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pty: PtyPair, protocol: StreamReceiver
    ) -> None:
        """Attach `protocol`; reading starts and `connection_made` runs on the next loop pass."""
        super().__init__()
        self._loop = loop
        self._pty: PtyPair | None = pty
        self._fd = pty.master_fd
        self._protocol = protocol
        self._pending = b""
        loop.add_reader(self._fd, self._read_ready)
        loop.call_soon(protocol.connection_made, self)

    def _read_ready(self) -> None:
        """Pass whatever the client wrote to the protocol."""
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # cannot happen while we hold the slave open; never spin
            log.warning("pty %s read failed (%s): closing", self.path, exc)
            self.close()
            return
        if data:
            self._protocol.data_received(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write now if the pty takes it, else queue the rest until it drains."""
        if self._pty is None:
            return
        if not self._pending:
            try:
                data = bytes(data)[os.write(self._fd, data) :]
            except BlockingIOError:
                data = bytes(data)
            if not data:
                return
            self._loop.add_writer(self._fd, self._write_ready)
        self._pending += bytes(data)

    def _write_ready(self) -> None:
        """Flush queued bytes as the pty drains."""
        try:
            self._pending = self._pending[os.write(self._fd, self._pending) :]
        except BlockingIOError:
            return
        except OSError:
            self._pending = b""
        if not self._pending:
            self._loop.remove_writer(self._fd)

    @property
    def path(self) -> str:
        """The slave path clients open."""
        return self._pty.path if self._pty is not None else "(closed)"

    def is_closing(self) -> bool:
        """Whether `close()` has run."""
        return self._pty is None

    def close(self) -> None:
        """Stop serving and close the pty (idempotent)."""
        if self._pty is None:
            return
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._pty.close()
        self._pty = None

    def abort(self) -> None:
        """Same as close: nothing to flush on a pty."""
        self.close()
