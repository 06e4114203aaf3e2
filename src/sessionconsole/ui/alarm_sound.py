"""When the terminal bell rings, the banner flashes and an alarm escalates: pure, time injected.

The therapist's eyes are on the patient, so alarms must be heard. High: a burst repeated until
acknowledged, faster once escalated (unacknowledged for `escalate_after_s`). Medium: a burst,
a few times. Audio pause silences the alarms sounding now for up to `pause_s`; a new alarm
breaks through. No Textual here: the app calls `update()` on a timer and rings what it says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class AlarmLike(Protocol):
    """The parts of an alarm the sound logic reads (AlarmSnapshot has them)."""

    @property
    def id(self) -> int: ...
    @property
    def priority(self) -> str: ...
    @property
    def active(self) -> bool: ...
    @property
    def acknowledged(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class BellPattern:
    """Rings at `offsets_s` within each cycle of `cycle_s`, for `cycles` cycles (None: forever)."""

    offsets_s: tuple[float, ...]
    cycle_s: float
    cycles: int | None

    def rings_between(self, anchor_s: float, after_s: float, until_s: float) -> int:
        """How many rings of a pattern started at `anchor_s` fall in (after_s, until_s]."""
        if until_s < anchor_s:
            return 0
        first = max(0, math.floor((after_s - anchor_s) / self.cycle_s))
        last = math.floor((until_s - anchor_s) / self.cycle_s)
        if self.cycles is not None:
            last = min(last, self.cycles - 1)
        count = 0
        for cycle in range(first, last + 1):
            for offset in self.offsets_s:
                t = anchor_s + cycle * self.cycle_s + offset
                if after_s < t <= until_s:
                    count += 1
        return count


HIGH = BellPattern(offsets_s=(0.0, 0.25, 0.5, 1.25, 1.5), cycle_s=8.0, cycles=None)
HIGH_ESCALATED = BellPattern(offsets_s=(0.0, 0.25, 0.5, 1.25, 1.5), cycle_s=3.0, cycles=None)
MEDIUM = BellPattern(offsets_s=(0.0, 0.4, 0.8), cycle_s=6.0, cycles=3)


@dataclass(frozen=True, slots=True)
class SoundState:
    """What to do now: ring (how many times since the last update), flash, escalate."""

    rings: int
    sounding: str | None  # "high", "medium" or None: the priority heard (if not paused)
    flash_on: bool
    escalated: bool
    paused_s_left: float | None


class AlarmSounder:
    """Turns the session's alarms and the time into bells, flashes and escalation."""

    def __init__(
        self,
        escalate_after_s: float = 30.0,
        pause_s: float = 120.0,
        flash_period_s: float = 1.0,
    ) -> None:
        self.escalate_after_s = escalate_after_s
        self.pause_s = pause_s
        self.flash_period_s = flash_period_s
        self._first_seen: dict[int, float] = {}
        self._last_s: float | None = None
        self._paused_ids: frozenset[int] = frozenset()
        self._paused_until_s: float | None = None
        self._sounding_ids: frozenset[int] = frozenset()

    def pause_audio(self, now_s: float) -> bool:
        """Silence the alarms sounding now, for up to `pause_s`; False if nothing sounds."""
        if not self._sounding_ids:
            return False
        self._paused_ids = self._sounding_ids
        self._paused_until_s = now_s + self.pause_s
        return True

    def update(self, alarms: Iterable[AlarmLike], now_s: float) -> SoundState:
        """Advance to `now_s` with the session's alarms; say what to ring and show."""
        after_s = now_s - 1e-9 if self._last_s is None else self._last_s
        self._last_s = now_s
        sounding = [
            a
            for a in alarms
            if a.active and not a.acknowledged and a.priority in ("high", "medium")
        ]
        ids = frozenset(a.id for a in sounding)
        self._sounding_ids = ids
        for alarm_id in ids - self._first_seen.keys():
            self._first_seen[alarm_id] = now_s
        for gone in self._first_seen.keys() - ids:
            del self._first_seen[gone]
        paused_left = self._pause_left(ids, now_s)
        audible = [a for a in sounding if paused_left is None or a.id not in self._paused_ids]
        high = [a.id for a in sounding if a.priority == "high"]
        escalated = any(now_s - self._first_seen[i] >= self.escalate_after_s for i in high)
        rings, heard = self._rings(audible, after_s, now_s)
        return SoundState(
            rings=rings,
            sounding=heard,
            flash_on=bool(sounding) and self._flash_phase(now_s, escalated),
            escalated=escalated,
            paused_s_left=paused_left,
        )

    def _pause_left(self, ids: frozenset[int], now_s: float) -> float | None:
        """Seconds of audio pause left; the pause ends early once its alarms are gone."""
        if self._paused_until_s is None:
            return None
        if now_s >= self._paused_until_s or not (self._paused_ids & ids):
            self._paused_ids, self._paused_until_s = frozenset(), None
            return None
        return self._paused_until_s - now_s

    def _rings(
        self, audible: Sequence[AlarmLike], after_s: float, now_s: float
    ) -> tuple[int, str | None]:
        high = [self._first_seen[a.id] for a in audible if a.priority == "high"]
        if high:
            anchor = min(high)
            escalate_at = anchor + self.escalate_after_s
            rings = HIGH.rings_between(anchor, after_s, min(now_s, escalate_at))
            rings += HIGH_ESCALATED.rings_between(
                escalate_at, max(after_s, escalate_at - 1e-9), now_s
            )
            return rings, "high"
        medium = [self._first_seen[a.id] for a in audible if a.priority == "medium"]
        if medium:
            return MEDIUM.rings_between(max(medium), after_s, now_s), "medium"
        return 0, None

    def _flash_phase(self, now_s: float, escalated: bool) -> bool:
        period = self.flash_period_s / (2 if escalated else 1)
        return (now_s % period) < period / 2
