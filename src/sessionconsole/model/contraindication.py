"""Contraindication rules as data (config/contraindications.toml): modality x region x condition.

Each rule says block (the step may not run) or confirm (a named person must confirm first),
with the reason and its source. The screening itself is `plans/screening.py`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Modality = Literal["ultrasound", "stimulation", "manual"]
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
_ID = r"^[a-z][a-z0-9_]*$"


class ContraindicationRule(BaseModel):
    """One rule. No condition: applies to every patient (a region rule such as the eyes).

    `where = "site"`: only over a region where the patient has the condition (a condition
    given without regions counts everywhere, the cautious reading); `"anywhere"`: wherever
    the region list matches. An empty region list means every region.
    """

    model_config = _STRICT

    id: str = Field(pattern=_ID)
    condition: str | None = Field(default=None, pattern=_ID)
    modalities: list[Modality] = Field(min_length=1)
    techniques: list[str] = Field(default_factory=list, description="manual only; empty: all")
    regions: list[str] = Field(default_factory=list, description="empty: every region")
    where: Literal["site", "anywhere"] = "anywhere"
    action: Literal["block", "confirm"]
    reason: str = Field(min_length=1)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ContraindicationRule:
        if self.techniques and self.modalities != ["manual"]:
            raise ValueError("techniques narrow a manual rule: give modalities = ['manual']")
        if self.where == "site" and self.condition is None:
            raise ValueError("where = 'site' needs a condition (the patient says where it is)")
        return self


class Contraindications(BaseModel):
    """The condition vocabulary and the rules over it."""

    model_config = _STRICT

    conditions: dict[str, str] = Field(min_length=1, description="condition id -> label")
    rules: list[ContraindicationRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_conditions(self) -> Contraindications:
        unknown = sorted(
            {r.condition for r in self.rules if r.condition and r.condition not in self.conditions}
        )
        if unknown:
            raise ValueError(f"rules name conditions not in [conditions]: {', '.join(unknown)}")
        ids = [r.id for r in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rule id used twice: {', '.join(twice)}")
        return self


def load_contraindications(path: Path) -> Contraindications:
    """Read the rules TOML (raises pydantic.ValidationError when invalid)."""
    with path.open("rb") as fh:
        return Contraindications.model_validate(tomllib.load(fh))
