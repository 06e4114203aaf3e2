"""ES-2 request handling: shape checks, repeat memory, verb table, ranges, reply fields.

Order of checks for a frame with a good CRC: seq (decimal 1-65535 without leading zeros, else
`NAK,SYNTAX` with seq 0, not remembered), repeat memory (same seq and body as the last
executed request: its reply again, except STOP), an empty field or one that is not printable
ASCII (`SYNTAX`), verb (`UNKNOWN`),
argument count and number syntax (`SYNTAX`), ranges (`RANGE`), then state (`STATE`, `FAULT`,
`NOCFG`). Numbers are plain decimals (`-?digits[.digits]`); channels, WDG ms and STREAM hz must
be whole. A STOP that cannot be read (bad shape or channel) still stops every channel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from .channel import Config
from .model import ES2Model, Remembered
from .physics import CHANNELS

NUMBER = re.compile(r"-?\d+(\.\d+)?")
SEQ = re.compile(r"[1-9]\d{0,4}")
MODES = frozenset({"SYM", "ASYM", "RUSS", "IFC", "HVPC"})
ACK = ["ACK"]
Reply = list[str]


class Refusal(Exception):
    """A request refused with `NAK,<code>`."""

    def __init__(self, code: str) -> None:
        """Remember the NAK code."""
        super().__init__(code)
        self.code = code


def number(text: str) -> Decimal:
    """A plain decimal number, else SYNTAX."""
    if not NUMBER.fullmatch(text):
        raise Refusal("SYNTAX")
    return Decimal(text)


def whole(value: Decimal, low: int, high: int) -> int:
    """A whole number within low..high, else RANGE."""
    if value != value.to_integral_value() or not low <= value <= high:
        raise Refusal("RANGE")
    return int(value)


def within(value: Decimal, low: int, high: int) -> float:
    """A number within low..high, else RANGE."""
    if not low <= value <= high:
        raise Refusal("RANGE")
    return float(value)


def channel(text: str) -> int:
    """A channel number, 1 or 2."""
    return whole(number(text), 1, len(CHANNELS))


def _cfg(model: ES2Model, args: list[str], now: float) -> Reply:
    """CFG,<ch>,<mode>,<freq_hz>,<pw_us>,<on_s>,<off_s>,<ramp_s>."""
    values = [number(text) for text in args[2:]]  # syntax of every number before any range
    ch = channel(args[0])
    if args[1] not in MODES:
        raise Refusal("RANGE")
    freq, pw, on_s, off_s, ramp_s = values
    config = Config(
        mode=args[1],
        freq_hz=within(freq, 1, 250),
        pw_us=within(pw, 5, 400),
        on_s=within(on_s, 0, 60),
        off_s=within(off_s, 0, 60),
        ramp_s=within(ramp_s, 0, 10),
    )
    return _ack_or_nak(model.configure(ch, config))


def _amp(model: ES2Model, args: list[str], now: float) -> Reply:
    """AMP,<ch>,<ma>: 0-100 mA in steps of 0.5."""
    ma = number(args[1])
    ch = channel(args[0])
    if (ma * 2) != (ma * 2).to_integral_value():
        raise Refusal("RANGE")
    model.amplitude(ch, within(ma, 0, 100))
    return ACK


def _run(model: ES2Model, args: list[str], now: float) -> Reply:
    """RUN,<ch>."""
    return _ack_or_nak(model.run(channel(args[0]), now))


def _stop(model: ES2Model, args: list[str], now: float) -> Reply:
    """STOP,<ch>; 0 = every channel."""
    ch = whole(number(args[0]), 0, len(CHANNELS))
    model.stop(list(CHANNELS) if ch == 0 else [ch])
    return ACK


def _rst(model: ES2Model, args: list[str], now: float) -> Reply:
    """RST,<ch>."""
    return _ack_or_nak(model.reset(channel(args[0])))


def _hb(model: ES2Model, args: list[str], now: float) -> Reply:
    """HB."""
    model.heartbeat(now)
    return ACK


def _wdg(model: ES2Model, args: list[str], now: float) -> Reply:
    """WDG,<ms>: 100-2000."""
    model.set_watchdog(whole(number(args[0]), 100, 2000))
    return ACK


def _stat(model: ES2Model, args: list[str], now: float) -> Reply:
    """STAT?,<ch>."""
    return ["STAT", *model.channel_fields(channel(args[0]))]


def _stream(model: ES2Model, args: list[str], now: float) -> Reply:
    """STREAM,<hz>: 0 or 1-50."""
    model.stream(whole(number(args[0]), 0, 50), now)
    return ACK


def _ack_or_nak(code: str | None) -> Reply:
    """ACK for None, else NAK,<code>."""
    return ACK if code is None else ["NAK", code]


Verb = Callable[[ES2Model, list[str], float], Reply]
VERBS: dict[str, tuple[int, Verb]] = {
    "ID?": (0, lambda model, _args, _now: model.identity()),
    "CFG": (7, _cfg),
    "AMP": (2, _amp),
    "RUN": (1, _run),
    "STOP": (1, _stop),
    "RST": (1, _rst),
    "HB": (0, _hb),
    "WDG": (1, _wdg),
    "STAT?": (1, _stat),
    "STREAM": (1, _stream),
    "ERR?": (0, lambda model, _args, _now: model.errors()),
}


def execute(model: ES2Model, fields: list[str], now: float) -> Reply:
    """Execute verb and arguments; a STOP that cannot be read stops every channel."""
    try:
        if any(not field or not (field.isascii() and field.isprintable()) for field in fields):
            raise Refusal("SYNTAX")
        verb, args = fields[0], fields[1:]
        if verb not in VERBS:
            raise Refusal("UNKNOWN")
        arity, handler = VERBS[verb]
        if len(args) != arity:
            raise Refusal("SYNTAX")
        return handler(model, args, now)
    except Refusal as refusal:
        if fields and fields[0] == "STOP":
            model.stop(list(CHANNELS))
        return ["NAK", refusal.code]


def respond(model: ES2Model, content: bytes, now: float) -> tuple[int, Reply]:
    """Answer one verified frame content: (seq, reply fields)."""
    model.advance(now)
    text = content.decode("ascii", errors="replace")
    seq_text, _, body = text.partition(",")
    fields = body.split(",")
    if not SEQ.fullmatch(seq_text) or int(seq_text) > 65535:
        if fields[0] == "STOP":
            model.stop(list(CHANNELS))
        return 0, _count(model, ["NAK", "SYNTAX"])
    seq = int(seq_text)
    memory = model.memory
    if memory is not None and memory.content == content and fields[0] != "STOP":
        model.repeats += 1
        return seq, _count(model, list(memory.reply))
    reply = execute(model, fields, now)
    model.executed += 1
    model.memory = Remembered(content, tuple(reply))
    return seq, _count(model, reply)


def _count(model: ES2Model, reply: Reply) -> Reply:
    """Count every NAK,SYNTAX answer (ERR? second field)."""
    if reply == ["NAK", "SYNTAX"]:
        model.syntax += 1
    return reply
