"""Words the record and the UI share: manual techniques and body regions, loaded from config."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Term(BaseModel):
    """One entry of a vocabulary: a stable id for records and a label for people."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z_]*$")
    label: str = Field(min_length=1)


class Vocabulary(BaseModel):
    """Techniques and body regions a therapist may log."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    techniques: list[Term] = Field(min_length=1)
    regions: list[Term] = Field(min_length=1)

    def technique_ids(self) -> set[str]:
        """Ids of every technique."""
        return {t.id for t in self.techniques}

    def region_ids(self) -> set[str]:
        """Ids of every body region."""
        return {r.id for r in self.regions}


def load_vocabulary(path: Path) -> Vocabulary:
    """Read the vocabulary TOML."""
    with path.open("rb") as fh:
        return Vocabulary.model_validate(tomllib.load(fh))
