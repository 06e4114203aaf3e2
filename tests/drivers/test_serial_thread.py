"""SerialThreadLink on a real pseudo-terminal: what its reader thread hands to the loop.

The thread waits with one select and takes everything there with one read, so a frame written
at once reaches the loop in one piece; bursts larger than one read arrive whole and in order;
close() ends the thread and the reader sees EOF; a line that goes away is an error on the
reader, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator

import pytest
import serial

from sessionconsole.drivers.serial_thread import READ_CHUNK, SerialThreadLink

FRAME = b"$17,ACK*1A2B\r\n" * 6  # 84 bytes written in one go


@contextlib.asynccontextmanager
async def pty_link() -> AsyncIterator[tuple[SerialThreadLink, int]]:
    """A link on a fresh pty's slave path, and the master fd (the "device" side)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    link = await SerialThreadLink.open(os.ttyname(slave), 115200)
    try:
        yield link, master
    finally:
        link.close()
        await link.wait_closed()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def test_a_frame_written_at_once_reaches_the_loop_in_one_piece() -> None:
    async with pty_link() as (link, master):
        for _ in range(5):
            os.write(master, FRAME)
            data = await asyncio.wait_for(link.reader.read(4096), 5.0)
            assert data == FRAME


async def test_a_burst_larger_than_one_read_arrives_whole_and_in_order() -> None:
    burst = bytes(range(256)) * (3 * READ_CHUNK // 256 + 7)
    async with pty_link() as (link, master):
        loop = asyncio.get_running_loop()
        writing = loop.run_in_executor(None, _write_all, master, burst)
        received = await asyncio.wait_for(link.reader.readexactly(len(burst)), 10.0)
        await writing
        assert received == burst


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def test_close_ends_the_thread_and_the_reader_sees_eof() -> None:
    async with pty_link() as (link, master):
        os.write(master, b"$1,HB*0000\r\n")
        assert await asyncio.wait_for(link.reader.read(4096), 5.0)
        link.close()
        await link.wait_closed()
        assert await asyncio.wait_for(link.reader.read(4096), 5.0) == b""
        assert link._done.is_set()


async def test_a_line_that_goes_away_is_an_error_on_the_reader_not_a_hang() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    link = await SerialThreadLink.open(os.ttyname(slave), 115200)
    os.close(slave)
    os.close(master)  # the device side vanishes: the slave reads EIO
    try:
        with pytest.raises((OSError, serial.SerialException)) as caught:
            await asyncio.wait_for(link.reader.read(4096), 5.0)
        assert not isinstance(caught.value, TimeoutError)  # an error, not a hang
    finally:
        link.close()
        await link.wait_closed()
