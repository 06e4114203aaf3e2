"""The pure guide, tick by tick: order, timers, pause and resume, skip, adjust, deviations."""

from __future__ import annotations

import pytest

from sessionconsole.plans import guide as g


def states(guide: g.Guide) -> list[str]:
    return [s.state for s in guide.steps]


def test_steps_run_in_order_and_end_when_their_time_is_up() -> None:
    guide = g.new_guide([10, 5])
    assert (guide.current, guide.next) == (0, 1)
    guide = g.start(guide, now=100.0)
    for now in (101.0, 105.0, 109.99):
        guide, ended = g.tick(guide, now)
        assert ended is None and guide.step(0).state == "active"
    assert guide.step(0).remaining(105.0) == pytest.approx(5.0)
    guide, ended = g.tick(guide, 110.0)
    assert ended == 0 and states(guide) == ["done", "pending"]
    assert (guide.current, guide.next) == (1, None)
    # The next step waits for the therapist: time passing does not start it.
    guide, ended = g.tick(guide, 500.0)
    assert ended is None and guide.step(1).state == "pending"
    assert guide.step(1).remaining(500.0) == 5.0
    guide = g.start(guide, 500.0)
    guide, ended = g.tick(guide, 505.0)
    assert ended == 1 and states(guide) == ["done", "done"] and guide.current is None
    assert guide.deviations == ()


def test_paused_time_does_not_count_and_resume_continues() -> None:
    guide = g.start(g.new_guide([10]), 0.0)
    guide = g.pause(guide, 4.0)
    assert guide.step(0).state == "paused"
    guide, ended = g.tick(guide, 60.0)  # a long pause: nothing ends
    assert ended is None and guide.step(0).remaining(60.0) == pytest.approx(6.0)
    guide = g.resume(guide, 60.0)
    guide, ended = g.tick(guide, 65.0)
    assert ended is None and guide.step(0).remaining(65.0) == pytest.approx(1.0)
    guide, ended = g.tick(guide, 66.0)
    assert ended == 0 and guide.step(0).state == "done"
    assert guide.step(0).elapsed(66.0) == pytest.approx(10.0)


def test_skip_a_pending_step_is_skipped_and_a_started_one_shortened() -> None:
    guide = g.skip(g.new_guide([10, 20, 30]), 1.0, "T-01", "patient declined manual work")
    assert states(guide) == ["skipped", "pending", "pending"]
    guide = g.start(guide, 2.0)
    guide = g.skip(guide, 9.0, "T-02", "skin red under the head")
    assert states(guide) == ["skipped", "shortened", "pending"]
    first, second = guide.deviations
    assert (first.step, first.kind, first.operator) == (1, "skipped", "T-01")
    assert first.reason == "patient declined manual work" and first.at_s == 1.0
    assert (second.step, second.kind, second.operator) == (2, "shortened", "T-02")
    assert second.detail == {"planned_s": 20.0, "given_s": 7.0}


def test_a_skip_needs_a_reason_and_refusals_change_nothing() -> None:
    guide = g.new_guide([10])
    with pytest.raises(g.GuideRefused) as refused:
        g.skip(guide, 0.0, "T-01", "   ")
    assert refused.value.rule_id == g.RULE_REASON
    with pytest.raises(g.GuideRefused, match="not running"):
        g.pause(guide, 0.0)
    with pytest.raises(g.GuideRefused, match="not paused"):
        g.resume(guide, 0.0)
    started = g.start(guide, 0.0)
    with pytest.raises(g.GuideRefused, match="already running"):
        g.start(started, 1.0)
    with pytest.raises(g.GuideRefused, match="resume it"):
        g.start(g.pause(started, 1.0), 2.0)
    done, _ = g.tick(started, 10.0)
    for request in (g.start, g.resume, g.pause):
        with pytest.raises(g.GuideRefused, match="plan is finished") as finished:
            request(done, 11.0)
        assert finished.value.rule_id == g.RULE_STATE
    assert guide == g.new_guide([10])


def test_a_cut_duration_is_one_shortening_and_ends_the_step_early() -> None:
    guide = g.start(g.new_guide([60, 10]), 0.0)
    guide = g.adjust_duration(guide, 0, 30, 10.0, "T-01", "patient tired")
    [dev] = guide.deviations
    assert (dev.kind, dev.operator, dev.detail["duration_s"]) == ("shortened", "T-01", [60.0, 30.0])
    guide, ended = g.tick(guide, 29.0)
    assert ended is None
    guide, ended = g.tick(guide, 30.0)
    assert ended == 0 and guide.step(0).state == "shortened"
    assert len(guide.deviations) == 1  # recorded when cut, not again when it ended


def test_lengthening_is_a_settings_change_and_the_past_cannot_be_cut() -> None:
    guide = g.start(g.new_guide([60]), 0.0)
    with pytest.raises(g.GuideRefused) as past:
        g.adjust_duration(guide, 0, 20, 25.0, "T-01", "too late")
    assert past.value.rule_id == g.RULE_DURATION and "skip it" in str(past.value)
    guide = g.adjust_duration(guide, 0, 90, 25.0, "T-01", "good response")
    assert guide.deviations[0].kind == "settings_changed"
    assert guide.step(0).remaining(25.0) == pytest.approx(65.0)
    with pytest.raises(g.GuideRefused, match="already lasts"):
        g.adjust_duration(guide, 0, 90, 26.0, "T-01", "same")


def test_settings_changes_are_recorded_for_unfinished_steps_only() -> None:
    guide = g.new_guide([10, 10])
    guide = g.record_change(guide, 1, 0.0, "T-01", "lower", {"intensity_w_cm2": [1.0, 0.8]})
    assert guide.deviations[0].step == 2 and guide.deviations[0].kind == "settings_changed"
    guide = g.skip(guide, 1.0, "T-01", "not today")
    with pytest.raises(g.GuideRefused, match="skipped: it cannot change"):
        g.record_change(guide, 0, 2.0, "T-01", "late", {})
    with pytest.raises(g.GuideRefused, match="no step 3"):
        g.record_change(guide, 2, 2.0, "T-01", "none", {})


def test_bad_plans_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        g.new_guide([])
    with pytest.raises(ValueError, match="positive"):
        g.new_guide([10, 0])
