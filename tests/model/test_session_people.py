"""The patient is recorded by pseudonym only: a name is refused before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from sessionconsole.model.session import SessionPeople


@pytest.mark.parametrize("code", ["PT-0042", "abc", "x_1-2", "A" * 32])
def test_codes_are_accepted(code: str) -> None:
    assert SessionPeople(therapist="Dana", patient_pseudonym=code).patient_pseudonym == code


@pytest.mark.parametrize("bad", ["John Smith", "Jo", "Müller", "-lead", "A" * 33, ""])
def test_names_and_malformed_codes_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="never the patient's name"):
        SessionPeople(therapist="Dana", patient_pseudonym=bad)


def test_the_controller_refuses_a_name_with_exit_2(tmp_path: Path) -> None:
    room = tmp_path / "room.toml"
    room.write_text('name = "r"\n[devices.us1]\nprofile = "nope.toml"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionconsole.cli",
            "controller",
            "--room",
            str(room),
            "--db",
            str(tmp_path / "s.db"),
            "--socket",
            str(tmp_path / "s.sock"),
            "--patient",
            "John Smith",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "never the patient's name" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_a_plan_for_another_patient_is_refused_with_exit_2(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    profile = repo / "config" / "profiles" / "us1-tcp.toml"
    room = tmp_path / "room.toml"
    room.write_text(f'name = "r"\n[devices.us1]\nprofile = "{profile}"\n')
    plan = repo / "config" / "plans" / "PT-0042" / "low-back.toml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionconsole.cli",
            "controller",
            "--room",
            str(room),
            "--db",
            str(tmp_path / "s.db"),
            "--socket",
            str(tmp_path / "s.sock"),
            "--patient",
            "PT-0099",
            "--plan",
            str(plan),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "the plan is for PT-0042, not for --patient PT-0099" in result.stderr
    assert not (tmp_path / "s.db").exists()
