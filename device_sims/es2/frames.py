"""ES-2 frame codec: CRC-16/CCITT-FALSE, encoding, and a resynchronising byte-stream reader.

A frame is `$<content>*<CRC>\r\n`, at most 128 bytes from `$` to `\n`. The reader skips bytes
before a `$`; a `$` always starts a new frame (an unfinished one is dropped). A frame is
dropped and counted when it is longer than 128 bytes, does not end in `\r\n`, has other than
exactly one `*` followed by 4 characters, or its CRC (upper-case hex) does not match.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

MAX_FRAME_BYTES = 128
START, STAR, TAIL = b"$", b"*", b"\r\n"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the ICD's frame check."""
    return binascii.crc_hqx(data, 0xFFFF)


def crc_text(data: bytes) -> str:
    """The CRC as the 4 upper-case hex digits a frame carries."""
    return f"{crc16(data):04X}"


def encode(seq: int, fields: Sequence[str]) -> bytes:
    """Build one frame `$<seq>,<fields...>*<CRC>\\r\\n`."""
    content = ",".join([str(seq), *fields]).encode("ascii")
    return START + content + STAR + crc_text(content).encode("ascii") + TAIL


def format_number(value: float, decimals: int = 1) -> str:
    """Plain decimal with at most `decimals` places and no trailing zeros: 12.5, 12, 0."""
    text = f"{round(value, decimals):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def check_frame(frame: bytes) -> bytes | None:
    """Return the content between `$` and `*` of a complete frame, or None to drop it."""
    if len(frame) > MAX_FRAME_BYTES or not frame.startswith(START) or not frame.endswith(TAIL):
        return None
    body = frame[1 : -len(TAIL)]
    if body.count(STAR) != 1:
        return None
    content, crc = body.split(STAR)
    if len(crc) != 4 or crc != crc_text(content).encode("ascii"):
        return None
    return content


class FrameReader:
    """Splits one received byte stream into verified frame contents, counting dropped frames."""

    def __init__(self) -> None:
        """Start between frames (skipping bytes until a `$`)."""
        self.partial: bytearray | None = None

    def reset(self) -> None:
        """Forget any unfinished frame (the device rebooted)."""
        self.partial = None

    def feed(self, data: bytes) -> tuple[list[bytes], int]:
        """Consume received bytes; return (good frame contents, number of frames dropped)."""
        contents: list[bytes] = []
        dropped = 0
        for byte in data:
            if byte == START[0]:
                dropped += self.partial is not None  # a new `$` cuts an unfinished frame
                self.partial = bytearray(START)
                continue
            if self.partial is None:
                continue  # outside a frame: skipped, not counted
            self.partial.append(byte)
            if byte == TAIL[-1]:
                content = check_frame(bytes(self.partial))
                self.partial = None
                if content is None:
                    dropped += 1
                else:
                    contents.append(content)
            elif len(self.partial) >= MAX_FRAME_BYTES:  # the 128th byte is not `\n`: too long
                self.partial = None
                dropped += 1
        return contents, dropped
