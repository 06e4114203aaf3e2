"""Contraindication screening: (patient conditions, plan step) -> blocks and confirmations needed.

Pure. Applied to every step of a plan by the dry-run; the rules are data
(config/contraindications.toml, `model/contraindication.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sessionconsole.model.contraindication import (
    ContraindicationRule,
    Contraindications,
    Modality,
)
from sessionconsole.model.plan import (
    ManualStep,
    PatientCondition,
    PlanStep,
    StimulationStep,
    UltrasoundStep,
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that applies: what it asks (block or confirm), why, and where from."""

    rule_id: str
    action: str
    modality: Modality
    region: str
    condition: str | None
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class Screening:
    """The steps' findings split by what they ask."""

    blocks: tuple[Finding, ...]
    confirmations: tuple[Finding, ...]


def step_modalities(step: PlanStep) -> tuple[Modality, ...]:
    """The modalities a step applies (a combined step: ultrasound and stimulation)."""
    if isinstance(step, ManualStep):
        return ("manual",)
    if isinstance(step, UltrasoundStep):
        return ("ultrasound",)
    if isinstance(step, StimulationStep):
        return ("stimulation",)
    return ("ultrasound", "stimulation")


def screen(
    rules: Contraindications, conditions: Sequence[PatientCondition], step: PlanStep
) -> Screening:
    """Every rule that applies to this step for a patient with these conditions."""
    technique = step.technique if isinstance(step, ManualStep) else None
    found = [
        Finding(
            rule.id, rule.action, modality, step.region, rule.condition, rule.reason, rule.source
        )
        for modality in step_modalities(step)
        for rule in rules.rules
        if _applies(rule, conditions, modality, step.region, technique)
    ]
    return Screening(
        blocks=tuple(f for f in found if f.action == "block"),
        confirmations=tuple(f for f in found if f.action == "confirm"),
    )


def _applies(
    rule: ContraindicationRule,
    conditions: Sequence[PatientCondition],
    modality: Modality,
    region: str,
    technique: str | None,
) -> bool:
    if modality not in rule.modalities:
        return False
    if rule.techniques and technique not in rule.techniques:
        return False
    if rule.regions and region not in rule.regions:
        return False
    if rule.condition is None:
        return True
    held = next((c for c in conditions if c.id == rule.condition), None)
    if held is None:
        return False
    # A site rule needs the condition here; a condition without regions counts everywhere.
    return rule.where == "anywhere" or not held.regions or region in held.regions
