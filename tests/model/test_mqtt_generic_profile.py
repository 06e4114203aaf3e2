"""`mqtt_generic` profiles: every kind of bad mapping is one line naming file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.paths import config_dir
from sessionconsole.model.validation import validate_profile_file

GOOD_PATH = config_dir() / "profiles" / "cx3-generic.toml"
GOOD = GOOD_PATH.read_text()
STOP_OP = """[commands.stop]              # the console always stops every output ("both")
op = "stop"
args = { output = "output" }
"""


def problems(tmp_path: Path, old: str, new: str) -> tuple[Path, list[str]]:
    """Validate the bundled profile with `old` replaced by `new` (which must be in it)."""
    assert old in GOOD, old
    path = tmp_path / "unit.toml"
    path.write_text(GOOD.replace(old, new, 1))
    return path, validate_profile_file(path)


def test_the_bundled_cx3_profile_is_valid() -> None:
    assert validate_profile_file(GOOD_PATH) == []


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        # an unknown field
        (
            "ok_value = true ",
            "ok_values = true ",
            "replies.ok_values = True: unknown field (not part of a profile)",
        ),
        # a missing required mapping: no stop op, no telemetry state field
        (STOP_OP, "", "commands.stop: required field is missing"),
        ('state = "us.state"\n', "", "telemetry.ultrasound.state: required field is missing"),
        # a console setting without an argument, and an argument for no console setting
        (
            'args = { timeout_ms = "timeout_ms" }',
            "args = {}",
            "commands.set_watchdog.args: console setting 'timeout_ms' is not mapped",
        ),
        (
            'args = { timeout_ms = "timeout_ms" }',
            'args = { timeout_ms = "timeout_ms", period = "p" }',
            "commands.set_watchdog.args.period: not a console setting of set_watchdog "
            "(known: timeout_ms)",
        ),
        # unmapped codes: a unit word onto no console word, a needed console word unreached
        (
            'DONE = "DONE"',
            'DONE = "FINISHED"',
            "values.us_state.DONE = 'FINISHED': Input should be 'IDLE', 'RUNNING', 'PAUSED', "
            "'SUSPENDED', 'FAULT' or 'DONE'",
        ),
        (
            'FAULT = "FAULT"\nDONE',
            "DONE",
            "values.us_state: no unit word maps to FAULT (the console needs it)",
        ),
        (
            'event = "BOOT"  ',
            'event = "REBOOT"',
            "boot.event: 'REBOOT' is not mapped to BOOT in [values.events]",
        ),
        # a bad dotted path
        (
            'power_measured_w = "us.power_w"',
            'power_measured_w = "us..power_w"',
            "telemetry.ultrasound.power_measured_w.path = 'us..power_w': Value error, "
            "'us..power_w' is not a dotted JSON path like 'us.state' (letters, digits, '_' or "
            "'-' between single dots; a number indexes a list)",
        ),
        # topics: an unknown placeholder, one without the serial, two the same
        (
            'reply = "{root}/{serial}/reply"',
            'reply = "{root}/{unit}/reply"',
            "topics.reply = '{root}/{unit}/reply': Value error, topic '{root}/{unit}/reply': "
            "only {root} and {serial} may be filled in",
        ),
        (
            'reply = "{root}/{serial}/reply"',
            'reply = "{root}/reply"',
            "topics.reply = '{root}/reply': Value error, topic '{root}/reply' must contain "
            "{serial}, or two units would share it",
        ),
        (
            'heartbeat = "{root}/{serial}/heartbeat"',
            'heartbeat = "{root}/{serial}/status"',
            "topics.heartbeat: same topic as status ('{root}/{serial}/status')",
        ),
        # scales: zero, and a word that cannot be scaled
        (
            'args = { amplitude_ma = "ma" }',
            'args = { amplitude_ma = { name = "ma", scale = 0.0 } }',
            "commands.set_amplitude.args.amplitude_ma.scale = 0.0: Value error, scale 0.0 must "
            "be a finite number other than 0",
        ),
        (
            'args = { output = "output" }\n\n[commands.configure_us]',
            'args = { output = { name = "output", scale = 2.0 } }\n\n[commands.configure_us]',
            "commands.start.args.output: a word is translated, not scaled",
        ),
        # parts that only work together
        (
            "offline_value = false ",
            "offline_value = true ",
            "status.offline_value: must differ from online_value",
        ),
    ],
)
def test_a_bad_mapping_is_one_line_with_file_field_and_reason(
    tmp_path: Path, old: str, new: str, line: str
) -> None:
    path, lines = problems(tmp_path, old, new)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {line}"), lines[0]


def test_a_misspelt_table_and_the_shared_timing_rule(tmp_path: Path) -> None:
    path, lines = problems(tmp_path, "[events]\nevent_field", "[eventz]\nevent_field")
    assert len(lines) == 1 and lines[0].startswith(f"{path}: eventz = {{")
    assert lines[0].endswith(": unknown field (not part of a profile)")
    _, lines = problems(tmp_path, "heartbeat_interval_ms = 100 ", "heartbeat_interval_ms = 600 ")
    assert len(lines) == 1 and "heartbeat_interval_ms 600 must be at most half" in lines[0]


def test_events_without_their_topic_are_refused(tmp_path: Path) -> None:
    _, lines = problems(tmp_path, 'event = "{root}/{serial}/event" ', "")
    assert lines == [f"{tmp_path / 'unit.toml'}: events: give [events] and topics.event together"]


def test_stimulation_words_are_needed_when_stimulation_is_configured(tmp_path: Path) -> None:
    start = GOOD.index("[values.stim_mode]")
    end = GOOD.index("[values.electrode]")
    _, lines = problems(tmp_path, GOOD[start:end], "")
    assert lines == [f"{tmp_path / 'unit.toml'}: values.stim_mode: needed to translate the mode"]


def test_the_profile_fills_in_its_topics() -> None:
    import tomllib

    profile = GenericMqttProfile.model_validate(tomllib.loads(GOOD))
    assert profile.topic("status") == "cx3/CX3-0001/status"
    assert profile.topic("event") == "cx3/CX3-0001/event"
