"""Billing as pure functions: timed services → minutes per CPT code → units (CMS 8-minute rule).

Rules (CLINICAL-REFERENCE.md "Billing", CMS 100-04 ch.5 s20.2), and the choices made where they
leave room (see docs/ARCHITECTURE.md, "Billing"):
- a minute counts for one timed code only: where timed services overlap, a hands-on technique
  (97124, 97140) takes the time; between two of the same sort, the one begun first keeps it;
- minutes per code are that code's time summed, then rounded down to whole minutes;
- total timed minutes T → floor(T/15) units, plus one if T mod 15 >= 8; each code first gets
  its whole 15-minute units, the rest go one each by leftover minutes (most first); ties go to
  the code with more minutes in all, then to the lower code number;
- unattended stimulation is 97014 (G0283 for Medicare), untimed: one unit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

NS_PER_MINUTE: Final = 60_000_000_000
UNIT_MINUTES: Final = 15
MIN_MINUTES_FOR_A_UNIT: Final = 8

MASSAGE: Final = "97124"
MANUAL_THERAPY: Final = "97140"
ULTRASOUND: Final = "97035"
STIM_ATTENDED: Final = "97032"
STIM_UNATTENDED: Final = "97014"
STIM_UNATTENDED_MEDICARE: Final = "G0283"
HANDS_ON_CODES: Final = frozenset({MASSAGE, MANUAL_THERAPY})
TIMED_CODES: Final = frozenset({MASSAGE, MANUAL_THERAPY, ULTRASOUND, STIM_ATTENDED})
UNTIMED_CODES: Final = frozenset({STIM_UNATTENDED})

TECHNIQUE_CODES: Final[Mapping[str, str]] = {
    # 97124 "massage, including effleurage, petrissage and/or tapotement" (issue #6; CPT text).
    "deep_tissue": MASSAGE,
    "sports_massage": MASSAGE,
    "effleurage": MASSAGE,
    "petrissage": MASSAGE,
    # 97140 manual therapy: myofascial release, trigger point, manual lymphatic drainage
    # (CLINICAL-REFERENCE.md "Billing"; issue #6).
    "myofascial_release": MANUAL_THERAPY,
    "trigger_point": MANUAL_THERAPY,
    "lymphatic_drainage": MANUAL_THERAPY,
    # unsourced: transverse friction is soft-tissue mobilisation, billed as manual therapy by
    # many clinics; confirm with the clinic's coder.
    "friction": MANUAL_THERAPY,
}


class BillingError(ValueError):
    """A service cannot be billed as given; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Service:
    """One timed or untimed service on the monotonic clock: a code and [start_ns, end_ns)."""

    code: str
    start_ns: int
    end_ns: int
    label: str = ""

    def __post_init__(self) -> None:
        """Refuse an unknown code or an interval that ends before it starts."""
        if self.code not in TIMED_CODES | UNTIMED_CODES:
            known = ", ".join(sorted(TIMED_CODES | UNTIMED_CODES))
            raise BillingError(
                f"{self.label or 'service'}: code {self.code!r} is not one of {known}"
            )
        if self.end_ns < self.start_ns:
            raise BillingError(
                f"{self.label or self.code}: ends ({self.end_ns} ns) before it starts "
                f"({self.start_ns} ns)"
            )

    @property
    def hands_on(self) -> bool:
        """True for a manual technique, which takes any minute it shares with a device."""
        return self.code in HANDS_ON_CODES


@dataclass(frozen=True, slots=True)
class Overlap:
    """Time one timed code ran alongside another and was counted for the other."""

    lost_by: str
    taken_by: str
    ns: int

    def describe(self) -> str:
        """One line for the bill."""
        hands_on_wins = self.taken_by in HANDS_ON_CODES and self.lost_by not in HANDS_ON_CODES
        rule = (
            "the hands-on technique takes the minute"
            if hands_on_wins
            else "the service begun first keeps the minute"
        )
        return (
            f"{_seconds(self.ns)} of {self.lost_by} overlapped {self.taken_by} and counts as "
            f"{self.taken_by} only ({rule})"
        )


