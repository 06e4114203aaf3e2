"""`plan new`: a plan built from presets, step specs checked one by one, the file checked."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sessionconsole.model.paths import config_dir
from sessionconsole.model.plan import TreatmentPlan, load_plan
from sessionconsole.model.preset import load_presets
from sessionconsole.plans.writer import StepSpecError, build_plan, parse_step, plan_toml

PRESETS = load_presets(config_dir() / "protocols")
ROOM = Path(__file__).parent / "data" / "bench-room.toml"
US = "ultrasound,preset=us_chronic_1mhz,output=us1,region=knee,side=right,min=6"
STIM = (
    "stimulation,preset=tens_conventional,output=es2.ch1,region=knee,side=right,min=12,"
    "amplitude_ma=20,electrode_area_cm2=16"
)
MANUAL = "manual,technique=trigger_point,region=knee,side=right,s=90,notes=quadriceps insertion"


def plan_new(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sessionconsole.cli", "plan", "new", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_specs_become_the_plan_file_that_loads_back_the_same() -> None:
    plan = build_plan("PT-0077", "Knee, right", "T-02", [MANUAL, US, STIM], PRESETS)
    assert [s.kind for s in plan.steps] == ["manual", "ultrasound", "stimulation"]
    assert plan.steps[0].duration_s == 90 and plan.steps[2].duration_s == 720
    assert parse_step(1, US + ",intensity_w_cm2=1.2")["ultrasound"]["settings"] == {
        "intensity_w_cm2": 1.2
    }
    text = plan_toml(plan, "by T-02")
    assert text.startswith("# Made with `sessionconsole plan new` by T-02.")
    assert TreatmentPlan.model_validate(tomllib.loads(text)) == plan


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("massage,region=knee,side=right,min=5", "kind 'massage' is not one of"),
        ("manual,technique=trigger_point,region=knee,side=right", "min=MINUTES or s=SECONDS"),
        ("manual,technique=trigger_point,region=knee,side=right,min=5,s=3", "min=MINUTES"),
        ("manual,technique=trigger_point,region=knee,side=right,min=0.01", "whole number"),
        ("manual,region=knee,side=right,min=5,preset=x", "manual steps take no 'preset'"),
        (
            "ultrasound,preset=us_chronic_1mhz,output=us1,region=knee,side=right,min=6,foo=1",
            "'foo'",
        ),
        ("stimulation,output=es2.ch1,region=knee,side=right,min=5,amplitude_ma=x", "not a number"),
        ("manual,technique", "is not key=value"),
        ("manual,technique=trigger_point,region=knee,side=right,min=nan", "not a number"),
        ("manual,technique=trigger_point,region=knee,side=right,min=1e400", "not a number"),
        ("manual,technique=trigger_point,region=knee,side=right,s=inf", "not a number"),
    ],
)
def test_a_bad_step_spec_says_which_step_and_why(spec: str, message: str) -> None:
    with pytest.raises(StepSpecError, match=f"step 2: .*{message}"):
        build_plan("PT-0077", "t", "a", [MANUAL, spec], PRESETS)


def test_an_unknown_preset_and_a_model_error_name_the_step() -> None:
    with pytest.raises(StepSpecError, match=r"step 1: no ultrasound preset 'us_hot'.*us_chronic"):
        build_plan("PT-0077", "t", "a", [US.replace("us_chronic_1mhz", "us_hot")], PRESETS)
    with pytest.raises(ValueError, match=r"step 1: side: Input should be"):
        build_plan("PT-0077", "t", "a", [US.replace("side=right", "side=upper")], PRESETS)


def test_plan_new_checks_against_the_room_and_writes_only_a_plan_without_refusals(
    tmp_path: Path,
) -> None:
    target = tmp_path / "knee.toml"
    ok = plan_new(
        "PT-0077", "--title", "Knee", "--author", "T-02", "--max-intensity", "1.2",
        "--step", MANUAL, "--step", US, "--step", STIM, "--room", str(ROOM), "-o", str(target),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{target}: written (3 steps)" in ok.stdout
    assert load_plan(target, "PT-0077").limits.max_intensity_w_cm2 == 1.2
    again = plan_new("PT-0077", "--title", "Knee", "--step", MANUAL, "-o", str(target))
    assert again.returncode == 2 and "exists (--force to overwrite it)" in again.stderr
    hot = tmp_path / "hot.toml"
    refused = plan_new(
        "PT-0077", "--title", "Too much", "--step", US + ",intensity_w_cm2=2.9",
        "--room", str(ROOM), "-o", str(hot),
    )  # fmt: skip
    assert refused.returncode == 1 and "not written: 1 step problem(s)" in refused.stdout
    assert "step 1: refuse: " in refused.stdout and not hot.exists()


def test_plan_new_refuses_a_name_and_a_bad_step_with_exit_2(tmp_path: Path) -> None:
    named = plan_new("Jane Doe", "--title", "t", "--step", MANUAL, "-o", str(tmp_path / "x"))
    assert named.returncode == 2 and "never the patient's name" in named.stderr
    bad = plan_new("PT-0077", "--title", "t", "--step", "manual,region=knee", "-o", "x.toml")
    assert bad.returncode == 2 and "step 1: " in bad.stderr
