"""The register-map codec: words for values and back, value maps, range errors, poll plans."""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionconsole.model.modbus_map import ModbusRegister
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.protocols import modbus_map as codec
from tests.drivers.generic_profiles import bundled

INT_RANGES = {"u16": (0, 0xFFFF), "i16": (-0x8000, 0x7FFF), "u32": (0, 2**32 - 1)}
INT_RANGES["i32"] = (-(2**31), 2**31 - 1)


def reg(**fields: Any) -> ModbusRegister:
    base: dict[str, Any] = {
        "name": "r",
        "table": "holding",
        "address": 0,
        "type": "u16",
        "role": "measured",
        "field": "power_measured_w",
    }
    return ModbusRegister.model_validate(base | fields)


def test_scale_offset_and_signed_words() -> None:
    temp = reg(type="i16", scale=0.1, field="head_temperature_c")
    assert codec.decode(temp, [0xFFFF]) == pytest.approx(-0.1)
    assert codec.decode(temp, [412]) == pytest.approx(41.2)
    offset = reg(scale=0.5, offset=-20.0, access="rw", role="setpoint", field="time_s")
    assert codec.encode(offset, 10.0) == [60]
    assert codec.decode(offset, [60]) == 10.0


def test_word_order_of_32_bit_values() -> None:
    big = reg(type="u32", word_order="big", field="energy_j")
    little = reg(type="u32", word_order="little", field="energy_j")
    assert codec.raw_to_words("u32", "big", 0x12345678) == [0x1234, 0x5678]
    assert codec.decode(big, [0x1234, 0x5678]) == 0x12345678
    assert codec.decode(little, [0x5678, 0x1234]) == 0x12345678
    f = reg(type="f32", word_order="little")
    high, low = struct.unpack(">HH", struct.pack(">f", 1.5))
    assert codec.decode(f, [low, high]) == 1.5


def test_f32_reads_back_as_the_decimal_written() -> None:
    setpoint = reg(type="f32", access="rw", role="setpoint", field="intensity_setpoint_w_cm2")
    assert codec.readback(setpoint, 0.8) == 0.8  # not 0.800000011920929


def test_range_check_names_the_register_and_the_range() -> None:
    setpoint = reg(
        name="intensity", scale=0.01, min=0.0, max=3.0, access="rw", role="setpoint",
        field="intensity_setpoint_w_cm2", unit="W/cm²",
    )  # fmt: skip
    with pytest.raises(codec.OutOfRange, match=r"^intensity: 3.5 W/cm² is outside 0..3$"):
        codec.encode(setpoint, 3.5)
    with pytest.raises(codec.OutOfRange):
        codec.encode(setpoint, math.nan)


def test_value_maps_both_ways() -> None:
    duty = reg(
        name="duty", access="rw", role="setpoint", field="duty_pct",
        values={"100": 0, "50": 1, "20": 2, "10": 3},
    )  # fmt: skip
    assert codec.encode(duty, 20.0) == [2]
    assert codec.decode(duty, [3]) == 10.0
    with pytest.raises(codec.UnknownCode, match="duty: no code for 30"):
        codec.encode(duty, 30.0)
    fault = reg(name="fault", role="fault", field=None, values={"none": 0, "OVERTEMP": 11})
    assert codec.decode(fault, [0]) is None and codec.decode(fault, [11]) == "OVERTEMP"
    with pytest.raises(codec.UnknownCode, match="fault: unknown code 12"):
        codec.decode(fault, [12])
    command = reg(name="cmd", access="w", role="command", field=None, values={"stop": 0x22})
    assert codec.encode_code(command, "stop") == [0x22]
    with pytest.raises(codec.UnknownCode, match="no code for 'start'"):
        codec.encode_code(command, "start")


def test_zero_one_register_feeding_a_flag() -> None:
    flag = reg(field="output_active")
    assert codec.decode(flag, [1]) is True and codec.decode(flag, [0]) is False
    with pytest.raises(codec.MapCodecError, match="2 is not 0 or 1"):
        codec.decode(flag, [2])


