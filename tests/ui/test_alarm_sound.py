"""Bell patterns, audio pause and escalation of `ui/alarm_sound.py`, stepped by hand in time."""

from __future__ import annotations

from dataclasses import dataclass

from sessionconsole.ui.alarm_sound import HIGH, MEDIUM, AlarmSounder, SoundState


@dataclass(frozen=True)
class Alarm:
    id: int
    priority: str
    active: bool = True
    acknowledged: bool = False


def run(
    sounder: AlarmSounder, alarms: list[Alarm], start_s: float, end_s: float, step_s: float = 0.1
) -> tuple[int, SoundState]:
    """Update every `step_s` from start to end; total rings and the last state."""
    total, state = 0, sounder.update(alarms, start_s)
    total += state.rings
    t = start_s
    while t < end_s - 1e-9:
        t = round(t + step_s, 6)
        state = sounder.update(alarms, t)
        total += state.rings
    return total, state


def test_a_high_alarm_rings_its_burst_at_once_and_repeats_until_acknowledged() -> None:
    sounder = AlarmSounder(escalate_after_s=1000)
    first = sounder.update([Alarm(1, "high")], 10.0)
    assert first.rings == 1 and first.sounding == "high"
    rings, _ = run(sounder, [Alarm(1, "high")], 10.0, 10.0 + 3 * HIGH.cycle_s - 0.1)
    assert rings == 3 * len(HIGH.offsets_s) - 1  # the first ring was counted above
    acked, state = run(sounder, [Alarm(1, "high", acknowledged=True)], 40.0, 80.0)
    assert acked == 0 and state.sounding is None and not state.flash_on


def test_a_medium_alarm_rings_a_few_times_then_stays_quiet_but_still_flashes() -> None:
    sounder = AlarmSounder()
    rings, state = run(sounder, [Alarm(2, "medium")], 0.0, 120.0)
    assert rings == MEDIUM.cycles * len(MEDIUM.offsets_s)  # type: ignore[operator]
    assert state.sounding == "medium" and not state.escalated
    flashes = {sounder.update([Alarm(2, "medium")], 120.0 + t / 10).flash_on for t in range(10)}
    assert flashes == {True, False}


def test_low_alarms_never_ring() -> None:
    rings, state = run(AlarmSounder(), [Alarm(3, "low")], 0.0, 60.0)
    assert rings == 0 and state.sounding is None and not state.flash_on


def test_an_unacknowledged_high_alarm_escalates_to_faster_repeats() -> None:
    sounder = AlarmSounder(escalate_after_s=30.0)
    before, state = run(sounder, [Alarm(1, "high")], 0.0, 29.9)
    assert not state.escalated
    after, state = run(sounder, [Alarm(1, "high")], 30.0, 59.9)
    assert state.escalated
    assert after > before * 2  # 8 s cycles before, 3 s cycles after, over the same 30 s


def test_audio_pause_silences_for_two_minutes_at_most_and_a_new_alarm_breaks_through() -> None:
    sounder = AlarmSounder(escalate_after_s=1000, pause_s=120.0)
    assert not sounder.pause_audio(0.0)  # nothing sounds: nothing to pause
    sounder.update([Alarm(1, "high")], 0.0)
    assert sounder.pause_audio(0.5)
    silent, state = run(sounder, [Alarm(1, "high")], 0.6, 60.0)
    assert silent == 0 and state.paused_s_left is not None and state.flash_on
    new = sounder.update([Alarm(1, "high"), Alarm(2, "medium")], 60.1)
    assert new.rings == 1 and new.sounding == "medium"
    silent, state = run(sounder, [Alarm(1, "high")], 60.2, 120.4)
    assert silent == 0
    again, state = run(sounder, [Alarm(1, "high")], 120.6, 140.0)
    assert again > 0 and state.paused_s_left is None


def test_audio_pause_ends_with_the_condition_so_a_recurrence_rings() -> None:
    sounder = AlarmSounder(escalate_after_s=1000)
    sounder.update([Alarm(1, "high")], 0.0)
    sounder.pause_audio(0.1)
    assert sounder.update([], 5.0).paused_s_left is None
    assert sounder.update([Alarm(1, "high")], 6.0).rings == 1


def test_bell_pattern_counts_each_ring_once_across_uneven_updates() -> None:
    times = [0.0, 0.03, 0.7, 0.71, 1.3, 5.0, 8.0, 8.26, 30.0]
    rings = sum(
        HIGH.rings_between(0.0, a, b) for a, b in zip([-1e-9, *times[:-1]], times, strict=True)
    )
    assert rings == HIGH.rings_between(0.0, -1e-9, 30.0) == 4 * len(HIGH.offsets_s)
