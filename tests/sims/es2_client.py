"""A small blocking ES-2 client for the simulator tests, written from the ICD (not the sim).

Frames: `$<seq>,<VERB>[,<arg>]...*<CRC>\r\n`, CRC-16/CCITT-FALSE over the bytes between `$`
and `*`. Unsolicited frames (seq 0) met while waiting for a reply are kept in `unsolicited`.
"""

from __future__ import annotations

import binascii
import time
from typing import Any

import serial


def crc(content: bytes) -> str:
    """CRC-16/CCITT-FALSE as 4 upper-case hex digits."""
    return f"{binascii.crc_hqx(content, 0xFFFF):04X}"


def frame(seq: int | str, body: str) -> bytes:
    """Build a request frame with a correct CRC."""
    content = f"{seq},{body}".encode("ascii")
    return b"$" + content + b"*" + crc(content).encode("ascii") + b"\r\n"


def parse(line: bytes) -> tuple[int, list[str]]:
    """Check a received frame's CRC and shape; return (seq, fields)."""
    assert line.startswith(b"$") and line.endswith(b"\r\n"), line
    content, _, tail = line[1:-2].partition(b"*")
    assert tail == crc(content).encode("ascii"), f"bad CRC in {line!r}"
    seq, *fields = content.decode("ascii").split(",")
    return int(seq), fields


class ES2Client:
    """Blocking client on a pty path or a `socket://` URL."""

    def __init__(self, url: str) -> None:
        """Open the port (pyserial)."""
        self.port: Any = serial.serial_for_url(url, timeout=0.02)
        self.buffer = b""
        self.seq = 100
        self.unsolicited: list[tuple[float, list[str]]] = []

    def close(self) -> None:
        """Close the port."""
        self.port.close()

    def write(self, data: bytes) -> None:
        """Send raw bytes."""
        self.port.write(data)
        self.port.flush()

    def read_line(self, timeout: float) -> bytes | None:
        """The next frame from its last `$` to `\\n` (bytes before a `$` are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" not in self.buffer:
                if time.monotonic() >= deadline:
                    return None
                self.buffer += self.port.read(self.port.in_waiting or 1)
            line, _, self.buffer = self.buffer.partition(b"\n")
            if b"$" in line:
                return line[line.rindex(b"$") :] + b"\n"

    def read_reply(self, timeout: float = 1.0) -> bytes | None:
        """The next frame with a non-zero seq; seq-0 frames go to `unsolicited`."""
        deadline = time.monotonic() + timeout
        while (line := self.read_line(max(0.0, deadline - time.monotonic()))) is not None:
            seq, fields = parse(line)
            if seq != 0:
                return line
            self.unsolicited.append((time.monotonic(), fields))
        return None

    def request(self, body: str, seq: int | None = None, timeout: float = 1.0) -> list[str]:
        """Send one request; return the reply's fields (asserting the echoed seq)."""
        if seq is None:
            self.seq = self.seq % 65535 + 1
            seq = self.seq
        self.write(frame(seq, body))
        line = self.read_reply(timeout)
        assert line is not None, f"no reply to {body!r}"
        got, fields = parse(line)
        assert got == seq, (seq, line)
        return fields

    def wait_event(self, *fields: str, timeout: float = 1.0) -> float:
        """Wait for an unsolicited frame starting with `fields`; return its arrival time."""
        deadline = time.monotonic() + timeout
        while True:
            for index, (when, got) in enumerate(self.unsolicited):
                if got[: len(fields)] == list(fields):
                    del self.unsolicited[: index + 1]
                    return when
            self.unsolicited.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {fields} within {timeout} s"
            line = self.read_line(remaining)
            if line is not None:
                seq, got = parse(line)
                assert seq == 0, f"unexpected reply {line!r}"
                self.unsolicited.append((time.monotonic(), got))
