"""Plan dry-run: the example plan passes; a bad plan gets every problem at once, one line each."""

from __future__ import annotations

from typing import Any

from sessionconsole.model.plan import PatientFile, TreatmentPlan, load_patient, load_plan
from sessionconsole.plans.check import Problem, check_plan
from tests.plans import support as s


def run(plan: TreatmentPlan, patient: PatientFile | None = None) -> list[Problem]:
    return check_plan(
        plan,
        s.bench_profiles(),
        s.clinical(),
        patient,
        s.rules(),
        presets=s.presets(),
        vocabulary=s.vocabulary(),
    )


def plan_of(*steps: dict[str, Any], **top: Any) -> TreatmentPlan:
    body = {"pseudonym": "PT-0042", "title": "t", "author": "T-01", "steps": list(steps), **top}
    return TreatmentPlan.model_validate(body)


def us(output: str = "us1", region: str = "knee", **part: Any) -> dict[str, Any]:
    return {
        "kind": "ultrasound",
        "region": region,
        "side": "left",
        "duration_s": 300,
        "ultrasound": {"output": output, "preset": "us_chronic_1mhz", **part},
    }


def stim(output: str = "es2.ch1", region: str = "thigh", **part: Any) -> dict[str, Any]:
    part = {
        "output": output,
        "preset": "tens_conventional",
        "amplitude_ma": 20.0,
        "electrode_area_cm2": 25.0,
        **part,
    }
    return {
        "kind": "stimulation",
        "region": region,
        "side": "left",
        "duration_s": 600,
        "stimulation": part,
    }


def lines(problems: list[Problem]) -> list[str]:
    return [p.line() for p in problems]


def test_example_plan_passes_for_its_patient() -> None:
    assert run(load_plan(s.EXAMPLE_PLAN), load_patient(s.PATIENT)) == []


def test_without_a_patient_file_the_screening_is_said_to_be_partial() -> None:
    assert lines(run(load_plan(s.EXAMPLE_PLAN))) == [
        "plan: warn: patient: no patient file: condition rules and patient limits not checked"
    ]


def test_every_problem_of_a_bad_plan_is_listed_at_once() -> None:
    plan = plan_of(
        us(settings={"intensity_w_cm2": 2.5}),  # above the US-1 profile's 2.0
        stim(output="es2.ch9"),  # no such output
        stim(output="us1"),  # an ultrasound output
        stim(amplitude_ma=60.0),  # above the ES-2 profile's 40 mA peak
        {
            "kind": "manual",
            "technique": "kneading",
            "region": "lumbar",
            "side": "left",
            "duration_s": 60,
        },
    )
    got = lines(run(plan, PatientFile(pseudonym="PT-0042")))
    assert got == [
        "step 1: refuse: ultrasound.settings.intensity_w_cm2: 2.5 W/cm² is above the profile "
        "'US-1 ultrasound (bench unit)' cap 2 W/cm² [device profile]",
        "step 2: refuse: stimulation.output: 'es2.ch9' is not an output of this room "
        "(cx3.stim, cx3.us, es2.ch1, es2.ch2, us1)",
        "step 3: refuse: stimulation.output: 'us1' is a ultrasound output, not stimulation",
        "step 4: refuse: stimulation.amplitude_ma: 60 mA peak is above the profile "
        "'ES-2 stimulator (bench unit)' cap 40 mA [device profile]",
        "step 5: refuse: technique: 'kneading' is not a technique id of the vocabulary",
    ]


def test_clinical_rms_cap_and_patient_limits() -> None:
    # IFC: rms = I / sqrt(2); 40 mA peak -> 28.3 mA rms, above a patient cap of 20 mA rms
    step = {**stim(preset="interferential", amplitude_ma=40.0), "limits": {"max_rms_ma": 20.0}}
    plan = plan_of(step)
    patient = PatientFile(pseudonym="PT-0042", limits={"max_amplitude_ma": 30.0})
    assert lines(run(plan, patient)) == [
        "step 1: refuse: stimulation.amplitude_ma: 40 mA peak is above the patient limits cap "
        "30 mA [patient limits]",
        "step 1: refuse: stimulation.amplitude_ma: 40 mA peak is 28.3 mA rms, above the step "
        "limits cap 20 mA rms [step limits]",
    ]