def test_poll_plan_groups_contiguous_registers_per_table() -> None:
    plan = codec.plan_poll(bundled("us1-generic.toml", "127.0.0.1:502").registers)
    assert [(p.table, p.address, p.count) for p in plan] == [
        ("discrete", 0, 4),
        ("holding", 0, 3),  # holding 3 (pulse rate) is not mapped; 6 and 7 are write-only
        ("holding", 4, 2),
        ("input", 0, 16),
    ]
    vendor_b = codec.plan_poll(bundled("vendor-b-ultrasound.toml", "127.0.0.1:502").registers)
    assert [(p.table, p.address, p.count) for p in vendor_b] == [
        ("holding", 1000, 20),
        ("holding", 1100, 6),
    ]


def test_poll_plan_splits_at_125_registers() -> None:
    regs = [
        reg(name=f"r{i}", address=2 * i, type="u32", role="identity", field="model_code")
        for i in range(70)
    ]
    plan = codec.plan_poll(regs)
    assert [(p.address, p.count) for p in plan] == [(0, 124), (124, 16)]


def test_settings_become_one_write_per_contiguous_block() -> None:
    settings = UltrasoundSettings(frequency_khz=3000, intensity_w_cm2=0.8, duty_pct=20, time_s=120)
    us1 = bundled("us1-generic.toml", "127.0.0.1:502")
    blocks = codec.write_blocks(codec.settings_words(us1, settings))
    assert [(b.address, b.values) for b in blocks] == [(0, (3000, 80, 20)), (4, (120,))]
    vendor_b = bundled("vendor-b-ultrasound.toml", "127.0.0.1:502")
    (block,) = codec.write_blocks(codec.settings_words(vendor_b, settings))
    high, low = struct.unpack(">HH", struct.pack(">f", 0.8))
    assert (block.address, block.values) == (1100, (3, low, high, 2, 120))


def test_a_poll_builds_a_reading_with_era_from_the_profile() -> None:
    profile = bundled("vendor-b-ultrasound.toml", "127.0.0.1:502")
    plan = codec.plan_poll(profile.registers)
    first = [0x5642, 1, 0, 0x20, 0] + [0] * 4 + [0xFFEC, 90, 100, 5, 7, 0, 2, 1, 1, 1, 0]
    settings = [3, 0, 0, 2, 120, 1000]
    values = codec.decode_block(plan[0], first) | codec.decode_block(plan[1], settings)
    reading = codec.build_reading(profile, values, 12.5)
    assert (reading.state, reading.fault, reading.head_temperature_c) == ("RUNNING", None, -2.0)
    assert (reading.frequency_khz, reading.duty_pct, reading.energy_j) == (3000, 20, 7)
    assert (reading.era_cm2, reading.bnr, reading.output_active) == (5.0, 4.2, True)
    with pytest.raises(codec.MapCodecError, match="short reply: 5 of 6"):
        codec.decode_block(plan[1], settings[:5])


# ---- properties ----

ORDERS = st.sampled_from(["big", "little"])


@given(st.sampled_from(sorted(INT_RANGES)), ORDERS, st.data())
def test_integer_words_round_trip(register_type: str, order: str, data: st.DataObject) -> None:
    low, high = INT_RANGES[register_type]
    raw = data.draw(st.integers(low, high))
    words = codec.raw_to_words(register_type, order, raw)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert codec.words_to_raw(register_type, order, words) == raw


