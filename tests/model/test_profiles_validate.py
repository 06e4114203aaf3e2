"""`sessionconsole profiles validate`: one line per problem, exit 2 on any invalid file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionconsole.cli import main
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import load_room

GOOD = (config_dir() / "profiles" / "us1-tcp.toml").read_text()


def run(capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, list[str]]:
    code = main(["profiles", "validate", *map(str, files)])
    return code, capsys.readouterr().out.splitlines()


def variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    assert old in GOOD
    path = tmp_path / name
    path.write_text(GOOD.replace(old, new, 1))
    return path


def test_bundled_profiles_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted((config_dir() / "profiles").glob("*.toml"))
    code, lines = run(capsys, *files)
    assert code == 0 and lines == [f"{f}: OK" for f in files]


def test_wrong_type_names_file_field_value_and_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = variant(tmp_path, "type.toml", "era_cm2 = 5.0", 'era_cm2 = "5.0"')
    code, lines = run(capsys, bad)
    assert code == 2
    assert lines == [f"{bad}: era_cm2 = '5.0': Input should be a valid number"]


def test_out_of_range_is_refused_not_clipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = variant(tmp_path, "range.toml", "max_intensity_w_cm2 = 2.0", "max_intensity_w_cm2 = 3.5")
    code, lines = run(capsys, bad)
    assert code == 2
    assert lines == [
        f"{bad}: limits.max_intensity_w_cm2 = 3.5: Input should be less than or equal to 3"
    ]


def test_unknown_field_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = variant(tmp_path, "extra.toml", "device_id = 1", "device_id = 1\nbaud = 9600")
    code, lines = run(capsys, bad)
    assert code == 2
    assert lines == [f"{bad}: link.baud = 9600: unknown field (not part of a profile)"]


def test_every_problem_of_every_file_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = variant(tmp_path, "a.toml", "port = 5020", "port = 0")
    two = variant(tmp_path, "b.toml", "watchdog_ms = 1000", "watchdog_ms = 150")
    missing = tmp_path / "missing.toml"
    code, lines = run(capsys, one, config_dir() / "profiles" / "us1-tcp.toml", two, missing)
    assert code == 2
    assert lines[0] == f"{one}: link.port = 0: Input should be greater than or equal to 1"
    assert lines[1].endswith("us1-tcp.toml: OK")
    assert (
        lines[2].startswith(f"{two}: (file) = ") and "at most half of watchdog_ms 150" in lines[2]
    )
    assert lines[3] == f"{missing}: cannot read: No such file or directory"


def test_not_toml_and_unknown_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("kind = [unterminated")
    other = variant(tmp_path, "kind.toml", 'kind = "us1"', 'kind = "us9"')
    code, lines = run(capsys, garbage, other)
    assert code == 2
    assert lines[0].startswith(f"{garbage}: not valid TOML:")
    allowed = "cx3, es2, modbus_generic, mqtt_generic, us1"
    assert lines[1] == f"{other}: kind = 'us9': unknown device kind (allowed: {allowed})"


def test_numbers_are_strict_bools_and_strings_do_not_pass_as_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = variant(tmp_path, "bool.toml", "watchdog_ms = 1000", "watchdog_ms = true")
    code, lines = run(capsys, bad)
    assert code == 2 and "watchdog_ms = True: Input should be a valid integer" in lines[0]


def test_demo_room_loads_with_its_profile() -> None:
    room, profiles = load_room(config_dir() / "rooms" / "demo.toml")
    assert room.name == "Demo room" and profiles["us1"].link.stale_limit_s == pytest.approx(0.22)
