"""The patient is recorded by pseudonym only: a name is refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sessionconsole.model.session import SessionPeople
from tests.support import controller_refusal


@pytest.mark.parametrize("code", ["PT-0042", "abc", "x_1-2", "A" * 32])
def test_codes_are_accepted(code: str) -> None:
    assert SessionPeople(therapist="Dana", patient_pseudonym=code).patient_pseudonym == code


@pytest.mark.parametrize("bad", ["John Smith", "Jo", "Müller", "-lead", "A" * 33, ""])
def test_names_and_malformed_codes_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="never the patient's name"):
        SessionPeople(therapist="Dana", patient_pseudonym=bad)


def test_the_controller_refuses_a_name_with_exit_2(tmp_path: Path) -> None:
    result = controller_refusal(tmp_path, "--patient", "John Smith")
    assert result.returncode == 2
    assert "never the patient's name" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_a_plan_for_another_patient_is_refused_with_exit_2(tmp_path: Path) -> None:
    plan = Path(__file__).resolve().parents[2] / "config" / "plans" / "PT-0042" / "low-back.toml"
    result = controller_refusal(tmp_path, "--patient", "PT-0099", "--plan", str(plan))
    assert result.returncode == 2
    assert "the plan is for PT-0042, not for --patient PT-0099" in result.stderr
    assert not (tmp_path / "s.db").exists()