def test_contraindications_block_and_confirm_per_step() -> None:
    patient = PatientFile.model_validate(
        {"pseudonym": "PT-0042", "conditions": [{"id": "metal_implant", "regions": ["knee"]}]}
    )
    problems = run(plan_of(us(region="knee"), stim(region="anterior_neck")), patient)
    assert [(p.step, p.severity, p.source) for p in problems] == [
        (1, "confirm", "unsourced (general knowledge)"),
        (2, "refuse", "REF e-stim: anterior neck/carotid sinus"),
    ]


def test_current_density_over_small_pads_and_the_head_in_combination() -> None:
    small = stim(amplitude_ma=20.0, electrode_area_cm2=1.0)  # 20 x sqrt(2x150e-6x100)=3.46 rms
    combined = {
        "kind": "combined",
        "region": "thigh",
        "side": "left",
        "duration_s": 300,
        "electrode": "US_HEAD",
        "ultrasound": {"output": "cx3.us", "preset": "us_subacute_3mhz"},
        "stimulation": {"output": "cx3.stim", "preset": "interferential", "amplitude_ma": 20.0},
    }  # (IFC 20 mA -> 14.1 mA rms over ERA 5 cm2 = 2.83 mA/cm2)
    got = lines(run(plan_of(small, combined), PatientFile(pseudonym="PT-0042")))
    assert got == [
        "step 1: warn: stimulation.amplitude_ma: 3.46 mA rms/cm² over 1 cm² (electrode) is above "
        "2: needs attention [AS 60601.2.10:2018; Enraf-Nonius manual]",
        "step 2: warn: stimulation.amplitude_ma: 2.83 mA rms/cm² over 5 cm² (the head's ERA) is "
        "above 2: needs attention [AS 60601.2.10:2018; Enraf-Nonius manual]",
    ]


def test_us_head_needs_one_combination_unit() -> None:
    step = {
        "kind": "combined",
        "region": "thigh",
        "side": "left",
        "duration_s": 300,
        "electrode": "US_HEAD",
        "ultrasound": {"output": "us1", "preset": "us_acute_1mhz"},
        "stimulation": {"output": "es2.ch1", "preset": "nmes", "amplitude_ma": 10.0},
    }
    got = run(plan_of(step), PatientFile(pseudonym="PT-0042"))
    assert [(p.field, p.severity) for p in got] == [
        ("electrode", "refuse"),
        ("stimulation.electrode_area_cm2", "warn"),  # the head is not the electrode, so: pads
    ]


def test_missing_settings_and_unknown_or_undeliverable_presets() -> None:
    no_preset = us(preset=None, settings={"duty_pct": 50})
    got = lines(
        run(
            plan_of(no_preset, stim(preset="tens_burst"), stim(preset="nope")),
            PatientFile(pseudonym="PT-0042"),
        )
    )
    assert got[:2] == [
        "step 1: refuse: ultrasound.settings.frequency_khz: no value: give it in settings or use "
        "a preset",
        "step 1: refuse: ultrasound.settings.intensity_w_cm2: no value: give it in settings or "
        "use a preset",
    ]
    assert got[2].startswith("step 2: refuse: stimulation.preset: tens_burst: preset cannot run")
    assert "step 3: refuse: stimulation.preset: 'nope' is not in the preset library" in got


def test_dose_target_and_lesion_depth_warnings() -> None:
    # chronic 1 MHz, 0.75 W/cm2 x ERA 5 x 100 % x 300 s = 1125 J over 15 cm2 = 75 J/cm2
    step = us(treated_area_cm2=15.0, target_dose_j_cm2=50.0, lesion_depth_cm=4.0)
    got = lines(run(plan_of(step), PatientFile(pseudonym="PT-0042")))
    assert got == [
        "step 1: warn: ultrasound.settings.intensity_w_cm2: 0.75 W/cm² leaves 0.38 W/cm² at 4 cm, "
        "outside us_chronic_1mhz's 0.5-1 W/cm² at the lesion; 1.50 W/cm² would leave 0.75 "
        "[half-value depth, CLINICAL-REFERENCE Parameters]",
        "step 1: warn: ultrasound.target_dose_j_cm2: settings give 75.0 J/cm², target 50 J/cm² "
        "(±10 %); 200 s would give it [E = I x ERA x duty x t, CLINICAL-REFERENCE; tolerance "
        "unsourced]",
    ]


def test_pseudonym_and_unknown_condition() -> None:
    patient = PatientFile.model_validate({"pseudonym": "PT-0007", "conditions": [{"id": "gout"}]})
    got = run(plan_of(us()), patient)
    assert [(p.step, p.field) for p in got] == [
        (None, "pseudonym"),
        (None, "patient.conditions.0.id"),
    ]
