"""Profiles for Modbus units described by a register map (`kind = "modbus_generic"`), not code.

Biomedical staff add a unit by writing its map: each register says where it is (table, address),
how its words read (type, word order, scale, offset, unit), what the console may write (access,
min/max, value codes) and what it means (`role`, `field`). A map that cannot be driven safely is
refused at load time, one problem per line, naming the field and the reason; nothing is dropped.

Roles:
- `setpoint`  a setting the console writes and reads back (frequency_khz, intensity_setpoint_w_cm2,
  duty_pct, time_s); a write is confirmed when a poll reads the value back, so it must be rw.
- `measured`  a value the unit reports, feeding one `UltrasoundReading` field.
- `state`, `fault`  coded registers; `values` maps console names to the unit's codes.
- `command`  where start/stop/pause/resume/reset_fault codes are written.
- `heartbeat`, `watchdog`  the watchdog feed register and its timeout (ms, read back).
- `identity`  (added role) model code or serial number: read when connecting and shown by
  `devices probe`, but not part of a reading, so it fits none of the roles above.

Value maps read `meaning = code`: `IDLE = 0` (state), `none = 0` (fault), `stop = 2` (command),
`"3000" = 3` (an enumerated setpoint: physical value = code). Rules chosen for coded registers:
the state map has IDLE and RUNNING, the fault map has `none`, the command map has start and stop;
an enumerated setpoint has a code for every value the console may send (frequency 1000 and 3000
kHz, duty 10, 20, 50 and 100 %); intensity and time are continuous, so they cannot be
enumerated, and their register's min/max must hold 0..limits.max_intensity_w_cm2 and
1..limits.max_time_s. Every `UltrasoundReading` field must come from a register (no invented
defaults in a safety console), except ERA and BNR, which may come from the profile instead.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from sessionconsole.model.profile import ModbusLink, UltrasoundProfileLimits
from sessionconsole.model.settings import UltrasoundDutyPct, UltrasoundFrequencyKhz
from sessionconsole.model.timing import check_heartbeat_inside_watchdog

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal["u16", "i16", "u32", "i32", "f32", "bool"]
Access = Literal["r", "rw", "w"]
Role = Literal[
    "setpoint", "measured", "state", "fault", "heartbeat", "command", "watchdog", "identity"
]
FieldName = Literal[
    "frequency_khz",
    "intensity_setpoint_w_cm2",
    "duty_pct",
    "time_s",
    "intensity_measured_w_cm2",
    "power_measured_w",
    "head_temperature_c",
    "coupling_pct",
    "remaining_s",
    "emission_s",
    "energy_j",
    "boot_count",
    "era_cm2",
    "bnr",
    "output_active",
    "patient_stop_pressed",
    "head_coupled",
    "head_connected",
    "state",
    "fault",
    "watchdog_ms",
    "model_code",
    "serial_number",
]

MAP_ERROR = "modbus_map"
WORDS: dict[str, int] = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "f32": 2, "bool": 1}
RAW_RANGE: dict[str, tuple[float, float]] = {
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "i32": (-0x80000000, 0x7FFFFFFF),
    "f32": (-3.4028234663852886e38, 3.4028234663852886e38),
    "bool": (0, 1),
}
INTEGER_TYPES = frozenset({"u16", "i16", "u32", "i32"})
REGISTER_TABLES = frozenset({"holding", "input"})
READ_ONLY_TABLES = frozenset({"input", "discrete"})

SETPOINT_FIELDS = ("frequency_khz", "intensity_setpoint_w_cm2", "duty_pct", "time_s")
BOOL_FIELDS = frozenset({"output_active", "patient_stop_pressed", "head_coupled", "head_connected"})
MEASURED_FIELDS = (
    "intensity_measured_w_cm2",
    "power_measured_w",
    "head_temperature_c",
    "coupling_pct",
    "remaining_s",
    "emission_s",
    "energy_j",
    "boot_count",
    "era_cm2",
    "bnr",
    *sorted(BOOL_FIELDS),
)
FROM_PROFILE_IF_UNMAPPED = frozenset({"era_cm2", "bnr"})
IDENTITY_FIELDS = ("model_code", "serial_number")
FIELDS_OF_ROLE: dict[str, tuple[str, ...]] = {
    "setpoint": SETPOINT_FIELDS,
    "measured": MEASURED_FIELDS,
    "identity": IDENTITY_FIELDS,
    "state": ("state",),
    "fault": ("fault",),
    "watchdog": ("watchdog_ms",),
    "heartbeat": (),
    "command": (),
}
ACCESS_OF_ROLE: dict[str, frozenset[str]] = {
    "setpoint": frozenset({"rw"}),
    "watchdog": frozenset({"rw"}),
    "command": frozenset({"w", "rw"}),
    "heartbeat": frozenset({"w", "rw"}),
    "measured": frozenset({"r", "rw"}),
    "state": frozenset({"r", "rw"}),
    "fault": frozenset({"r", "rw"}),
    "identity": frozenset({"r", "rw"}),
}
SINGLE_ROLES = ("state", "fault", "command", "heartbeat", "watchdog")
CODED_ROLES = frozenset({"state", "fault", "command"})
CONSOLE_STATES = ("IDLE", "RUNNING", "PAUSED", "SUSPENDED", "FAULT", "DONE")
COMMANDS = ("none", "start", "stop", "pause", "resume", "reset_fault")
ENUM_SETPOINT_VALUES: dict[str, tuple[int, ...]] = {
    "frequency_khz": get_args(UltrasoundFrequencyKhz),
    "duty_pct": get_args(UltrasoundDutyPct),
}


class Problem(NamedTuple):
    """One thing wrong with a map: where (dotted path), the value found, and why it is wrong."""

    where: str
    value: Any
    reason: str


def map_error(problems: list[Problem]) -> PydanticCustomError:
    """Many problems as one pydantic error; `validation.py` prints them one line each."""
    summary = "; ".join(f"{p.where}: {p.reason}" for p in problems)
    return PydanticCustomError(MAP_ERROR, "{summary}", {"summary": summary, "problems": problems})


def words_of(register_type: str) -> int:
    """How many 16-bit registers a value of this type takes."""
    return WORDS[register_type]


class ModbusRegister(BaseModel):
    """One register (or coil/discrete input) of a unit's map: where, how it reads, what it means."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    table: Table
    address: int = Field(ge=0, le=0xFFFF)
    type: RegisterType
    count: int | None = Field(default=None, ge=1, description="registers taken; checked vs type")
    word_order: Literal["big", "little"] | None = Field(
        default=None, description="32-bit types: big = high word first (default), little = low"
    )
    scale: float = Field(default=1.0, description="physical = raw * scale + offset")
    offset: float = 0.0
    unit: str = ""
    access: Access = "r"
    min: float | None = Field(default=None, description="lowest physical value the console writes")
    max: float | None = Field(default=None, description="highest physical value the console writes")
    role: Role
    field: FieldName | None = None
    values: dict[str, int] | None = Field(default=None, description="meaning = code")

    @property
    def words(self) -> int:
        """Registers taken (1 for 16-bit types and bits, 2 for 32-bit types)."""
        return words_of(self.type)

    @property
    def order(self) -> Literal["big", "little"]:
        """Word order of a 32-bit value (big when not given)."""
        return self.word_order or "big"

    @property
    def target(self) -> str | None:
        """The reading/settings field this register feeds (implied for state, fault, watchdog)."""
        implied = FIELDS_OF_ROLE[self.role]
        return self.field if self.field is not None else (implied[0] if len(implied) == 1 else None)

    @property
    def readable(self) -> bool:
        """Whether a poll reads it (command and heartbeat registers are only written)."""
        return self.access != "w" and self.role not in ("command", "heartbeat")

    @property
    def end(self) -> int:
        """Last address taken."""
        return self.address + self.words - 1

    def physical_range(self) -> tuple[float, float]:
        """Lowest and highest physical value the register's raw range can hold."""
        low, high = RAW_RANGE[self.type]
        ends = (low * self.scale + self.offset, high * self.scale + self.offset)
        return min(ends), max(ends)

    def write_range(self) -> tuple[float, float]:
        """min/max if given, else what the type holds."""
        low, high = self.physical_range()
        return (low if self.min is None else self.min, high if self.max is None else self.max)

    @model_validator(mode="after")
    def _check(self) -> ModbusRegister:
        problems = _register_problems(self)
        if problems:
            raise map_error(problems)
        return self


