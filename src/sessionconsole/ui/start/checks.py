"""Which contraindication rules apply to a plan's steps or a preset, for the ticked conditions.

Pure. The UI may not import `plans/screening.py`, so this reads the same rule data
(`model/contraindication.py`) the same way: tests/ui/test_start_screen.py checks it agrees
with `plans.screening.screen` over every rule, condition and region.
A condition ticked here has no site, so it counts everywhere (the cautious reading).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sessionconsole.model.contraindication import ContraindicationRule, Contraindications, Modality
from sessionconsole.model.plan import (
    CombinedStep,
    ManualStep,
    StimulationStep,
    TreatmentPlan,
    UltrasoundStep,
)
from sessionconsole.model.preset import Preset


@dataclass(frozen=True, slots=True)
class Target:
    """One modality applied to one region: a plan step's part, or a preset over a region."""

    step: str  # "step 2", or the preset's id
    modality: Modality
    region: str
    technique: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that applies to a target: BLOCKED or CONFIRM, with its reason and source."""

    target: Target
    rule: ContraindicationRule

    @property
    def blocked(self) -> bool:
        """The rule blocks (no confirmation lifts it)."""
        return self.rule.action == "block"

    @property
    def key(self) -> str:
        """A stable id for the screen's list: rule and target."""
        return f"{self.rule.id}@{self.target.step}:{self.target.modality}"

    def line(self, region_label: str) -> str:
        """The finding in words; the status is a word, not only a colour."""
        word = "BLOCKED" if self.blocked else "CONFIRM"
        where = f"{self.target.step}, {self.target.modality} on {region_label}"
        return f"{word}  {where}: {self.rule.reason}"


def plan_targets(plan: TreatmentPlan) -> list[Target]:
    """Every modality of every step, numbered from 1 as `plan check` numbers them."""
    targets: list[Target] = []
    for number, step in enumerate(plan.steps, start=1):
        name = f"step {number}"
        if isinstance(step, ManualStep):
            targets.append(Target(name, "manual", step.region, step.technique))
        if isinstance(step, UltrasoundStep | CombinedStep):
            targets.append(Target(name, "ultrasound", step.region))
        if isinstance(step, StimulationStep | CombinedStep):
            targets.append(Target(name, "stimulation", step.region))
    return targets


def preset_targets(preset: Preset, region: str) -> list[Target]:
    """A preset used over one region."""
    return [Target(preset.id, preset.modality, region)]


def applies(rule: ContraindicationRule, conditions: Collection[str], target: Target) -> bool:
    """Whether the rule applies to the target for a patient with these conditions."""
    if target.modality not in rule.modalities:
        return False
    if rule.techniques and target.technique not in rule.techniques:
        return False
    if rule.regions and target.region not in rule.regions:
        return False
    # A condition without a site counts everywhere, so "site" and "anywhere" agree here.
    return rule.condition is None or rule.condition in conditions


def findings(
    rules: Contraindications, conditions: Collection[str], targets: Sequence[Target]
) -> list[Finding]:
    """Every rule that applies, target by target, blocks before confirmations."""
    found = [Finding(t, r) for t in targets for r in rules.rules if applies(r, conditions, t)]
    return sorted(found, key=lambda f: (not f.blocked, targets.index(f.target)))


def confirmation_note(operator: str, finding: Finding) -> str:
    """The note that records a confirmation: who, which rule, for which step."""
    target = finding.target
    return (
        f"confirmed by {operator}: {finding.rule.id} ({finding.rule.reason}) for {target.step}, "
        f"{target.modality} on {target.region}"
    )
