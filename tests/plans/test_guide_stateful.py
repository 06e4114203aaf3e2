"""The guide's invariants under any sequence of requests and clock advances (hypothesis)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sessionconsole.plans import guide as g

OPERATORS = st.sampled_from(["T-01", "T-02"])
REASONS = st.sampled_from(["", " ", "patient tired", "skin red"])


class GuideMachine(RuleBasedStateMachine):
    """Random therapists against one guide; the model counts what must have been recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.guide = g.new_guide([5, 12, 1, 30])
        self.ever_finished: set[int] = set()
        self.expected_deviations = 0

    def _try(self, change: g.Guide | None, deviates: bool = False) -> None:
        if change is None:
            return
        before = self.guide.deviations
        self.guide = change
        # Deviations are only ever appended, each once.
        assert self.guide.deviations[: len(before)] == before
        self.expected_deviations += int(deviates)

    @rule(dt=st.floats(min_value=0.0, max_value=8.0, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt
        new, ended = g.tick(self.guide, self.now)
        if ended is not None:
            assert new.step(ended).state in g.FINISHED
        self._try(new)

    @rule()
    def start(self) -> None:
        try:
            self._try(g.start(self.guide, self.now))
        except g.GuideRefused as exc:
            assert exc.rule_id == g.RULE_STATE

    @rule()
    def pause(self) -> None:
        try:
            self._try(g.pause(self.guide, self.now))
        except g.GuideRefused as exc:
            assert exc.rule_id == g.RULE_STATE

    @rule()
    def resume(self) -> None:
        try:
            self._try(g.resume(self.guide, self.now))
        except g.GuideRefused as exc:
            assert exc.rule_id == g.RULE_STATE

    @rule(who=OPERATORS, why=REASONS)
    def skip(self, who: str, why: str) -> None:
        try:
            self._try(g.skip(self.guide, self.now, who, why), deviates=True)
        except g.GuideRefused as exc:
            assert exc.rule_id in (g.RULE_STATE, g.RULE_REASON)
            assert exc.rule_id != g.RULE_REASON or not why.strip()

    @rule(
        index=st.integers(0, 4),
        duration=st.integers(1, 40),
        who=OPERATORS,
        why=REASONS,
    )
    def adjust(self, index: int, duration: int, who: str, why: str) -> None:
        try:
            new = g.adjust_duration(self.guide, index, duration, self.now, who, why)
        except g.GuideRefused as exc:
            assert exc.rule_id in (g.RULE_STATE, g.RULE_REASON, g.RULE_DURATION)
            return
        self._try(new, deviates=True)
        assert new.deviations[-1].operator == who and new.deviations[-1].reason == why.strip()

    @precondition(lambda self: self.guide.current is not None)
    @rule(who=OPERATORS)
    def change_settings(self, who: str) -> None:
        index = self.guide.current
        assert index is not None
        self._try(g.record_change(self.guide, index, self.now, who, "lower", {}), deviates=True)

    @invariant()
    def at_most_one_step_running_and_it_is_the_current_one(self) -> None:
        running = [i for i, s in enumerate(self.guide.steps) if s.state in ("active", "paused")]
        assert len(running) <= 1
        assert all(i == self.guide.current for i in running)

    @invariant()
    def steps_keep_plan_order(self) -> None:
        cur = self.guide.current
        cut = len(self.guide.steps) if cur is None else cur
        assert all(s.state in g.FINISHED for s in self.guide.steps[:cut])
        assert all(s.state == "pending" for s in self.guide.steps[cut + 1 :])

    @invariant()
    def finished_steps_never_run_again(self) -> None:
        for i, s in enumerate(self.guide.steps):
            if i in self.ever_finished:
                assert s.state in g.FINISHED
            if s.state in g.FINISHED:
                self.ever_finished.add(i)

    @invariant()
    def time_is_sane(self) -> None:
        for s in self.guide.steps:
            assert s.remaining(self.now) >= 0.0
            assert s.elapsed(self.now) >= 0.0
            if s.state != "active":
                assert s.since_s is None

    @invariant()
    def every_deviation_recorded_once_with_who_and_why(self) -> None:
        assert len(self.guide.deviations) == self.expected_deviations
        for d in self.guide.deviations:
            assert d.operator in ("T-01", "T-02") and d.reason.strip()
            assert 1 <= d.step <= len(self.guide.steps)


GuideMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestGuideInvariants = GuideMachine.TestCase