def _register_problems(reg: ModbusRegister) -> list[Problem]:
    """Everything a single register can get wrong on its own."""
    problems: list[Problem] = []

    def bad(field: str, value: Any, reason: str) -> None:
        problems.append(Problem(field, value, reason))

    bit_table = reg.table not in REGISTER_TABLES
    if bit_table and reg.type != "bool":
        bad("type", reg.type, f"a {reg.table} holds one bit: type must be bool")
    if not bit_table and reg.type == "bool":
        bad("type", reg.type, f"bool is for coil/discrete tables; a {reg.table} register is 16-bit")
    if reg.count is not None and reg.count != reg.words:
        bad(
            "count", reg.count, f"does not fit type {reg.type}, which takes {reg.words} register(s)"
        )
    if reg.word_order is not None and reg.words != 2:
        bad("word_order", reg.word_order, f"applies to 32-bit types only, not {reg.type}")
    if reg.access != "r" and reg.table in READ_ONLY_TABLES:
        bad("access", reg.access, f"the {reg.table} table is read-only")
    elif reg.access != "r" and reg.table == "coil":
        bad("access", reg.access, "writing coils is not supported: no writable role takes a bit")
    if reg.access not in ACCESS_OF_ROLE[reg.role]:
        allowed = " or ".join(sorted(ACCESS_OF_ROLE[reg.role]))
        bad("access", reg.access, f"a {reg.role} register must be {allowed}")
    fields = FIELDS_OF_ROLE[reg.role]
    if reg.field is None and len(fields) > 1:
        bad("field", None, f"a {reg.role} register needs a field: one of {', '.join(fields)}")
    elif reg.field is not None and reg.field not in fields:
        allowed = ", ".join(fields) if fields else "none (leave it out)"
        bad("field", reg.field, f"not a field of role {reg.role}; allowed: {allowed}")
    if reg.target in BOOL_FIELDS and reg.type not in ("bool", "u16"):
        bad("type", reg.type, f"{reg.target} is true/false: use bool, or u16 holding 0/1")
    elif reg.target not in BOOL_FIELDS and reg.type == "bool":
        bad("type", reg.type, f"a bit cannot feed {reg.target or reg.role}, which is not a bool")
    if reg.role in CODED_ROLES | {"heartbeat", "watchdog", "identity"} and reg.type not in (
        INTEGER_TYPES
    ):
        bad("type", reg.type, f"a {reg.role} register must be an integer type")
    if reg.scale == 0 or not math.isfinite(reg.scale) or not math.isfinite(reg.offset):
        bad("scale", reg.scale, "scale must be finite and non-zero, offset finite")
    elif reg.min is not None and reg.max is not None and reg.min > reg.max:
        bad("min", reg.min, f"greater than max {reg.max}")
    else:
        low, high = reg.physical_range()
        for name, limit in (("min", reg.min), ("max", reg.max)):
            if limit is not None and not low <= limit <= high:
                bad(name, limit, f"{reg.type} with this scale/offset holds {low:g}..{high:g}")
    problems.extend(_value_map_problems(reg))
    return problems


