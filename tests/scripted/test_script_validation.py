"""Invalid input is refused before anything starts: exit 2, one line naming file, step, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionconsole.cli import main

US1 = "args = { frequency_khz = 1000, intensity_w_cm2 = 1.0, duty_pct = 20, time_s = 60 }"
BAD_SCRIPTS = {
    "unknown_step": ('[[step]]\ndo = "dance"\n', "step 1: do: Input tag 'dance'"),
    "extra_field": (
        '[[step]]\ndo = "note"\ntext = "a"\n[[step]]\ndo = "wait"\ns = 1\ncolour = "red"\n',
        "step 2: colour: Extra inputs are not permitted",
    ),
    "bad_frequency": (
        f'[[step]]\ndo = "configure"\ndevice = "us1"\n{US1.replace("1000", "2000")}\n',
        "step 1: args.frequency_khz: Input should be 1000 or 3000 (got 2000)",
    ),
    "string_for_a_number": (
        '[[step]]\ndo = "wait"\ns = "1"\n',
        "step 1: s: Input should be a valid number (got '1')",
    ),
    "unknown_unit": (
        f'[[step]]\ndo = "configure"\ndevice = "us2"\n{US1}\n',
        "step 1: device: no unit 'us2' in the room (units: cx3, es2, us1)",
    ),
    "stimulator_without_channel": (
        '[[step]]\ndo = "configure"\ndevice = "es2"\n'
        'args = { mode = "SYM", freq_hz = 80, pw_us = 200, amplitude_ma = 5.0 }\n',
        "step 1: channel: es2 has several outputs ['es2.ch1', 'es2.ch2']: give channel or output",
    ),
    "ultrasound_args_on_a_channel": (
        f'[[step]]\ndo = "configure"\ndevice = "es2"\nchannel = 2\n{US1}\n',
        "step 1: args.mode: Field required",
    ),
    "set_before_configure": (
        '[[step]]\ndo = "set"\ndevice = "us1"\nargs = { intensity_w_cm2 = 1.5 }\n',
        "step 1: device: us1 has no settings yet: configure it before `set`",
    ),
    "two_conditions": (
        '[[step]]\ndo = "expect"\nalarm = "COMMS_LOSS"\nno_alarm = true\n',
        "step 1: Value error, give exactly one of alarm, output_off, output_on, refused, no_alarm",
    ),
    "unknown_output": (
        '[[step]]\ndo = "expect"\noutput_off = "es2:3"\n',
        "step 1: output_off: no output 'es2:3' in the room",
    ),
    "unknown_region": (
        '[[step]]\ndo = "technique"\ntechnique = "effleurage"\nregion = "tail"\nduration_s = 1\n',
        "step 1: region: unknown body region 'tail'",
    ),
    "rom_side_the_joint_lacks": (
        '[[step]]\ndo = "rom"\njoint = "knee"\nmovement = "flexion"\nside = "midline"\n'
        'degrees = 90\nmode = "active"\n',
        "step 1: joint: knee flexion is measured left or right, not 'midline'",
    ),
    "rom_beyond_a_full_circle": (
        '[[step]]\ndo = "rom"\njoint = "knee"\nmovement = "flexion"\nside = "left"\n'
        'degrees = 400\nmode = "active"\n',
        "step 1: degrees: Input should be less than or equal to 360 (got 400)",
    ),
    "goal_status_unknown": (
        '[[step]]\ndo = "goal"\ngoal = "walk 400 m"\nstatus = "done"\n',
        "step 1: status: Input should be 'not-started', 'progressing' or 'met' (got 'done')",
    ),
    "not_toml": ("[[step]\n", "not valid TOML"),
    "no_steps": ('description = "nothing"\n', "step: Field required"),
}


@pytest.mark.parametrize("name", sorted(BAD_SCRIPTS))
def test_an_invalid_script_exits_2_naming_file_step_and_field(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = BAD_SCRIPTS[name]
    script = tmp_path / f"{name}.toml"
    script.write_text(text)
    db = tmp_path / "s.db"
    code = main(["session", "run", "--demo", "--script", str(script), "--db", str(db)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"sessionconsole session run: {script}: ")
    assert expected in err[0], err[0]
    assert not db.exists()  # nothing started, nothing recorded


def test_an_invalid_profile_in_the_room_names_the_profile_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "us1.toml").write_text('kind = "us1"\nname = "x"\n')
    room = tmp_path / "room.toml"
    room.write_text('name = "R"\n[devices.us1]\nprofile = "us1.toml"\n')
    script = tmp_path / "s.toml"
    script.write_text('[[step]]\ndo = "note"\ntext = "hello"\n')
    code = main(["session", "run", "--room", str(room), "--script", str(script), "--db", "x.db"])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'us1.toml'}: era_cm2: Field required" in err


def test_a_sim_step_needs_the_units_test_port_in_the_room(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "s.toml"
    script.write_text('[[step]]\ndo = "sim"\ndevice = "us1"\nrequest = { op = "reboot" }\n')
    room = Path(__file__).resolve().parents[2] / "config" / "rooms" / "demo.toml"
    code = main(["session", "run", "--room", str(room), "--script", str(script), "--db", "x.db"])
    assert code == 2
    assert "step 1: device: unit 'us1' has no sim_control in the room" in capsys.readouterr().err


def test_the_summary_schema_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["session", "schema"]) == 0
    schema = capsys.readouterr().out
    assert '"failed_expectation"' in schema and '"refused"' in schema
