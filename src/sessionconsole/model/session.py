"""Who a session is for and by: the therapist and the patient's pseudonym (never a name)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

PSEUDONYM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$")


def check_pseudonym(value: str) -> str:
    """The value if it is a pseudonym (a code, never a name); else ValueError saying why."""
    if not PSEUDONYM_RE.match(value):
        raise ValueError(
            f"patient pseudonym {value!r} must be a code of 3-32 letters, digits, '-' or "
            "'_' (e.g. PT-0042), never the patient's name"
        )
    return value


class SessionPeople(BaseModel):
    """The session start's people; the pseudonym is a code the clinic maps to the patient."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    therapist: str = Field(min_length=1, max_length=80)
    patient_pseudonym: str

    @field_validator("patient_pseudonym")
    @classmethod
    def _a_code_not_a_name(cls, value: str) -> str:
        return check_pseudonym(value)
