"""Guided sessions: a plan's steps in order with timers, pause, skip and adjust (pure).

The guide never drives a device. It says which step is current and next, how long each has
left, and which deviations from the plan happened (what, who, when, why). `core/guided.py`
turns its decisions into kernel commands, so every limit and interlock still applies.

Rules the state machine keeps (tests/plans/test_guide_stateful.py checks them):
- the current step is the first step not finished; steps before it are finished, steps after
  it pending, so at most one step is active or paused and steps run in plan order;
- a finished step (done, skipped, shortened) never becomes active again;
- time counts only while a step is active; remaining time is never negative;
- every deviation (skipped, shortened, settings changed) is recorded once, by the call that
  caused it, with the operator and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

StepState = Literal["pending", "active", "paused", "done", "skipped", "shortened"]
DeviationKind = Literal["skipped", "shortened", "settings_changed"]
FINISHED: frozenset[StepState] = frozenset({"done", "skipped", "shortened"})

RULE_STATE = "GUIDE_STATE"  # the step is not in a state that allows the request
RULE_REASON = "GUIDE_REASON"  # a deviation needs a reason
RULE_DURATION = "GUIDE_DURATION"  # a new duration the step cannot take


class GuideRefused(ValueError):
    """A guide request that cannot be carried out: the rule id and a sentence saying why."""

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id


@dataclass(frozen=True, slots=True)
class StepClock:
    """One step's state and timer: active time before `since_s`, plus the run since then."""

    planned_s: float  # the plan's duration
    duration_s: float  # the duration in force (the plan's unless adjusted)
    state: StepState = "pending"
    elapsed_s: float = 0.0  # active time accumulated before the current run
    since_s: float | None = None  # when the current run began (active only)

    def elapsed(self, now: float) -> float:
        """Seconds this step has been active, up to `now`."""
        run = now - self.since_s if self.state == "active" and self.since_s is not None else 0.0
        return self.elapsed_s + max(0.0, run)

    def remaining(self, now: float) -> float:
        """Seconds left of the duration in force; never negative."""
        return max(0.0, self.duration_s - self.elapsed(now))


@dataclass(frozen=True, slots=True)
class Deviation:
    """A departure from the plan: which step (1-based), what, who, when (monotonic s), why."""

    step: int
    kind: DeviationKind
    operator: str
    at_s: float
    reason: str
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Guide:
    """Every step's clock and the deviations so far, in the order they happened."""

    steps: tuple[StepClock, ...]
    deviations: tuple[Deviation, ...] = ()

    @property
    def current(self) -> int | None:
        """Index of the first step not finished (None: the plan is finished)."""
        return next((i for i, s in enumerate(self.steps) if s.state not in FINISHED), None)

    @property
    def next(self) -> int | None:
        """Index of the step after the current one, if any."""
        cur = self.current
        return None if cur is None or cur + 1 >= len(self.steps) else cur + 1

    def step(self, index: int) -> StepClock:
        """One step's clock (0-based index)."""
        return self.steps[index]

    def _put(self, index: int, clock: StepClock, *new: Deviation) -> Guide:
        steps = (*self.steps[:index], clock, *self.steps[index + 1 :])
        return Guide(steps, self.deviations + new)


def new_guide(durations_s: Sequence[float]) -> Guide:
    """A guide for steps of these planned durations, all pending."""
    if not durations_s:
        raise ValueError("a guide needs at least one step")
    if any(d <= 0 for d in durations_s):
        raise ValueError(f"step durations must be positive, got {list(durations_s)}")
    return Guide(tuple(StepClock(float(d), float(d)) for d in durations_s))


def _current(guide: Guide) -> tuple[int, StepClock]:
    index = guide.current
    if index is None:
        raise GuideRefused(RULE_STATE, "the plan is finished: every step is done or skipped")
    return index, guide.steps[index]


def _need_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise GuideRefused(RULE_REASON, "a deviation from the plan needs a reason")
    return text


def start(guide: Guide, now: float) -> Guide:
    """The therapist starts the current step (pending → active)."""
    index, clock = _current(guide)
    if clock.state != "pending":
        hint = "resume it" if clock.state == "paused" else "it is already running"
        raise GuideRefused(RULE_STATE, f"step {index + 1} is {clock.state}: {hint}")
    return guide._put(index, replace(clock, state="active", since_s=now))