def _value_map_problems(reg: ModbusRegister) -> list[Problem]:
    """Codes fit the type, are unique, and sit only on coded or enumerated registers."""
    if reg.values is None:
        if reg.role in CODED_ROLES:
            return [Problem("values", None, f"a {reg.role} register needs a value map")]
        return []
    if reg.role not in CODED_ROLES and reg.role != "setpoint":
        return [Problem("values", reg.values, f"a {reg.role} register takes no value map")]
    problems = []
    low, high = RAW_RANGE[reg.type]
    for meaning, code in reg.values.items():
        if not low <= code <= high:
            problems.append(Problem(f"values.{meaning}", code, f"code does not fit {reg.type}"))
    for code, n in Counter(reg.values.values()).items():
        if n > 1:
            names = ", ".join(m for m, c in reg.values.items() if c == code)
            problems.append(Problem("values", code, f"code {code} is used by {names}"))
    return problems


class IdentityCheck(BaseModel):
    """Which identity register to read when connecting, and the value the profiled unit shows."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    register_name: str = Field(min_length=1)
    expected: int


class ModbusGenericProfile(BaseModel):
    """A Modbus unit driven from its register map (`drivers/generic_modbus.py`)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["modbus_generic"]
    name: str = Field(min_length=1)
    device_class: Literal["ultrasound"] = "ultrasound"
    link: ModbusLink
    watchdog_ms: int = Field(default=1000, ge=100, le=60000)
    heartbeat_interval_ms: int = Field(default=100, ge=20, le=2500)
    limits: UltrasoundProfileLimits
    identity: IdentityCheck | None = None
    era_cm2: float | None = Field(default=None, gt=0.0, le=20.0, description="if not reported")
    bnr: float | None = Field(default=None, ge=1.0, le=8.0, description="if not reported")
    registers: list[ModbusRegister] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_map(self) -> ModbusGenericProfile:
        check_heartbeat_inside_watchdog(self.heartbeat_interval_ms, self.watchdog_ms)
        problems = map_problems(self)
        if problems:
            raise map_error(problems)
        return self

    def register(self, name: str) -> ModbusRegister:
        """The register called `name` (KeyError if none)."""
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(name)

    def by_role(self, role: str) -> ModbusRegister:
        """The one register of a single role (state, fault, command, heartbeat, watchdog)."""
        return next(reg for reg in self.registers if reg.role == role)

    def by_field(self, field: str) -> ModbusRegister | None:
        """The register feeding `field`, if any."""
        return next((reg for reg in self.registers if reg.target == field), None)


