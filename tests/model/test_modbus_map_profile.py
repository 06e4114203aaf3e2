"""Register-map profiles (`modbus_generic`): the bundled ones load; each kind of bad map is refused
at load time with one line naming the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionconsole.model.paths import config_dir
from sessionconsole.model.validation import validate_profile_file

PROFILES = config_dir() / "profiles"
US1 = (PROFILES / "us1-generic.toml").read_text()
VENDOR_B = (PROFILES / "vendor-b-ultrasound.toml").read_text()


def problems(tmp_path: Path, text: str, old: str, new: str) -> tuple[Path, list[str]]:
    """Write `text` with `old` replaced once by `new`; return the file and its problem lines."""
    assert old in text, old
    path = tmp_path / "map.toml"
    path.write_text(text.replace(old, new, 1))
    return path, validate_profile_file(path)


def only_line(path: Path, lines: list[str]) -> str:
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: ")
    return lines[0].removeprefix(f"{path}: ")


@pytest.mark.parametrize("name", ["us1-generic.toml", "vendor-b-ultrasound.toml"])
def test_bundled_maps_are_valid(name: str) -> None:
    assert validate_profile_file(PROFILES / name) == []


def test_overlapping_registers(tmp_path: Path) -> None:
    # The boot counter moved onto the second word of the 32-bit energy register (10..11).
    path, lines = problems(tmp_path, US1, "address = 12\n", "address = 11\n")
    assert only_line(path, lines) == (
        "registers.18.address = 11: overlaps registers.17 'energy' (input 10..11)"
    )


def test_count_that_does_not_fit_the_type(tmp_path: Path) -> None:
    path, lines = problems(
        tmp_path,
        VENDOR_B,
        'type = "f32"\nword_order = "little"   #',
        'type = "f32"\ncount = 1\nword_order = "little"   #',
    )
    assert only_line(path, lines) == (
        "registers.4.count = 1: does not fit type f32, which takes 2 register(s)"
    )


def test_bool_type_in_a_register_table(tmp_path: Path) -> None:
    path, lines = problems(
        tmp_path, VENDOR_B, 'address = 1016\ntype = "u16"', 'address = 1016\ntype = "bool"'
    )
    assert only_line(path, lines) == (
        "registers.12.type = 'bool': bool is for coil/discrete tables; a holding register is 16-bit"
    )


def test_unknown_role(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, US1, 'role = "heartbeat"', 'role = "keepalive"')
    line = only_line(path, lines)
    assert line.startswith("registers.5.role = 'keepalive': Input should be 'setpoint', ")


def test_unknown_field(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, US1, 'field = "coupling_pct"', 'field = "coupling"')
    line = only_line(path, lines)
    assert line.startswith("registers.11.field = 'coupling': Input should be 'frequency_khz', ")


def test_field_of_another_role(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, US1, 'field = "coupling_pct"', 'field = "duty_pct"')
    line = only_line(path, lines)
    assert line.startswith(
        "registers.11.field = 'duty_pct': not a field of role measured; allowed: "
    )


def test_command_map_without_stop(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, US1, "start = 1, stop = 2, ", "start = 1, ")
    assert only_line(path, lines) == (
        "registers.6.values = ['none', 'pause', 'reset_fault', 'resume', 'start']: no code for stop"
    )


def test_state_map_without_running(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, VENDOR_B, "RUNNING = 0x20, ", "")
    assert only_line(path, lines) == (
        "registers.2.values = ['DONE', 'FAULT', 'IDLE', 'PAUSED', 'SUSPENDED']: no code for RUNNING"
    )


def test_unknown_state_name(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, VENDOR_B, "DONE = 0x40", "FINISHED = 0x40")
    assert only_line(path, lines) == (
        "registers.2.values.FINISHED = 'FINISHED': unknown; "
        "allowed: IDLE, RUNNING, PAUSED, SUSPENDED, FAULT, DONE"
    )


def test_enumerated_setpoint_missing_a_value_the_console_may_send(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, VENDOR_B, '"20" = 2, ', "")
    assert only_line(path, lines) == (
        "registers.18.values = ['10', '100', '50']: no code for duty_pct = 20"
    )


def test_two_meanings_sharing_a_code(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, VENDOR_B, "PAUSED = 0x30", "PAUSED = 0x20")
    assert only_line(path, lines) == ("registers.2.values = 32: code 32 is used by RUNNING, PAUSED")


def test_setpoint_range_narrower_than_the_profile_limits(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, US1, "max = 3.0", "max = 1.5")
    assert only_line(path, lines) == (
        "registers.1.max = 1.5: intensity_setpoint_w_cm2 must be writable at 2 (the profile's "
        "limits allow it) but the register takes 0..1.5"
    )


def test_missing_heartbeat_role(tmp_path: Path) -> None:
    path, lines = problems(
        tmp_path,
        US1,
        'access = "w"\nrole = "heartbeat"',
        'access = "rw"\nrole = "measured"\nfield = "emission_s"',
    )
    assert lines == [
        f"{path}: registers = 'heartbeat': exactly one heartbeat register: missing",
        f"{path}: registers.16.field = 'emission_s': registers.5 already feeds it",
    ]


def test_missing_command_role(tmp_path: Path) -> None:
    start = VENDOR_B.index('[[registers]]\nname = "command"')
    path = tmp_path / "map.toml"
    path.write_text(VENDOR_B[:start])
    assert validate_profile_file(path) == [
        f"{path}: registers = 'command': exactly one command register: missing"
    ]


def test_missing_reading_field_and_era_from_nowhere(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, VENDOR_B, "era_cm2 = 5.0 ", "# no era ")
    assert only_line(path, lines) == (
        "registers = 'era_cm2': the ultrasound class needs a register for it "
        "(or give era_cm2 in the profile)"
    )


def test_write_to_a_read_only_table(tmp_path: Path) -> None:
    path, lines = problems(
        tmp_path,
        US1,
        'table = "input"\naddress = 4\ntype = "u16"',
        'table = "input"\naddress = 4\ntype = "u16"\naccess = "rw"',
    )
    assert only_line(path, lines) == "registers.11.access = 'rw': the input table is read-only"


def test_setpoint_that_cannot_be_read_back(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, US1, 'unit = "s"\naccess = "rw"', 'unit = "s"\naccess = "w"')
    assert only_line(path, lines) == "registers.3.access = 'w': a setpoint register must be rw"


def test_word_order_on_a_16_bit_register(tmp_path: Path) -> None:
    path, lines = problems(
        tmp_path,
        US1,
        'name = "coupling"\ntable = "input"',
        'name = "coupling"\nword_order = "little"\ntable = "input"',
    )
    assert only_line(path, lines) == (
        "registers.11.word_order = 'little': applies to 32-bit types only, not u16"
    )


def test_identity_check_naming_no_register(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, US1, 'register_name = "model_code"', 'register_name = "model"')
    assert only_line(path, lines) == "identity.register_name = 'model': no register of that name"
