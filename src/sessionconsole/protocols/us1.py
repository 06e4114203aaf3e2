"""US-1 Modbus register map (ICD US-1 v2) as data, and pure encode/decode of register blocks.

No I/O here: the driver reads the blocks and hands them to `decode_reading`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.telemetry import UltrasoundReading

UNIT_ID: Final = 1
MODEL_CODE: Final = 0x5531

# Holding registers (read/write), protocol addresses.
HR_FREQUENCY: Final = 0
HR_INTENSITY: Final = 1
HR_DUTY: Final = 2
HR_PRR: Final = 3
HR_TIME: Final = 4
HR_WATCHDOG: Final = 5
HR_HEARTBEAT: Final = 6
HR_COMMAND: Final = 7
HR_COUNT: Final = 8

# Input registers (read only).
IR_COUNT: Final = 16
DI_COUNT: Final = 4

CMD_START: Final = 1
CMD_STOP: Final = 2
CMD_PAUSE: Final = 3
CMD_RESUME: Final = 4
CMD_RESET_FAULT: Final = 5

STATES: Final = ("IDLE", "RUNNING", "PAUSED", "SUSPENDED", "FAULT", "DONE")
FAULTS: Final = (
    None,
    "OVERTEMP",
    "WATCHDOG",
    "PATIENT_STOP",
    "OUTPUT_DEVIATION",
    "HEAD_DISCONNECTED",
    "INTERNAL",
)


class Us1DecodeError(ValueError):
    """A register block that does not fit the ICD (wrong length, unknown code)."""


def encode_settings(settings: UltrasoundSettings) -> list[int]:
    """Holding registers 0..4 for a configure write (function 16, all or nothing)."""
    return [
        settings.frequency_khz,
        round(settings.intensity_w_cm2 * 100),
        settings.duty_pct,
        100,  # pulse repetition rate: the ICD's default; ignored at 100 % duty
        settings.time_s,
    ]


def encode_intensity(intensity_w_cm2: float) -> int:
    """Holding register 1 value for an intensity in W/cm²."""
    return round(intensity_w_cm2 * 100)


def decode_reading(
    holding: Sequence[int],
    inputs: Sequence[int],
    discrete: Sequence[bool],
    received_mono_s: float,
) -> UltrasoundReading:
    """Turn the three register blocks of one poll into a reading with units."""
    if len(holding) < HR_COUNT or len(inputs) < IR_COUNT or len(discrete) < DI_COUNT:
        raise Us1DecodeError(
            f"short poll: {len(holding)} holding, {len(inputs)} input, {len(discrete)} discrete"
        )
    state_code, fault_code = inputs[0], inputs[6]
    if not 0 <= state_code < len(STATES):
        raise Us1DecodeError(f"unknown state code {state_code} in input register 0")
    if not 0 <= fault_code < len(FAULTS):
        raise Us1DecodeError(f"unknown fault code {fault_code} in input register 6")
    return UltrasoundReading(
        received_mono_s=received_mono_s,
        state=STATES[state_code],
        fault=FAULTS[fault_code],
        output_active=bool(discrete[3]),
        frequency_khz=holding[HR_FREQUENCY],
        intensity_setpoint_w_cm2=holding[HR_INTENSITY] / 100.0,
        duty_pct=holding[HR_DUTY],
        time_s=holding[HR_TIME],
        watchdog_ms=holding[HR_WATCHDOG],
        power_measured_w=inputs[1] / 100.0,
        intensity_measured_w_cm2=inputs[2] / 100.0,
        head_temperature_c=inputs[3] / 10.0,
        coupling_pct=inputs[4],
        remaining_s=inputs[5],
        era_cm2=inputs[7] / 10.0,
        bnr=inputs[8] / 10.0,
        emission_s=inputs[9],
        energy_j=(inputs[10] << 16) | inputs[11],
        boot_count=inputs[12],
        patient_stop_pressed=bool(discrete[0]),
        head_coupled=bool(discrete[1]),
        head_connected=bool(discrete[2]),
    )


def decode_identity(inputs: Sequence[int]) -> tuple[int, int, float, float]:
    """(model code, serial number, ERA cm², BNR) from input registers 0..15."""
    if len(inputs) < IR_COUNT:
        raise Us1DecodeError(f"short identity read: {len(inputs)} input registers")
    return inputs[13], (inputs[14] << 16) | inputs[15], inputs[7] / 10.0, inputs[8] / 10.0
