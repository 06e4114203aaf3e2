"""Console ramp shaping: an output's level rises in steps no faster than its limit, never jumps.

Pure functions over one output's `DeviceState`. Decreases go out at once (a lower level is
always safe); increases go out a step at a time, each step after the last has had time to
take effect at the allowed rate. The units ramp too (ICDs); the console's shaping holds the
profile's rate whatever the unit does, and covers units that would jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.safety.types import DeviceLimits, DeviceState, OutputSettings

STEP_S = 0.1  # aim for a step every 100 ms (slower when the unit's resolution needs it)


@dataclass(frozen=True, slots=True)
class Step:
    """One level write (None: nothing to write now), and the output's state after it."""

    level: float | None
    dev: DeviceState


def step_size(limits: DeviceLimits, rate: float) -> float:
    """The level added per step: the rate over 100 ms, a whole number of the unit's steps."""
    unit = limits.level_step
    return max(unit, math.floor(rate * STEP_S / unit + 1e-9) * unit)


def _next(limits: DeviceLimits, rate: float, sent: float, goal: float) -> float:
    return min(goal, round(sent + step_size(limits, rate), 6))


def change_level(
    limits: DeviceLimits, dev: DeviceState, current: float, goal: float, now: float
) -> Step:
    """The operator asked a running output for `goal` while it is at `current` (last sent)."""
    rate = limits.max_ramp_per_s
    if goal == current:
        return Step(None, replace(dev, level_goal=None))  # already there (a rise, if any, ends)
    if rate is None or goal < current:
        return Step(goal, replace(dev, level_goal=None, level_sent=goal, level_sent_s=now))
    last = dev.level_sent_s
    if last is not None and now - last < step_size(limits, rate) / rate - 1e-9:
        # A step went out less than a step's time ago (or the unit's own start ramp is still
        # running): the new goal waits for `due`, however often it is asked for.
        return Step(None, replace(dev, level_goal=goal))
    first = _next(limits, rate, current, goal)
    pending = goal if first < goal else None
    return Step(first, replace(dev, level_goal=pending, level_sent=first, level_sent_s=now))


def start_level(
    limits: DeviceLimits, dev: DeviceState, goal: float, ramp_s: float, now: float
) -> Step | None:
    """At a start the unit ramps from 0 to its setpoint over `ramp_s` by itself. If that is
    steeper than the rate, the setpoint goes out lower first and the console steps it up
    once the unit's own ramp is over; None when the unit's ramp is within the rate."""
    rate = limits.max_ramp_per_s
    if rate is None or goal <= 0.0 or (ramp_s > 0 and goal / ramp_s <= rate):
        return None
    unit = limits.level_step
    first = math.floor(rate * ramp_s / unit + 1e-9) * unit
    return Step(first, replace(dev, level_goal=goal, level_sent=first, level_sent_s=now + ramp_s))


def due(limits: DeviceLimits, dev: DeviceState, now: float) -> Step | None:
    """The next step up toward the goal, if one is due now."""
    rate = limits.max_ramp_per_s
    goal, sent, sent_s = dev.level_goal, dev.level_sent, dev.level_sent_s
    if rate is None or goal is None or sent is None or sent_s is None:
        return None
    size = step_size(limits, rate)
    if now - sent_s < size / rate - 1e-9:
        return None
    level = _next(limits, rate, sent, goal)
    pending = goal if level < goal else None
    return Step(level, replace(dev, level_goal=pending, level_sent=level, level_sent_s=now))


def stopped(dev: DeviceState) -> DeviceState:
    """The output stopped: nothing more to step up. A rise it cut short leaves the output
    set to the level it reached (what the unit holds), not to the goal."""
    settings = dev.settings
    if dev.level_goal is not None and dev.level_sent is not None and settings is not None:
        settings = with_level(settings, dev.level_sent)
    return replace(dev, settings=settings, level_goal=None, level_sent_s=None)


def with_level(settings: OutputSettings, level: float) -> OutputSettings:
    """The settings with another output level (intensity or peak amplitude)."""
    if isinstance(settings, UltrasoundSettings):
        return settings.model_copy(update={"intensity_w_cm2": level})
    return settings.model_copy(update={"amplitude_ma": level})