def map_problems(profile: ModbusGenericProfile) -> list[Problem]:
    """Everything wrong with the map as a whole: overlaps, roles, fields, codes, ranges."""
    where = {id(reg): f"registers.{i}" for i, reg in enumerate(profile.registers)}
    problems = _overlaps(profile.registers, where)
    names = Counter(reg.name for reg in profile.registers)
    for reg in profile.registers:
        if names[reg.name] > 1:
            problems.append(Problem(f"{where[id(reg)]}.name", reg.name, "name used twice"))
    problems += _role_problems(profile, where)
    problems += _code_problems(profile, where)
    problems += _range_problems(profile, where)
    if profile.identity is not None:
        problems += _identity_problems(profile)
    return problems


def _overlaps(registers: list[ModbusRegister], where: dict[int, str]) -> list[Problem]:
    """Registers of one table whose address ranges meet (a 32-bit type takes two)."""
    problems = []
    for i, reg in enumerate(registers):
        for other in registers[:i]:
            if reg.table == other.table and reg.address <= other.end and other.address <= reg.end:
                span = f"{other.address}..{other.end}" if other.words > 1 else str(other.address)
                problems.append(
                    Problem(
                        f"{where[id(reg)]}.address",
                        reg.address,
                        f"overlaps {where[id(other)]} '{other.name}' ({other.table} {span})",
                    )
                )
    return problems


def _role_problems(profile: ModbusGenericProfile, where: dict[int, str]) -> list[Problem]:
    """Each single role once, each field fed once, every reading field fed."""
    problems = []
    roles = Counter[str](reg.role for reg in profile.registers)
    for role in SINGLE_ROLES:
        if roles[role] != 1:
            found = "missing" if roles[role] == 0 else f"{roles[role]} registers have it"
            problems.append(Problem("registers", role, f"exactly one {role} register: {found}"))
    fed: dict[str, ModbusRegister] = {}
    for reg in profile.registers:
        target = reg.target
        if target is None:
            continue
        if target in fed:
            first = where[id(fed[target])]
            problems.append(Problem(f"{where[id(reg)]}.field", target, f"{first} already feeds it"))
        fed.setdefault(target, reg)
    for field in (*SETPOINT_FIELDS, *MEASURED_FIELDS):
        if field in fed:
            continue
        if field in FROM_PROFILE_IF_UNMAPPED and getattr(profile, field) is not None:
            continue
        hint = f" (or give {field} in the profile)" if field in FROM_PROFILE_IF_UNMAPPED else ""
        problems.append(
            Problem("registers", field, f"the ultrasound class needs a register for it{hint}")
        )
    return problems