@given(ORDERS, st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_f32_words_round_trip(order: str, value: float) -> None:
    words = codec.raw_to_words("f32", order, value)
    decoded = codec.words_to_raw("f32", order, words)  # the shortest decimal of that single
    assert struct.pack(">f", decoded) == struct.pack(">f", value)
    assert codec.raw_to_words("f32", order, codec.words_to_raw("f32", order, words)) == words


@given(
    st.sampled_from(["u16", "i16", "u32", "i32", "f32"]),
    ORDERS,
    st.sampled_from([1.0, 0.1, 0.01, 0.5]),
    st.floats(-100.0, 100.0),
    st.floats(0.0, 600.0),
)
def test_encode_then_decode_gives_the_value_to_one_step(
    register_type: str, order: str, scale: float, offset: float, value: float
) -> None:
    word_order = order if register_type in ("u32", "i32", "f32") else None
    r = reg(type=register_type, word_order=word_order, scale=scale, offset=offset)
    low, high = r.physical_range()  # what the type holds, scaled and offset
    if not low <= value <= high:
        with pytest.raises(codec.OutOfRange):
            codec.encode(r, value)
        return
    decoded = codec.decode(r, codec.encode(r, value))
    assert isinstance(decoded, float)
    # integers: half a step; f32: the single's precision, relative to the raw (unscaled,
    # offset-free) number that is stored, i.e. to |value - offset|; below 1e-38 a single is 0
    step = (
        scale / 2 if register_type != "f32" else (abs(value - offset) + abs(value)) * 2.4e-7 + 2e-38
    )
    assert abs(decoded - value) <= step + 1e-9 * abs(value)


ANY_WORDS = st.lists(
    st.one_of(st.integers(-5, 0x1_0001), st.integers(), st.booleans(), st.none(), st.floats()),
    max_size=3,
)
CODED = reg(name="state", role="state", field=None, values={"IDLE": 0, "RUNNING": 1})


@given(
    st.sampled_from(["u16", "i16", "u32", "i32", "f32"]),
    ORDERS,
    st.sampled_from([None, 1]),
    ANY_WORDS,
)
def test_decoding_arbitrary_words_raises_only_the_codec_error(
    register_type: str, order: str, coded: int | None, words: list[Any]
) -> None:
    word_order = order if register_type in ("u32", "i32", "f32") else None
    r = (
        CODED
        if coded and register_type == "u16"
        else reg(type=register_type, word_order=word_order)
    )
    try:
        value = codec.decode(r, words)
    except codec.MapCodecError:
        return
    assert value is None or isinstance(value, float | int | str | bool)


NAN_AND_EDGE_WORDS = st.sampled_from([0x7FC0, 0x7F80, 0xFF80, 0x8000, 0, 1, 0xFFFF])


def register_words(reg: ModbusRegister, data: st.DataObject) -> list[int] | list[bool]:
    """What a unit might send for `reg`: mostly a mapped code for a coded register, so the
    reading gets built, else any words, NaN and infinite floats included."""
    if reg.type == "bool":
        return [data.draw(st.booleans())]
    if reg.values and data.draw(st.integers(0, 9)) > 0:
        code = data.draw(st.sampled_from(sorted(reg.values.values())))
        return list(codec.raw_to_words(reg.type, reg.word_order or "big", code))
    word = st.one_of(st.integers(0, 0xFFFF), NAN_AND_EDGE_WORDS)
    words: list[int] = data.draw(st.lists(word, min_size=reg.words, max_size=reg.words))
    return words


@pytest.mark.parametrize("profile_file", ["us1-generic.toml", "vendor-b-ultrasound.toml"])
@given(data=st.data())
def test_a_whole_poll_of_arbitrary_words_builds_a_reading_or_raises_the_codec_error(
    profile_file: str, data: st.DataObject
) -> None:
    # The driver's path for one poll: every block of the plan decoded, then the reading built.
    # Whatever the unit sends (NaN and infinite floats, unmapped codes, flags of any value),
    # nothing but MapCodecError escapes, and a reading that is built holds finite numbers.
    profile = bundled(profile_file, "127.0.0.1:502")
    values: dict[str, codec.Physical] = {}
    try:
        for read in codec.plan_poll(profile.registers):
            block: list[Any] = []
            for reg in read.registers:
                block.extend(register_words(reg, data))
            values.update(codec.decode_block(read, block))
        reading = codec.build_reading(profile, values, 0.0)
    except codec.MapCodecError:
        return
    numbers = [v for v in dataclasses.asdict(reading).values() if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers), reading
