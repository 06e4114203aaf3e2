"""ES-2 serial frames (ICD ES-2 v2), sans I/O: encode, incremental decode, typed replies.

    $<seq>,<VERB>[,<arg>]...*<CRC>\\r\\n

CRC-16/CCITT-FALSE over the bytes strictly between `$` and `*` (`binascii.crc_hqx` with
init 0xFFFF), four upper-case hex digits. The decoder resynchronises on `$`, and drops and
counts frames with a bad CRC, over 128 bytes, or not ending in CRLF, as the device does.
Only `Es2FrameError` (from `encode`) and `Es2ReplyError` (from `parse_reply`) ever escape.
"""

from __future__ import annotations

import binascii
import secrets
from dataclasses import dataclass, field
from typing import Final

MAX_FRAME_BYTES: Final = 128
SEQ_MAX: Final = 65535
REPLY_TIMEOUT_S: Final = 0.05  # wait for a reply, then re-send the same frame
MAX_SENDS: Final = 3  # the first send and two repeats; after the third silence the link is lost
FORBIDDEN: Final = frozenset("$*,\r\n")
NAK_CODES: Final = frozenset({"SYNTAX", "RANGE", "STATE", "FAULT", "NOCFG", "UNKNOWN"})
STATES: Final = frozenset({"IDLE", "RAMP", "ON", "OFFPHASE", "FAULT"})
RUNNING_STATES: Final = frozenset({"RAMP", "ON", "OFFPHASE"})
FAULT_BITS: Final = {
    0x01: "WATCHDOG",
    0x02: "PATIENT_STOP",
    0x04: "ELECTRODE",
    0x08: "OVERCURRENT",
    0x10: "INTERNAL",
}


class Es2FrameError(ValueError):
    """A frame that cannot be built (bad seq, a forbidden character, too long)."""


class Es2ReplyError(ValueError):
    """A well-framed message whose content does not fit the ICD."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0)."""
    return binascii.crc_hqx(data, 0xFFFF)


def format_number(value: float) -> str:
    """A plain decimal as the ICD writes it: 12.5, 100, 0.5 (never 1e-05 or 12.50000001)."""
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.3f}".rstrip("0")
    return text


def encode(seq: int, verb: str, *args: str | int | float) -> bytes:
    """One request frame, ready for the wire."""
    if not 0 <= seq <= SEQ_MAX:
        raise Es2FrameError(f"seq {seq} outside 0..{SEQ_MAX}")
    fields = [str(seq), verb, *(a if isinstance(a, str) else format_number(a) for a in args)]
    for f in fields:
        if not f or FORBIDDEN.intersection(f):
            raise Es2FrameError(f"field {f!r} is empty or contains one of $ * , CR LF")
    body = ",".join(fields).encode("ascii")
    frame = b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n"
    if len(frame) > MAX_FRAME_BYTES:
        raise Es2FrameError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    return frame


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: sequence number (0 for unsolicited), verb and arguments."""

    seq: int
    verb: str
    args: tuple[str, ...]


@dataclass
class FrameDecoder:
    """Incremental decoder: feed any chunks of bytes, get whole frames back."""

    dropped: int = 0
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return every complete valid frame they finish."""
        buf = self._buffer
        buf += data
        frames: list[Frame] = []
        while True:
            start = buf.find(b"$")
            if start < 0:
                buf.clear()  # bytes outside a frame are skipped (not counted: no frame began)
                return frames
            del buf[:start]
            end = buf.find(b"\n")
            restart = buf.find(b"$", 1)
            if restart >= 0 and (end < 0 or restart < end):
                self.dropped += 1  # a new frame began before this one ended
                del buf[:restart]
                continue
            if end < 0:
                if len(buf) > MAX_FRAME_BYTES:
                    self.dropped += 1  # over-long: its remaining bytes are skipped
                    buf.clear()
                return frames
            raw = bytes(buf[: end + 1])
            del buf[: end + 1]
            frame = parse_frame(raw)
            if frame is None:
                self.dropped += 1
            else:
                frames.append(frame)


def parse_frame(raw: bytes) -> Frame | None:
    """A frame from `$` to `\\n` inclusive, or None when the ICD says drop it."""
    if len(raw) > MAX_FRAME_BYTES or not raw.startswith(b"$") or not raw.endswith(b"\r\n"):
        return None
    star = raw.rfind(b"*")
    if star < 0 or raw.count(b"*") != 1 or star + 7 != len(raw):
        return None
    body, crc_text = raw[1:star], raw[star + 1 : star + 5]
    try:
        if int(crc_text, 16) != crc16(body) or crc_text.upper() != crc_text:
            return None
        fields = body.decode("ascii").split(",")
        seq = int(fields[0])
    except (ValueError, UnicodeDecodeError):
        return None
    if not 0 <= seq <= SEQ_MAX or len(fields) < 2 or not fields[1]:
        return None
    return Frame(seq, fields[1], tuple(fields[2:]))


