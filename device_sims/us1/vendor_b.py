"""`--layout vendor-b`: the same simulated US-1 behind another vendor's register map.

Everything is in holding registers (function 3 to read, 6 and 16 to write); function codes 2
and 4 get exception 01. Unit id 7. 32-bit values put the LOW word first. Reading or writing an
address outside the two blocks below gets exception 02, so does writing the read-only block or
half of a 32-bit value; a value or code outside the allowed set gets exception 03. Writes keep
the ICD's rules otherwise (all or nothing, in address order, busy while running).

Read-only block (1000-1019):
| addr | name | type | unit / codes |
|---|---|---|---|
| 1000 | model code | u16 | 0x5642 ("VB") |
| 1001-1002 | serial number | u32, low word first | |
| 1003 | state | u16 | 0x10 IDLE, 0x20 RUNNING, 0x21 SUSPENDED, 0x30 PAUSED, 0x40 DONE, 0xE0 FAULT |
| 1004 | fault | u16 | 0 none, 11 OVERTEMP, 12 WATCHDOG, 13 PATIENT_STOP, |
|  |  |  | 14 OUTPUT_DEVIATION, 15 HEAD_DISCONNECTED, 19 INTERNAL |
| 1005-1006 | measured intensity | f32, low word first | W/cm² |
| 1007-1008 | measured power | f32, low word first | W |
| 1009 | head temperature | i16 | 0.1 °C |
| 1010 | coupling | u16 | % |
| 1011 | remaining time | u16 | s |
| 1012 | emission time | u16 | s |
| 1013-1014 | delivered energy | u32, low word first | J |
| 1015 | boot counter | u16 | |
| 1016 | output active | u16 | 0/1 |
| 1017 | head coupled | u16 | 0/1 |
| 1018 | head connected | u16 | 0/1 |
| 1019 | patient stop pressed | u16 | 0/1 |

Settings block (1100-1107, read/write):
| addr | name | type | unit / codes |
|---|---|---|---|
| 1100 | frequency | u16 code | 1 = 1000 kHz, 3 = 3000 kHz |
| 1101-1102 | intensity setpoint | f32, low word first | W/cm², 0-3.0 |
| 1103 | duty cycle | u16 code | 0 = 100 %, 1 = 50 %, 2 = 20 %, 3 = 10 % |
| 1104 | treatment time | u16 | s, 1-1800 |
| 1105 | watchdog timeout | u16 | ms, 100-5000 |
| 1106 | heartbeat | u16 | any; only writes feed the watchdog |
| 1107 | command | u16 | 0 none, 0x11 START, 0x22 STOP, 0x33 PAUSE, 0x44 RESUME, |
|  |  |  | 0x55 RESET_FAULT; reads 0 |

The unit reports no ERA or BNR: its profile states them. The pulse repetition rate is not
exposed (the unit keeps its boot value).
"""

from __future__ import annotations

import math
import struct

from .model import FC_READ_HOLDING, US1Model
from .registers import (
    HR_COMMAND,
    HR_DUTY,
    HR_FREQUENCY,
    HR_HEARTBEAT,
    HR_INTENSITY,
    HR_TREATMENT_TIME,
    HR_WATCHDOG_MS,
    Command,
    ExcCode,
    Fault,
    State,
)

DEVICE_ID = 7
MODEL_CODE = 0x5642
READ_BASE = 1000
READ_COUNT = 20
SETTINGS_BASE = 1100
SETTINGS_COUNT = 8
INTENSITY_LOW, INTENSITY_HIGH = 1101, 1102
MAX_INTENSITY_W_CM2 = 3.0

STATE_CODES = {
    State.IDLE: 0x10,
    State.RUNNING: 0x20,
    State.SUSPENDED: 0x21,
    State.PAUSED: 0x30,
    State.DONE: 0x40,
    State.FAULT: 0xE0,
}
FAULT_CODES = {
    Fault.NONE: 0,
    Fault.OVERTEMP: 11,
    Fault.WATCHDOG: 12,
    Fault.PATIENT_STOP: 13,
    Fault.OUTPUT_DEVIATION: 14,
    Fault.HEAD_DISCONNECTED: 15,
    Fault.INTERNAL: 19,
}
COMMAND_CODES = {
    Command.NONE: 0,
    Command.START: 0x11,
    Command.STOP: 0x22,
    Command.PAUSE: 0x33,
    Command.RESUME: 0x44,
    Command.RESET_FAULT: 0x55,
}
FREQUENCY_CODES = {1000: 1, 3000: 3}
DUTY_CODES = {100: 0, 50: 1, 20: 2, 10: 3}
# Vendor settings register -> ICD holding register (the intensity's two words map to one).
SETTINGS_TO_ICD = {
    1100: HR_FREQUENCY,
    1103: HR_DUTY,
    1104: HR_TREATMENT_TIME,
    1105: HR_WATCHDOG_MS,
    1106: HR_HEARTBEAT,
    1107: HR_COMMAND,
}


