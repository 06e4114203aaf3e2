"""Pure codec for register-map profiles: physical values to words and back, poll plans, readings.

No I/O: the generic Modbus driver reads the blocks a `PollRead` names and hands them here. Every
failure is a `MapCodecError` (or a subclass) naming the register, so bad words from a unit and
bad values from the console both end in one specific message.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sessionconsole.model.modbus_map import (
    BOOL_FIELDS,
    RAW_RANGE,
    ModbusGenericProfile,
    ModbusRegister,
)
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.telemetry import UltrasoundReading

MAX_READ_REGISTERS = 125  # Modbus application protocol, FC 3 and FC 4
MAX_READ_BITS = 2000  # FC 1 and FC 2
Physical = float | bool | str | None
"""A decoded value: a number in the register's unit, a bit, a state/fault name (None: no fault)."""

INT_FIELDS = frozenset(
    {
        "frequency_khz",
        "duty_pct",
        "time_s",
        "watchdog_ms",
        "coupling_pct",
        "remaining_s",
        "emission_s",
        "energy_j",
        "boot_count",
        "model_code",
        "serial_number",
    }
)


class MapCodecError(ValueError):
    """Words or a value that do not fit a register (wrong length, unknown code, not a number)."""


class OutOfRange(MapCodecError):
    """A value outside what the register accepts (its min/max, or what its type can hold)."""


class UnknownCode(MapCodecError):
    """A code with no meaning in the register's value map, or a meaning with no code."""


@dataclass(frozen=True, slots=True)
class PollRead:
    """One read request of a poll: `count` registers (or bits) of `table` from `address`."""

    table: str
    address: int
    count: int
    registers: tuple[ModbusRegister, ...]


@dataclass(frozen=True, slots=True)
class WriteBlock:
    """Holding registers written in one request (function 16) from `address`."""

    address: int
    values: tuple[int, ...]


# ---- words <-> raw numbers ----


def raw_to_words(register_type: str, word_order: str, raw: float) -> list[int]:
    """A raw number (already scaled) as the register's words, high word first unless little."""
    if register_type == "f32":
        packed = struct.pack(">f", raw)
        high, low = int.from_bytes(packed[:2], "big"), int.from_bytes(packed[2:], "big")
    else:
        low_limit, high_limit = RAW_RANGE[register_type]
        if not isinstance(raw, int) or not low_limit <= raw <= high_limit:
            raise OutOfRange(f"raw value {raw!r} does not fit {register_type}")
        if register_type in ("u16", "i16", "bool"):
            return [raw & 0xFFFF]
        value = raw & 0xFFFFFFFF
        high, low = value >> 16, value & 0xFFFF
    return [high, low] if word_order == "big" else [low, high]


def words_to_raw(register_type: str, word_order: str, words: Sequence[int]) -> float:
    """The raw number in `words` (two's complement for i16/i32, IEEE 754 for f32)."""
    expected = 2 if register_type in ("u32", "i32", "f32") else 1
    if len(words) != expected:
        raise MapCodecError(f"{register_type} takes {expected} word(s), got {len(words)}")
    for word in words:
        if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= 0xFFFF:
            raise MapCodecError(f"{word!r} is not a 16-bit register value")
    if expected == 1:
        value = words[0]
        return value - 0x10000 if register_type == "i16" and value & 0x8000 else value
    high, low = (words[0], words[1]) if word_order == "big" else (words[1], words[0])
    value = (high << 16) | low
    if register_type == "f32":
        return _shortest_f32(value.to_bytes(4, "big"))
    return value - 0x1_0000_0000 if register_type == "i32" and value & 0x8000_0000 else value