@dataclass(frozen=True, slots=True)
class BillLine:
    """One code on the bill: its minutes (whole, rounded down) and units."""

    code: str
    minutes: int
    units: int
    timed: bool


@dataclass(frozen=True, slots=True)
class Bill:
    """A session's bill: lines per code, total timed minutes and notes (overlaps, choices)."""

    lines: tuple[BillLine, ...]
    timed_minutes: int
    timed_units: int
    notes: tuple[str, ...] = field(default=())


def _seconds(ns: int) -> str:
    """ns as 'M min S s' (whole seconds, rounded down) for notes."""
    seconds = ns // 1_000_000_000
    return f"{seconds // 60} min {seconds % 60} s"


def units_for_minutes(total_minutes: int) -> int:
    """Units for total timed minutes under the 8-minute rule: 0-7 → 0, 8-22 → 1, 23-37 → 2…."""
    if total_minutes < 0:
        raise BillingError(f"total timed minutes must be >= 0, got {total_minutes}")
    whole, rest = divmod(total_minutes, UNIT_MINUTES)
    return whole + (1 if rest >= MIN_MINUTES_FOR_A_UNIT else 0)


def allocate_units(minutes: Mapping[str, int]) -> dict[str, int]:
    """Share units_for_minutes(total) among codes: whole 15s first, then by leftover minutes.

    Ties in leftover minutes go to the code with more minutes in all, then to the lower code.
    """
    for code, value in minutes.items():
        if value < 0:
            raise BillingError(f"{code}: minutes must be >= 0, got {value}")
    units = {code: value // UNIT_MINUTES for code, value in minutes.items()}
    left = units_for_minutes(sum(minutes.values())) - sum(units.values())
    order = sorted(minutes, key=lambda c: (-(minutes[c] % UNIT_MINUTES), -minutes[c], c))
    for code in order[:left]:
        units[code] += 1
    return units


def timed_time(services: Iterable[Service]) -> tuple[dict[str, int], list[Overlap]]:
    """Nanoseconds per timed code with each instant counted once, and the overlaps resolved."""
    timed = [s for s in services if s.code in TIMED_CODES and s.end_ns > s.start_ns]
    bounds = sorted({t for s in timed for t in (s.start_ns, s.end_ns)})
    per_code: dict[str, int] = {s.code: 0 for s in timed}
    lost: dict[tuple[str, str], int] = {}
    for start, end in itertools.pairwise(bounds):
        active = [s for s in timed if s.start_ns <= start and s.end_ns >= end]
        if not active:
            continue
        winner = min(active, key=lambda s: (not s.hands_on, s.start_ns, s.code))
        per_code[winner.code] += end - start
        for other in {s.code for s in active} - {winner.code}:
            key = (other, winner.code)
            lost[key] = lost.get(key, 0) + end - start
    overlaps = [Overlap(a, b, ns) for (a, b), ns in sorted(lost.items())]
    return per_code, overlaps


def bill(services: Sequence[Service]) -> Bill:
    """The bill for a session's services: timed minutes and units per code, untimed once."""
    per_code_ns, overlaps = timed_time(services)
    minutes = {code: ns // NS_PER_MINUTE for code, ns in per_code_ns.items()}
    units = allocate_units(minutes)
    lines = [BillLine(code, minutes[code], units[code], True) for code in sorted(minutes)]
    notes = [overlap.describe() for overlap in overlaps]
    untimed = [s for s in services if s.code in UNTIMED_CODES]
    if untimed:
        on_ns = sum(s.end_ns - s.start_ns for s in untimed)
        lines.append(BillLine(STIM_UNATTENDED, on_ns // NS_PER_MINUTE, 1, False))
        notes.append(
            f"{STIM_UNATTENDED} (Medicare: {STIM_UNATTENDED_MEDICARE}) unattended stimulation is "
            "untimed: one unit however long it ran"
        )
    total = sum(minutes.values())
    if 0 < total < MIN_MINUTES_FOR_A_UNIT:
        notes.append(f"{total} timed minutes in all: under 8, so no timed unit")
    return Bill(tuple(lines), total, units_for_minutes(total), tuple(notes))
