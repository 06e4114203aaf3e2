"""Words the record and the UI share: manual techniques, body regions, joints and movements."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RomSide = Literal["left", "right", "midline"]
MAX_ROM_DEG = 360  # a goniometer's full circle: no single-plane reading can exceed it


class Term(BaseModel):
    """One entry of a vocabulary: a stable id for records and a label for people."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z_]*$")
    label: str = Field(min_length=1)


class Movement(Term):
    """A joint movement measured from neutral, with the typical adult range (source in TOML)."""

    normal_deg: int = Field(gt=0, le=MAX_ROM_DEG)
    sides: list[RomSide] | None = None  # None: the joint's sides


class Joint(Term):
    """A joint whose range of motion is measured, the sides it has and its movements."""

    sides: list[RomSide] = Field(min_length=1)
    movements: list[Movement] = Field(min_length=1)

    def movement(self, movement_id: str) -> Movement | None:
        """The movement with this id, if the joint has it."""
        return next((m for m in self.movements if m.id == movement_id), None)


class Vocabulary(BaseModel):
    """Techniques and body regions a therapist may log; joints whose motion is measured."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    techniques: list[Term] = Field(min_length=1)
    regions: list[Term] = Field(min_length=1)
    joints: list[Joint] = Field(default_factory=list)

    def technique_ids(self) -> set[str]:
        """Ids of every technique."""
        return {t.id for t in self.techniques}

    def region_ids(self) -> set[str]:
        """Ids of every body region."""
        return {r.id for r in self.regions}

    def joint(self, joint_id: str) -> Joint | None:
        """The joint with this id, if the vocabulary has it."""
        return next((j for j in self.joints if j.id == joint_id), None)

    def rom_problem(self, joint_id: str, movement_id: str, side: str) -> str | None:
        """Why a range-of-motion measurement cannot be recorded as named, or None if it can."""
        joint = self.joint(joint_id)
        if joint is None:
            known = ", ".join(j.id for j in self.joints) or "none configured"
            return f"unknown joint {joint_id!r} (joints: {known})"
        movement = joint.movement(movement_id)
        if movement is None:
            known = ", ".join(m.id for m in joint.movements)
            return f"the {joint_id} has no movement {movement_id!r} (movements: {known})"
        sides = movement.sides or joint.sides
        if side not in sides:
            return f"{joint_id} {movement_id} is measured {' or '.join(sides)}, not {side!r}"
        return None


def load_vocabulary(path: Path) -> Vocabulary:
    """Read the vocabulary TOML."""
    with path.open("rb") as fh:
        return Vocabulary.model_validate(tomllib.load(fh))
