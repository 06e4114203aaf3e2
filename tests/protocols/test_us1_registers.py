"""US-1 register map: decoding a poll from the ICD's tables, and from arbitrary registers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.protocols.us1 import (
    MODEL_CODE,
    Us1DecodeError,
    decode_identity,
    decode_reading,
    encode_settings,
)

HOLDING = [1000, 150, 50, 100, 300, 1000, 7, 0]
INPUTS = [1, 740, 148, 365, 88, 250, 0, 50, 42, 12, 0x0001, 0x2345, 3, MODEL_CODE, 0x0140, 0x6F41]
DISCRETE = [False, True, True, True]


def test_a_poll_decodes_with_units_and_32_bit_values_high_word_first() -> None:
    r = decode_reading(HOLDING, INPUTS, DISCRETE, 12.5)
    assert (r.state, r.fault, r.output_active, r.running) == ("RUNNING", None, True, True)
    assert (r.frequency_khz, r.intensity_setpoint_w_cm2, r.duty_pct, r.time_s) == (
        1000,
        1.5,
        50,
        300,
    )
    assert (r.power_measured_w, r.intensity_measured_w_cm2) == (7.4, 1.48)
    assert (r.head_temperature_c, r.coupling_pct, r.remaining_s) == (36.5, 88, 250)
    assert (r.era_cm2, r.bnr, r.emission_s, r.boot_count) == (5.0, 4.2, 12, 3)
    assert r.energy_j == 0x00012345 and r.received_mono_s == 12.5
    assert (r.patient_stop_pressed, r.head_coupled, r.head_connected) == (False, True, True)
    assert decode_identity(INPUTS) == (MODEL_CODE, 0x01406F41, 5.0, 4.2)


@pytest.mark.parametrize(("code", "name"), [(1, "OVERTEMP"), (3, "PATIENT_STOP"), (6, "INTERNAL")])
def test_fault_codes_by_name(code: int, name: str) -> None:
    inputs = [4, *INPUTS[1:6], code, *INPUTS[7:]]
    r = decode_reading(HOLDING, inputs, DISCRETE, 0.0)
    assert (r.state, r.fault) == ("FAULT", name)


def test_unknown_codes_and_short_blocks_are_decode_errors() -> None:
    with pytest.raises(Us1DecodeError, match="unknown state code 9"):
        decode_reading(HOLDING, [9, *INPUTS[1:]], DISCRETE, 0.0)
    with pytest.raises(Us1DecodeError, match="unknown fault code 7"):
        decode_reading(HOLDING, [*INPUTS[:6], 7, *INPUTS[7:]], DISCRETE, 0.0)
    with pytest.raises(Us1DecodeError, match="short poll"):
        decode_reading(HOLDING[:7], INPUTS, DISCRETE, 0.0)


def test_settings_encode_to_the_configure_block() -> None:
    s = UltrasoundSettings(frequency_khz=3000, intensity_w_cm2=0.85, duty_pct=20, time_s=480)
    assert encode_settings(s) == [3000, 85, 20, 100, 480]


@given(
    st.lists(st.integers(0, 0xFFFF), max_size=10),
    st.lists(st.integers(0, 0xFFFF), max_size=18),
    st.lists(st.booleans(), max_size=5),
)
def test_arbitrary_registers_raise_only_the_decode_error(
    holding: list[int], inputs: list[int], discrete: list[bool]
) -> None:
    with contextlib.suppress(Us1DecodeError):
        decode_reading(holding, inputs, discrete, 0.0)
    with contextlib.suppress(Us1DecodeError):
        decode_identity(inputs)
