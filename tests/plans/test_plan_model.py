"""The plan model: strict, extra fields refused, pseudonyms only, one folder per patient."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sessionconsole.model.plan import (
    CombinedStep,
    PatientFile,
    TreatmentPlan,
    load_plan,
    plan_path,
    plans_of,
)
from tests.plans.support import EXAMPLE_PLAN

MANUAL = {
    "kind": "manual",
    "technique": "friction",
    "region": "elbow",
    "side": "right",
    "duration_s": 120,
}


def test_example_plan_loads_with_its_four_step_kinds() -> None:
    plan = load_plan(EXAMPLE_PLAN, pseudonym="PT-0042")
    assert [s.kind for s in plan.steps] == ["manual", "ultrasound", "stimulation", "combined"]
    combined = plan.steps[3]
    assert isinstance(combined, CombinedStep) and combined.electrode == "US_HEAD"


def test_plan_filed_under_another_patient_is_refused() -> None:
    with pytest.raises(ValueError, match="plan is for PT-0042, not PT-0099"):
        load_plan(EXAMPLE_PLAN, pseudonym="PT-0099")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pseudonym": "Jane Doe"}, "never a name"),
        ({"steps": [{**MANUAL, "pressure": "firm"}]}, "Extra inputs are not permitted"),
        ({"steps": [{**MANUAL, "duration_s": "120"}]}, "Input should be a valid integer"),
        ({"steps": [{**MANUAL, "kind": "laser"}]}, "does not match any of the expected tags"),
        ({"steps": []}, "at least 1 item"),
    ],
)
def test_strict_validation(change: dict[str, object], message: str) -> None:
    body = {"pseudonym": "PT-0042", "title": "t", "author": "T-01", "steps": [MANUAL], **change}
    with pytest.raises(ValidationError, match=message):
        TreatmentPlan.model_validate(body)


def test_plans_are_stored_per_pseudonym(tmp_path: Path) -> None:
    path = plan_path(tmp_path, "PT-0042", "low-back")
    assert path == tmp_path / "PT-0042" / "low-back.toml"
    assert plans_of(tmp_path, "PT-0042") == []
    path.parent.mkdir()
    path.write_bytes(EXAMPLE_PLAN.read_bytes())
    assert plans_of(tmp_path, "PT-0042") == [path]
    with pytest.raises(ValueError, match="never a name"):
        plan_path(tmp_path, "Jane Doe", "x")


def test_patient_lists_a_condition_once() -> None:
    with pytest.raises(ValidationError, match="condition listed twice: dvt"):
        PatientFile.model_validate(
            {"pseudonym": "PT-0042", "conditions": [{"id": "dvt"}, {"id": "dvt"}]}
        )