def _shortest_f32(packed: bytes) -> float:
    """The shortest decimal that is the same single: 0.8, not 0.800000011920929.

    So a setpoint written as 0.8 reads back as 0.8 and never trips a limit by a rounding hair.
    """
    number: float = struct.unpack(">f", packed)[0]
    if not math.isfinite(number):
        return number
    for digits in range(6, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    return number


# ---- physical values ----


def encode(reg: ModbusRegister, value: float) -> list[int]:
    """The words that write physical `value` to `reg` (a code for an enumerated setpoint)."""
    if reg.values is not None and reg.role == "setpoint":
        for key, code in reg.values.items():
            if _number(key) == value:
                return raw_to_words(reg.type, reg.order, code)
        allowed = ", ".join(reg.values)
        raise UnknownCode(f"{reg.name}: no code for {value:g} {reg.unit}; allowed: {allowed}")
    low, high = reg.write_range()
    if not math.isfinite(value) or not low <= value <= high:
        raise OutOfRange(
            f"{reg.name}: {value:g} {reg.unit} is outside {low:g}..{high:g}".replace("  ", " ")
        )
    raw = (value - reg.offset) / reg.scale
    if reg.type == "f32":
        return raw_to_words("f32", reg.order, raw)
    try:
        return raw_to_words(reg.type, reg.order, round(raw))
    except OutOfRange as exc:
        raise OutOfRange(f"{reg.name}: {value:g} {reg.unit}: {exc}") from exc


def encode_code(reg: ModbusRegister, meaning: str) -> list[int]:
    """The words of a coded meaning (a command such as `stop`)."""
    code = (reg.values or {}).get(meaning)
    if code is None:
        raise UnknownCode(f"{reg.name}: no code for {meaning!r} in the profile")
    return raw_to_words(reg.type, reg.order, code)


def decode(reg: ModbusRegister, words: Sequence[int]) -> Physical:
    """The physical value (or state/fault name, or bit) that `words` of `reg` stand for."""
    try:
        raw = words_to_raw(reg.type if reg.type != "bool" else "u16", reg.order, words)
    except MapCodecError as exc:
        raise MapCodecError(f"{reg.name}: {exc}") from exc
    if reg.values is not None:
        for key, code in reg.values.items():
            if code == raw:
                if reg.role == "setpoint":
                    return _number(key)
                return None if reg.role == "fault" and key == "none" else key
        raise UnknownCode(f"{reg.name}: unknown code {raw:g} (not in the profile's value map)")
    if reg.target in BOOL_FIELDS:
        if raw not in (0, 1):
            raise MapCodecError(f"{reg.name}: {raw:g} is not 0 or 1")
        return raw == 1
    if not math.isfinite(raw):
        raise MapCodecError(f"{reg.name}: {raw} is not a number")
    return raw * reg.scale + reg.offset


def decode_bit(reg: ModbusRegister, bit: object) -> bool:
    """A coil or discrete input as read."""
    if not isinstance(bit, bool | int) or bit not in (0, 1):
        raise MapCodecError(f"{reg.name}: {bit!r} is not a bit")
    return bool(bit)


def readback(reg: ModbusRegister, value: float) -> Physical:
    """What a poll reads back after `value` was written (rounded to the register's step)."""
    return decode(reg, encode(reg, value))


def _number(key: str) -> float:
    """A value-map key as a physical number (keys were checked at load time)."""
    try:
        return float(key)
    except ValueError as exc:
        raise MapCodecError(f"value-map key {key!r} is not a number") from exc


# ---- polls ----


def plan_poll(
    registers: Iterable[ModbusRegister],
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> list[PollRead]:
    """The readable registers in as few contiguous reads per table as the size limits allow."""
    readable = sorted((r for r in registers if r.readable), key=lambda r: (r.table, r.address))
    plan: list[PollRead] = []
    for reg in readable:
        limit = max_bits if reg.table in ("coil", "discrete") else max_registers
        last = plan[-1] if plan else None
        if (
            last is not None
            and last.table == reg.table
            and reg.address == last.address + last.count
            and last.count + reg.words <= limit
        ):
            plan[-1] = PollRead(
                last.table, last.address, last.count + reg.words, (*last.registers, reg)
            )
        else:
            plan.append(PollRead(reg.table, reg.address, reg.words, (reg,)))
    return plan


def decode_block(read: PollRead, data: Sequence[int] | Sequence[bool]) -> dict[str, Physical]:
    """Decode one read's reply into {field: value} for every register it covered."""
    if len(data) < read.count:
        raise MapCodecError(
            f"short reply: {len(data)} of {read.count} {read.table} values from {read.address}"
        )
    values: dict[str, Physical] = {}
    for reg in read.registers:
        start = reg.address - read.address
        target = reg.target or reg.name
        if reg.type == "bool":
            values[target] = decode_bit(reg, data[start])
        else:
            values[target] = decode(reg, [int(w) for w in data[start : start + reg.words]])
    return values


def build_reading(
    profile: ModbusGenericProfile, values: Mapping[str, Physical], received_mono_s: float
) -> UltrasoundReading:
    """One poll's decoded values as a reading; ERA/BNR from the profile if the unit has none."""
    merged: dict[str, Physical] = {"era_cm2": profile.era_cm2, "bnr": profile.bnr, **values}

    def number(name: str) -> float:
        value = merged.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MapCodecError(f"poll gave no number for {name}: {value!r}")
        return round(value) if name in INT_FIELDS else float(value)

    def flag(name: str) -> bool:
        value = merged.get(name)
        if not isinstance(value, bool):
            raise MapCodecError(f"poll gave no true/false for {name}: {value!r}")
        return value

    state, fault = merged.get("state"), merged.get("fault")
    if not isinstance(state, str) or not (fault is None or isinstance(fault, str)):
        raise MapCodecError(f"poll gave no state/fault name: {state!r}, {fault!r}")
    return UltrasoundReading(
        received_mono_s=received_mono_s,
        state=state,
        fault=fault,
        output_active=flag("output_active"),
        frequency_khz=int(number("frequency_khz")),
        intensity_setpoint_w_cm2=number("intensity_setpoint_w_cm2"),
        duty_pct=int(number("duty_pct")),
        time_s=int(number("time_s")),
        watchdog_ms=int(number("watchdog_ms")),
        intensity_measured_w_cm2=number("intensity_measured_w_cm2"),
        power_measured_w=number("power_measured_w"),
        head_temperature_c=number("head_temperature_c"),
        coupling_pct=int(number("coupling_pct")),
        remaining_s=int(number("remaining_s")),
        era_cm2=number("era_cm2"),
        bnr=number("bnr"),
        emission_s=int(number("emission_s")),
        energy_j=int(number("energy_j")),
        boot_count=int(number("boot_count")),
        patient_stop_pressed=flag("patient_stop_pressed"),
        head_coupled=flag("head_coupled"),
        head_connected=flag("head_connected"),
    )


# ---- writes ----


def settings_words(
    profile: ModbusGenericProfile, settings: UltrasoundSettings
) -> list[tuple[ModbusRegister, list[int]]]:
    """Each setpoint register with the words for `settings` (raises before anything is sent)."""
    physical = {
        "frequency_khz": float(settings.frequency_khz),
        "intensity_setpoint_w_cm2": settings.intensity_w_cm2,
        "duty_pct": float(settings.duty_pct),
        "time_s": float(settings.time_s),
    }
    out = []
    for field, value in physical.items():
        reg = profile.by_field(field)
        assert reg is not None  # the profile's load checks require every setpoint
        out.append((reg, encode(reg, value)))
    return out


def write_blocks(words: Iterable[tuple[ModbusRegister, list[int]]]) -> list[WriteBlock]:
    """Holding-register writes merged into as few contiguous blocks as possible, by address."""
    blocks: list[WriteBlock] = []
    for reg, values in sorted(words, key=lambda item: item[0].address):
        last = blocks[-1] if blocks else None
        if last is not None and reg.address == last.address + len(last.values):
            blocks[-1] = WriteBlock(last.address, (*last.values, *values))
        else:
            blocks.append(WriteBlock(reg.address, tuple(values)))
    return blocks