def _code_problems(profile: ModbusGenericProfile, where: dict[int, str]) -> list[Problem]:
    """State, fault and command maps name known things and have the codes the driver needs."""
    problems = []
    for reg in profile.registers:
        if reg.values is None:
            continue
        at = f"{where[id(reg)]}.values"
        known: tuple[str, ...]
        needed: tuple[str, ...]
        if reg.role == "state":
            known, needed = CONSOLE_STATES, ("IDLE", "RUNNING")
        elif reg.role == "command":
            known, needed = COMMANDS, ("start", "stop")
        elif reg.role == "fault":
            known, needed = (), ("none",)
        else:
            continue
        for meaning in reg.values:
            if known and meaning not in known:
                problems.append(
                    Problem(f"{at}.{meaning}", meaning, f"unknown; allowed: {', '.join(known)}")
                )
            elif not known and meaning != "none" and not meaning.replace("_", "").isupper():
                problems.append(
                    Problem(f"{at}.{meaning}", meaning, "fault names are UPPER_CASE, or none")
                )
        missing = [m for m in needed if m not in reg.values]
        if missing:
            problems.append(Problem(at, sorted(reg.values), f"no code for {', '.join(missing)}"))
    return problems


def _range_problems(profile: ModbusGenericProfile, where: dict[int, str]) -> list[Problem]:
    """Every value the console may write has a code or fits the register's min/max."""
    problems = []
    wanted: dict[str, tuple[float, ...]] = {
        **{k: tuple(float(v) for v in vals) for k, vals in ENUM_SETPOINT_VALUES.items()},
        "intensity_setpoint_w_cm2": (0.0, profile.limits.max_intensity_w_cm2),
        "time_s": (1.0, float(profile.limits.max_time_s)),
        "watchdog_ms": (float(profile.watchdog_ms),),
    }
    for reg in profile.registers:
        target = reg.target
        if target not in wanted or reg.role not in ("setpoint", "watchdog"):
            continue
        at = where[id(reg)]
        if reg.values is not None:
            if target not in ENUM_SETPOINT_VALUES:
                problems.append(
                    Problem(f"{at}.values", sorted(reg.values), f"{target} is continuous")
                )
                continue
            problems += _enum_problems(reg, at, wanted[target])
            continue
        low, high = reg.write_range()
        outside = [v for v in wanted[target] if not low <= v <= high]
        if outside:
            problems.append(
                Problem(
                    f"{at}.max" if reg.max is not None else f"{at}.type",
                    reg.max,
                    f"{target} must be writable at {', '.join(f'{v:g}' for v in outside)} "
                    f"(the profile's limits allow it) but the register takes {low:g}..{high:g}",
                )
            )
    return problems


def _enum_problems(reg: ModbusRegister, at: str, wanted: tuple[float, ...]) -> list[Problem]:
    """An enumerated setpoint: numeric keys, and a code for every value the console sends."""
    problems = []
    physical = set()
    for key in reg.values or {}:
        try:
            physical.add(float(key))
        except ValueError:
            problems.append(Problem(f"{at}.values.{key}", key, "key must be a physical value"))
    missing = [v for v in wanted if v not in physical]
    if missing:
        problems.append(
            Problem(
                f"{at}.values",
                sorted(reg.values or {}),
                f"no code for {reg.target} = {', '.join(f'{v:g}' for v in missing)}",
            )
        )
    return problems


def _identity_problems(profile: ModbusGenericProfile) -> list[Problem]:
    """The identity check names an identity register, and its value fits that register."""
    assert profile.identity is not None
    name = profile.identity.register_name
    reg = next((r for r in profile.registers if r.name == name), None)
    if reg is None:
        return [Problem("identity.register_name", name, "no register of that name")]
    if reg.role != "identity":
        return [Problem("identity.register_name", name, f"role is {reg.role}, not identity")]
    low, high = reg.physical_range()
    if not low <= profile.identity.expected <= high:
        return [Problem("identity.expected", profile.identity.expected, f"{reg.type} cannot hold")]
    return []
