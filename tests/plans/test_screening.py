"""Contraindication rules as data, and the pure screening of one step for one patient."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sessionconsole.model.contraindication import ContraindicationRule
from sessionconsole.model.plan import PatientCondition, PlanStep, TreatmentPlan
from sessionconsole.plans.screening import screen
from tests.plans.support import rules, vocabulary

ISSUE_CONDITIONS = {
    "pacemaker",
    "pregnancy",
    "malignancy",
    "dvt",
    "skeletally_immature",
    "impaired_sensation",
    "broken_skin",
    "irradiated_tissue",
    "metal_implant",
    "epilepsy",
    "bleeding_disorder",
}


def step(kind: str, region: str, **extra: Any) -> PlanStep:
    body: dict[str, Any] = {"kind": kind, "region": region, "side": "left", "duration_s": 300}
    if kind == "manual":
        body["technique"] = extra.get("technique", "effleurage")
    if kind in ("ultrasound", "combined"):
        body["ultrasound"] = {"output": "us1", "preset": "us_acute_1mhz"}
    if kind in ("stimulation", "combined"):
        body["stimulation"] = {"output": "es2.ch1", "preset": "nmes", "amplitude_ma": 10.0}
    if kind == "combined":
        body["electrode"] = "PADS"
    plan = TreatmentPlan.model_validate(
        {"pseudonym": "PT-0001", "title": "t", "author": "T-01", "steps": [body]}
    )
    return plan.steps[0]


def cond(cid: str, *regions: str) -> PatientCondition:
    return PatientCondition(id=cid, regions=list(regions))


def ids(findings: tuple[Any, ...]) -> list[str]:
    return sorted(f.rule_id for f in findings)


def test_rules_cover_the_issue_list_and_use_vocabulary_ids() -> None:
    data = rules()
    assert set(data.conditions) >= ISSUE_CONDITIONS
    regions, techniques = vocabulary().region_ids(), vocabulary().technique_ids()
    for rule in data.rules:
        assert set(rule.regions) <= regions, rule.id
        assert set(rule.techniques) <= techniques, rule.id
        assert rule.source.strip() and rule.reason.strip()


def test_pacemaker_blocks_any_stimulation_and_ultrasound_over_the_thorax_only() -> None:
    pm = [cond("pacemaker")]
    assert ids(screen(rules(), pm, step("stimulation", "calf")).blocks) == ["estim_pacemaker"]
    assert ids(screen(rules(), pm, step("ultrasound", "anterior_thorax")).blocks) == [
        "us_pacemaker_thorax"
    ]
    assert screen(rules(), pm, step("ultrasound", "knee")).blocks == ()


def test_region_rules_apply_to_every_patient() -> None:
    assert ids(screen(rules(), [], step("stimulation", "anterior_neck")).blocks) == [
        "estim_anterior_neck"
    ]
    assert ids(screen(rules(), [], step("ultrasound", "eye")).blocks) == ["us_eye_cranium"]
    assert ids(screen(rules(), [], step("stimulation", "anterior_thorax")).blocks) == [
        "estim_transthoracic"
    ]
    nothing = screen(rules(), [], step("ultrasound", "knee"))
    assert nothing.blocks == () and nothing.confirmations == ()


def test_site_rules_follow_where_the_patient_has_the_condition() -> None:
    dvt = [cond("dvt", "calf")]
    assert ids(screen(rules(), dvt, step("ultrasound", "calf")).blocks) == ["us_dvt_site"]
    assert screen(rules(), dvt, step("ultrasound", "shoulder")).blocks == ()
    # massage with a DVT is blocked anywhere (absolute)
    assert ids(screen(rules(), dvt, step("manual", "shoulder")).blocks) == ["massage_dvt"]
    # a condition given without a site counts everywhere (the cautious reading)
    assert ids(screen(rules(), [cond("dvt")], step("ultrasound", "shoulder")).blocks) == [
        "us_dvt_site"
    ]


def test_combined_step_is_screened_for_both_modalities() -> None:
    found = screen(rules(), [cond("metal_implant", "knee")], step("combined", "knee"))
    assert found.blocks == ()
    assert ids(found.confirmations) == ["estim_metal_implant", "us_metal_implant"]


def test_bleeding_disorder_asks_confirmation_for_deep_techniques_only() -> None:
    bleed = [cond("bleeding_disorder")]
    deep = screen(rules(), bleed, step("manual", "thigh", technique="deep_tissue"))
    assert ids(deep.confirmations) == ["deep_massage_bleeding"]
    light = screen(rules(), bleed, step("manual", "thigh", technique="effleurage"))
    assert light.confirmations == ()


def test_epilepsy_blocks_head_and_neck_and_confirms_elsewhere() -> None:
    ep = [cond("epilepsy")]
    assert ids(screen(rules(), ep, step("stimulation", "posterior_neck")).blocks) == [
        "estim_epilepsy_head_neck"
    ]
    assert ids(screen(rules(), ep, step("stimulation", "lumbar")).confirmations) == [
        "estim_epilepsy_elsewhere"
    ]


def test_a_site_rule_needs_a_condition() -> None:
    with pytest.raises(ValidationError, match="needs a condition"):
        ContraindicationRule.model_validate(
            {
                "id": "x",
                "modalities": ["ultrasound"],
                "where": "site",
                "action": "block",
                "reason": "r",
                "source": "s",
            }
        )