class SeqCounter:
    """Request sequence numbers 1..65535, wrapping to 1; starts at a random point so that a
    restarted console does not reuse the numbers its previous run just used."""

    def __init__(self, start: int | None = None) -> None:
        self._next = start if start is not None else 1 + secrets.randbelow(SEQ_MAX)

    def next(self) -> int:
        """The next sequence number."""
        seq = self._next
        self._next = 1 if seq >= SEQ_MAX else seq + 1
        return seq


# ---- typed messages from the device ----


@dataclass(frozen=True, slots=True)
class Ack:
    """ACK."""


@dataclass(frozen=True, slots=True)
class Nak:
    """NAK with its code."""

    code: str


@dataclass(frozen=True, slots=True)
class Identity:
    """ID reply."""

    model: str
    serial: str
    firmware: str
    channels: int


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """STAT reply or TEL frame: one channel's state and measured values."""

    channel: int
    state: str
    target_ma: float | None  # None for TEL, which carries no target
    measured_ma: float
    impedance_ohm: float
    faults: tuple[str, ...]

    @property
    def running(self) -> bool:
        """RAMP, ON and OFFPHASE all count as running (ICD)."""
        return self.state in RUNNING_STATES


@dataclass(frozen=True, slots=True)
class ErrorCounters:
    """ERR reply."""

    dropped: int
    syntax: int


@dataclass(frozen=True, slots=True)
class Event:
    """An unsolicited EVT frame: PSTOP, ELECTRODE, OVERCURRENT, WATCHDOG, BOOT."""

    name: str
    channel: int | None


Message = Ack | Nak | Identity | ChannelStatus | ErrorCounters | Event


def decode_faults(text: str) -> tuple[str, ...]:
    """The 2-digit hex fault mask as names; unknown bits are named, not dropped."""
    if len(text) != 2 or text.upper() != text:
        raise Es2ReplyError(f"fault mask {text!r} is not 2 upper-case hex digits")
    try:
        mask = int(text, 16)
    except ValueError as exc:
        raise Es2ReplyError(f"fault mask {text!r} is not hex") from exc
    names = [name for bit, name in FAULT_BITS.items() if mask & bit]
    unknown = mask & ~sum(FAULT_BITS)
    if unknown:
        names.append(f"UNKNOWN_0x{unknown:02X}")
    return tuple(names)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise Es2ReplyError(f"{what} {text!r} is not a number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise Es2ReplyError(f"{what} {text!r} is not a finite number")
    return value


def _channel(text: str) -> int:
    if text not in ("1", "2"):
        raise Es2ReplyError(f"channel {text!r} is not 1 or 2")
    return int(text)


def parse_reply(frame: Frame) -> Message:
    """The typed content of a frame from the device; Es2ReplyError when it does not fit."""
    verb, args = frame.verb, frame.args
    if verb == "ACK" and not args:
        return Ack()
    if verb == "NAK" and len(args) == 1 and args[0] in NAK_CODES:
        return Nak(args[0])
    if verb == "ID" and len(args) == 4:  # any model: the driver names a wrong one
        return Identity(args[0], args[1], args[2], int(_number(args[3], "channel count")))
    if verb == "STAT" and len(args) == 6 and args[1] in STATES:
        return ChannelStatus(
            _channel(args[0]),
            args[1],
            _number(args[2], "target_ma"),
            _number(args[3], "meas_ma"),
            _number(args[4], "impedance_ohm"),
            decode_faults(args[5]),
        )
    if verb == "TEL" and len(args) == 5 and args[1] in STATES:
        return ChannelStatus(
            _channel(args[0]),
            args[1],
            None,
            _number(args[2], "meas_ma"),
            _number(args[3], "impedance_ohm"),
            decode_faults(args[4]),
        )
    if verb == "ERR" and len(args) == 2:
        return ErrorCounters(int(_number(args[0], "dropped")), int(_number(args[1], "syntax")))
    if verb == "EVT" and args:
        name = args[0]
        if name in ("PSTOP", "WATCHDOG", "BOOT") and len(args) == 1:
            return Event(name, None)
        if name in ("ELECTRODE", "OVERCURRENT") and len(args) == 2:
            return Event(name, _channel(args[1]))
    raise Es2ReplyError(f"unexpected {verb} frame with {len(args)} field(s): {args!r}")