def pause(guide: Guide, now: float) -> Guide:
    """The current step stops counting (active → paused); asked for, or after a stop or trip."""
    index, clock = _current(guide)
    if clock.state != "active":
        raise GuideRefused(RULE_STATE, f"step {index + 1} is {clock.state}, not running")
    return guide._put(
        index, replace(clock, state="paused", elapsed_s=clock.elapsed(now), since_s=None)
    )


def resume(guide: Guide, now: float) -> Guide:
    """The therapist resumes the current step (paused → active)."""
    index, clock = _current(guide)
    if clock.state != "paused":
        raise GuideRefused(RULE_STATE, f"step {index + 1} is {clock.state}, not paused")
    return guide._put(index, replace(clock, state="active", since_s=now))


def skip(guide: Guide, now: float, operator: str, reason: str) -> Guide:
    """End the current step now: skipped if it never ran, shortened if it ran for a while."""
    why = _need_reason(reason)
    index, clock = _current(guide)
    ran = clock.elapsed(now)
    ended = replace(clock, elapsed_s=ran, since_s=None)
    if ran > 0:
        detail = {"planned_s": clock.planned_s, "given_s": round(ran, 3)}
        dev = Deviation(index + 1, "shortened", operator, now, why, detail)
        return guide._put(index, replace(ended, state="shortened"), dev)
    dev = Deviation(index + 1, "skipped", operator, now, why, {"planned_s": clock.planned_s})
    return guide._put(index, replace(ended, state="skipped"), dev)


def tick(guide: Guide, now: float) -> tuple[Guide, int | None]:
    """Finish the current step when its time is up; the finished step's index, else None.

    A step that ran its adjusted, shorter duration ends `shortened` (its deviation was recorded
    when the duration was cut); otherwise `done`.
    """
    index = guide.current
    if index is None:
        return guide, None
    clock = guide.steps[index]
    if clock.state != "active" or clock.remaining(now) > 0:
        return guide, None
    state: StepState = "shortened" if clock.duration_s < clock.planned_s else "done"
    ended = replace(clock, state=state, elapsed_s=clock.elapsed(now), since_s=None)
    return guide._put(index, ended), index


def adjust_duration(
    guide: Guide, index: int, duration_s: float, now: float, operator: str, reason: str
) -> Guide:
    """A new duration for a step not yet finished: below the plan's it is a shortening, above
    it a settings change; it must leave the step time to run."""
    why = _need_reason(reason)
    clock = _unfinished(guide, index)
    if duration_s == clock.duration_s:
        raise GuideRefused(RULE_DURATION, f"step {index + 1} already lasts {duration_s:g} s")
    ran = clock.elapsed(now)
    if duration_s <= ran:
        raise GuideRefused(
            RULE_DURATION,
            f"step {index + 1} has run {ran:.0f} s; {duration_s:g} s would end it in the past "
            "(skip it to end it now)",
        )
    kind: DeviationKind = "shortened" if duration_s < clock.planned_s else "settings_changed"
    detail = {"duration_s": [clock.duration_s, float(duration_s)], "planned_s": clock.planned_s}
    dev = Deviation(index + 1, kind, operator, now, why, detail)
    return guide._put(index, replace(clock, duration_s=float(duration_s)), dev)


def record_change(
    guide: Guide,
    index: int,
    now: float,
    operator: str,
    reason: str,
    detail: Mapping[str, object],
) -> Guide:
    """A settings change vs the plan for a step not yet finished (already judged elsewhere)."""
    why = _need_reason(reason)
    _unfinished(guide, index)
    dev = Deviation(index + 1, "settings_changed", operator, now, why, dict(detail))
    return Guide(guide.steps, (*guide.deviations, dev))


def _unfinished(guide: Guide, index: int) -> StepClock:
    if not 0 <= index < len(guide.steps):
        raise GuideRefused(RULE_STATE, f"no step {index + 1} (the plan has {len(guide.steps)})")
    clock = guide.steps[index]
    if clock.state in FINISHED:
        raise GuideRefused(RULE_STATE, f"step {index + 1} is {clock.state}: it cannot change")
    return clock
