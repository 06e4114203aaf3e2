"""A serial port read by a thread of its own and written from the event loop.

A tty must not sit in the event loop's selector. Linux's n_tty_poll, when no input is ready,
waits for the tty's receive work (flush_to_ldisc, run by a normal-priority kernel worker),
and epoll_wait and epoll_ctl call it for every tty in the loop's epoll set. Under CPU
contention that worker waits for a CPU and the loop's thread sleeps with it, uninterruptibly:
the controller's loop was seen stalled 100-400 ms that way (perf: epoll_wait -> tty_poll ->
n_tty_poll -> __flush_work; docs/PERFORMANCE.md). So a thread waits for the port's bytes and
hands them to the loop through an asyncio.StreamReader; writes stay on the loop, since a tty
write never waits for the receive side.

On a device path the thread waits with one select and takes everything there with one read
(pyserial's read(1), in_waiting and read(n) took five system calls, each dropping and taking
back the GIL while the loop ran: ~0.03 ms more per reply in paired runs, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import select
import threading
from collections.abc import Callable

import serial

READ_WAIT_S = 0.1  # how long one read waits for a byte before looking at `closing` again
READ_CHUNK = 4096
RETRY_ERRNOS = (errno.EAGAIN, errno.EALREADY, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.EINTR)
CLOSE_WAIT_S = 1.0


class SerialThreadLink:
    """One open port: `reader` gets every byte read; `write` sends without waiting."""

    def __init__(self, port: serial.SerialBase, loop: asyncio.AbstractEventLoop) -> None:
        self.reader = asyncio.StreamReader()
        self._port = port
        self._loop = loop
        self._closing = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"serial {port.port}", daemon=True)

    @classmethod
    async def open(cls, url: str, baudrate: int) -> SerialThreadLink:
        """Open `url` (a device path or a pyserial URL) in an executor and start reading."""
        loop = asyncio.get_running_loop()
        opener = functools.partial(
            serial.serial_for_url, url, baudrate=baudrate, timeout=READ_WAIT_S, write_timeout=0
        )
        link = cls(await loop.run_in_executor(None, opener), loop)
        link._thread.start()
        return link

    def write(self, data: bytes) -> None:
        """Send `data` now (non-blocking); an output buffer too full to take it is an OSError:
        a link that cannot take one short frame is as good as lost."""
        written = self._port.write(data)
        if written is not None and written < len(data):
            raise OSError(f"{self._port.port}: output buffer full ({written} of {len(data)} sent)")

    def close(self) -> None:
        """Stop reading; the thread closes the port (within READ_WAIT_S)."""
        self._closing = True
        with contextlib.suppress(AttributeError, OSError, serial.SerialException):
            self._port.cancel_read()  # posix ports: wake the waiting read

    async def wait_closed(self) -> None:
        """Wait (at most CLOSE_WAIT_S) until the port is closed, so a new open of the same
        port never races the old one's close."""
        await asyncio.get_running_loop().run_in_executor(None, self._done.wait, CLOSE_WAIT_S)

    def _run(self) -> None:
        try:
            while not self._closing:
                if data := self._read_available():
                    self._to_loop(self.reader.feed_data, data)
        except (OSError, serial.SerialException) as exc:
            if not self._closing:
                self._to_loop(self.reader.set_exception, exc)
        finally:
            with contextlib.suppress(OSError, serial.SerialException):
                self._port.close()
            self._to_loop(self.reader.feed_eof)
            self._done.set()

    def _read_available(self) -> bytes:
        """Wait up to READ_WAIT_S for bytes; return all there are (b"" on timeout or cancel)."""
        port = self._port
        fd, abort = getattr(port, "fd", None), getattr(port, "pipe_abort_read_r", None)
        if not isinstance(fd, int) or not isinstance(abort, int):  # not a posix port
            data: bytes = port.read(1)  # waits up to READ_WAIT_S for the first byte
            return data + port.read(port.in_waiting) if data else data
        try:
            ready, _, _ = select.select([fd, abort], [], [], READ_WAIT_S)
            if abort in ready:  # cancel_read() from close()
                os.read(abort, 1000)
                return b""
            if not ready:
                return b""
            data = os.read(fd, READ_CHUNK)
        except OSError as exc:
            if exc.errno in RETRY_ERRNOS:
                return b""
            raise serial.SerialException(f"read failed: {exc}") from exc
        if not data:  # as pyserial: a vanished device is readable and returns nothing
            raise serial.SerialException("device reports readiness to read but returned no data")
        return data

    def _to_loop(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the loop; nothing if the loop is gone (process exit)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)