def low_first_u32(value: int) -> list[int]:
    """A 32-bit value as two registers, low word first."""
    value &= 0xFFFFFFFF
    return [value & 0xFFFF, value >> 16]


def low_first_f32(value: float) -> list[int]:
    """An IEEE 754 single as two registers, low word first."""
    return low_first_u32(int.from_bytes(struct.pack(">f", value), "big"))


def f32_from_low_first(low: int, high: int) -> float:
    """The single whose low word is `low` and high word `high`."""
    number: float = struct.unpack(">f", ((high << 16) | low).to_bytes(4, "big"))[0]
    return number


def invert(codes: dict[int, int]) -> dict[int, int]:
    """Code -> value from value -> code."""
    return {code: value for value, code in codes.items()}


class VendorBLayout:
    """The vendor-b map over a `US1Model`; see the module docstring for the table."""

    name = "vendor-b"
    device_id = DEVICE_ID

    def registers(self, model: US1Model) -> dict[int, int]:
        """Every readable vendor register, address -> value, as the unit shows them now."""
        inputs, bits = model.input_registers(), model.discrete_inputs()
        temp = max(-0x8000, min(0x7FFF, round(model.physics.head_temp_c * 10.0)))
        read_block = [
            MODEL_CODE,
            *low_first_u32(model.serial),
            STATE_CODES[model.state],
            FAULT_CODES[model.fault],
            *low_first_f32(model.measured_w_cm2),
            *low_first_f32(model.measured_power_w),
            temp & 0xFFFF,
            inputs[4],
            inputs[5],
            inputs[9],
            *low_first_u32((inputs[10] << 16) | inputs[11]),
            inputs[12],
            int(bits[3]),
            int(bits[1]),
            int(bits[2]),
            int(bits[0]),
        ]
        assert len(read_block) == READ_COUNT
        holding = model.holding
        settings = [
            FREQUENCY_CODES.get(holding[HR_FREQUENCY], 0),
            *low_first_f32(holding[HR_INTENSITY] / 100.0),
            DUTY_CODES.get(holding[HR_DUTY], 0),
            holding[HR_TREATMENT_TIME],
            holding[HR_WATCHDOG_MS],
            holding[HR_HEARTBEAT],
            0,  # the command register reads 0 once acted on, which is at once
        ]
        out = {READ_BASE + i: v for i, v in enumerate(read_block)}
        out.update({SETTINGS_BASE + i: v for i, v in enumerate(settings)})
        return out

    def read(
        self, model: US1Model, func_code: int, address: int, count: int, now: float
    ) -> list[int] | ExcCode:
        """FC 3 only; every address asked for must exist."""
        if func_code != FC_READ_HOLDING:
            return ExcCode.ILLEGAL_FUNCTION
        if count < 1:
            return ExcCode.ILLEGAL_VALUE
        model.advance(now)
        table = self.registers(model)
        wanted = range(address, address + count)
        if any(a not in table for a in wanted):
            return ExcCode.ILLEGAL_ADDRESS
        return [table[a] for a in wanted]

    def write(self, model: US1Model, address: int, values: list[int], now: float) -> ExcCode | None:
        """Translate a settings-block write to ICD registers and write them in one go."""
        wanted = range(address, address + len(values))
        if not values or any(
            not SETTINGS_BASE <= a < SETTINGS_BASE + SETTINGS_COUNT for a in wanted
        ):
            return ExcCode.ILLEGAL_ADDRESS
        vendor = dict(zip(wanted, values, strict=True))
        if (INTENSITY_LOW in vendor) != (INTENSITY_HIGH in vendor):
            return ExcCode.ILLEGAL_ADDRESS  # half of a 32-bit value
        icd = self._translate(vendor)
        if icd is None:
            return ExcCode.ILLEGAL_VALUE
        model.advance(now)
        first, last = min(icd), max(icd)
        block = [icd.get(a, model.holding[a]) for a in range(first, last + 1)]
        return model.write_holding(first, block, now)

    @staticmethod
    def _translate(vendor: dict[int, int]) -> dict[int, int] | None:
        """ICD register -> value for a vendor write; None when a value or code is not allowed."""
        icd: dict[int, int] = {}
        decoders = {
            1100: invert(FREQUENCY_CODES),
            1103: invert(DUTY_CODES),
            1107: {code: int(cmd) for cmd, code in COMMAND_CODES.items()},
        }
        for address, value in vendor.items():
            if address in (INTENSITY_LOW, INTENSITY_HIGH):
                continue
            table = decoders.get(address)
            if table is not None and value not in table:
                return None
            icd[SETTINGS_TO_ICD[address]] = table[value] if table is not None else value
        if INTENSITY_LOW in vendor:
            w_cm2 = f32_from_low_first(vendor[INTENSITY_LOW], vendor[INTENSITY_HIGH])
            if not math.isfinite(w_cm2) or not 0.0 <= w_cm2 <= MAX_INTENSITY_W_CM2:
                return None
            icd[HR_INTENSITY] = round(w_cm2 * 100.0)
        return icd


VENDOR_B = VendorBLayout()
