"""The shared command tracker, with time passed in: every path a command can take."""

from __future__ import annotations

from sessionconsole.drivers.tracking import HISTORY, CommandTracker, SetpointWatch


def test_acknowledged_then_confirmed_by_a_reading_that_shows_the_effect() -> None:
    tracker = CommandTracker()
    record = tracker.request("set", {"v": 5}, 0.0, confirm=lambda r: r == 5)
    assert record.state == "requested" and record.open
    tracker.acknowledge(record, 0.1)
    assert record.state == "acknowledged" and record.acknowledged_mono_s == 0.1
    tracker.observe(4, 0.2)
    assert record.state == "acknowledged"
    tracker.observe(5, 0.3)
    assert (record.state, record.confirmed_mono_s, record.open) == ("confirmed", 0.3, False)


def test_without_a_confirmation_test_the_acknowledgement_ends_it() -> None:
    tracker = CommandTracker()
    record = tracker.request("configure", {}, 0.0)
    tracker.acknowledge(record, 0.05)
    assert (record.state, record.confirmed_mono_s) == ("confirmed", 0.05)


def test_refused_and_late_acknowledgements_change_nothing() -> None:
    tracker = CommandTracker()
    record = tracker.request("start", {}, 0.0, confirm=lambda r: True)
    tracker.refuse(record, "NOCFG", "not configured")
    tracker.acknowledge(record, 0.1)
    tracker.observe(None, 0.2)
    assert (record.state, record.error, record.detail) == ("refused", "NOCFG", "not configured")


def test_timeouts_for_the_acknowledgement_and_for_the_confirmation() -> None:
    tracker = CommandTracker(ack_timeout_s=1.0, confirm_timeout_s=2.0)
    silent = tracker.request("a", {}, 0.0)
    unseen = tracker.request("b", {}, 0.0, confirm=lambda r: False)
    tracker.acknowledge(unseen, 0.5)
    assert tracker.expire(1.0) == []  # not before the deadline
    assert tracker.expire(1.01) == [silent] and silent.state == "timed_out"
    assert tracker.expire(2.5) == []
    assert tracker.expire(2.51) == [unseen] and unseen.state == "unconfirmed"
    assert tracker.expire(10.0) == []  # each ends once


def test_a_lost_link_ends_every_open_command_and_ids_are_unique() -> None:
    tracker = CommandTracker(first_id=40)
    done = tracker.request("x", {}, 0.0)
    tracker.acknowledge(done, 0.0)
    open_ = [tracker.request("y", {}, 0.0) for _ in range(3)]
    tracker.lose_open()
    assert [r.state for r in open_] == ["lost"] * 3 and done.state == "confirmed"
    assert [r.id for r in tracker.values()] == [40, 41, 42, 43]


def test_history_is_bounded_oldest_first() -> None:
    tracker = CommandTracker()
    for i in range(HISTORY + 10):
        tracker.request("x", {"i": i}, float(i))
    assert len(tracker) == HISTORY
    assert next(tracker.values()).args == {"i": 10}
    assert tracker.get(1) is None and tracker.get(HISTORY + 10) is not None


def test_setpoint_watch_counts_each_foreign_value_once_and_forgets_at_reboot() -> None:
    watch = SetpointWatch(tolerance=0.005)
    assert watch.check({"i": 1.5}) == []  # nothing written yet: nothing to compare
    watch.wrote("i", 1.0)
    assert watch.check({"i": 1.004}) == []  # within tolerance
    assert watch.check({"i": 1.5}) == [("i", 1.5, 1.0)]
    assert watch.check({"i": 1.5}) == []  # the same value is not counted again
    assert watch.check({"i": 1.7}) == [("i", 1.7, 1.0)]  # a new value is
    assert watch.mismatches == 2
    watch.forget()
    assert watch.check({"i": 0.0}) == [] and watch.mismatches == 2
