"""US-1 register map, enums and allowed values, transcribed from the ICD (version 2)."""

from __future__ import annotations

from enum import IntEnum


class State(IntEnum):
    """Device state, input register 0."""

    IDLE = 0
    RUNNING = 1
    PAUSED = 2
    SUSPENDED = 3
    FAULT = 4
    DONE = 5


class Fault(IntEnum):
    """Fault code, input register 6."""

    NONE = 0
    OVERTEMP = 1
    WATCHDOG = 2
    PATIENT_STOP = 3
    OUTPUT_DEVIATION = 4
    HEAD_DISCONNECTED = 5
    INTERNAL = 6


class Command(IntEnum):
    """Command register (holding 7) values."""

    NONE = 0
    START = 1
    STOP = 2
    PAUSE = 3
    RESUME = 4
    RESET_FAULT = 5


class ExcCode(IntEnum):
    """Modbus exception codes the model returns; the adapter maps them onto pymodbus."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_BUSY = 6


# Holding register addresses.
HR_FREQUENCY = 0
HR_INTENSITY = 1
HR_DUTY = 2
HR_PRR = 3
HR_TREATMENT_TIME = 4
HR_WATCHDOG_MS = 5
HR_HEARTBEAT = 6
HR_COMMAND = 7
HOLDING_COUNT = 8
INPUT_COUNT = 16
DISCRETE_COUNT = 4

HOLDING_DEFAULTS: tuple[int, ...] = (1000, 0, 100, 100, 300, 1000, 0, 0)
WRITABLE_WHILE_ACTIVE = frozenset({HR_INTENSITY, HR_WATCHDOG_MS, HR_HEARTBEAT, HR_COMMAND})
ACTIVE_STATES = frozenset({State.RUNNING, State.PAUSED, State.SUSPENDED})


def value_allowed(address: int, value: int) -> bool:
    """Return whether `value` is in the ICD's allowed set for holding register `address`."""
    if not 0 <= value <= 0xFFFF:
        return False
    if address == HR_FREQUENCY:
        return value in (1000, 3000)
    if address == HR_INTENSITY:
        return value <= 300
    if address == HR_DUTY:
        return value in (10, 20, 50, 100)
    if address == HR_PRR:
        return value in (16, 48, 100)
    if address == HR_TREATMENT_TIME:
        return 1 <= value <= 1800
    if address == HR_WATCHDOG_MS:
        return 100 <= value <= 5000
    if address == HR_HEARTBEAT:
        return True
    if address == HR_COMMAND:
        return value in tuple(Command)
    return False


MODEL_CODE = 0x5531
ERA_DECI_CM2 = 50  # 5.0 cm²
BNR_DECI = 42  # 4.2
SERIAL_NUMBER = 21_000_001
