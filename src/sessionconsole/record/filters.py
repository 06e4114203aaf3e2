"""Session filters for `records list|show`: start date range, therapist, patient pseudonym.

Dates are UTC calendar days (the record's wall clock is UTC), both ends inclusive. Therapist
and patient match the session_start entry's ``therapist`` and ``patient_pseudonym`` (or
``patient``) exactly; a session without them matches no such filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

PATIENT_KEYS = ("patient_pseudonym", "patient")


class FilterError(ValueError):
    """A filter option is malformed; the message names the option and the value."""


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Which sessions to keep; None means no constraint."""

    since: date | None = None
    until: date | None = None
    therapist: str | None = None
    patient: str | None = None

    def __post_init__(self) -> None:
        """Refuse an empty range."""
        if self.since is not None and self.until is not None and self.since > self.until:
            raise FilterError(f"--since {self.since} is after --until {self.until}")

    @property
    def active(self) -> bool:
        """True when any constraint is set."""
        return any(v is not None for v in (self.since, self.until, self.therapist, self.patient))

    def matches(self, started_wall: str, meta: Mapping[str, Any]) -> bool:
        """True when a session that started at started_wall with this start meta is kept."""
        day = datetime.fromisoformat(started_wall).date()
        if self.since is not None and day < self.since:
            return False
        if self.until is not None and day > self.until:
            return False
        if self.therapist is not None and meta.get("therapist") != self.therapist:
            return False
        return self.patient is None or patient_of(meta) == self.patient


def patient_of(meta: Mapping[str, Any]) -> str | None:
    """The patient pseudonym in a session_start payload, if any."""
    for key in PATIENT_KEYS:
        value = meta.get(key)
        if isinstance(value, str):
            return value
    return None


def parse_day(text: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option value as a date; a clear FilterError for anything else."""
    if text is None:
        return None
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{option} {text!r} is not a date: use YYYY-MM-DD (UTC)") from None
