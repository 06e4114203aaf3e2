"""Ultrasound energy, dose and time: the console's own integration and its predictive stop.

Pure functions over one output's `DeviceState`. Energy is integrated from each new reading
as the unit counts it (ICD US-1): measured intensity x ERA x duty x seconds, only while
RUNNING and coupled. A treatment is what one full configure set up; its energy adds up over
its runs (each start resets the unit's counter, not the treatment).
"""

from __future__ import annotations

from dataclasses import replace

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.safety import rules
from sessionconsole.safety.conditions import Condition
from sessionconsole.safety.types import DeviceLimits, DeviceState, JudgedReading

COUNTER_QUANTUM_J = 1.0  # the unit's counter is whole joules, rounded down
START_MARGIN = 0.05  # a start is refused once the treatment has less than 5 % left


def era_cm2(reading: JudgedReading | None, limits: DeviceLimits) -> float | None:
    """The head's ERA: as the unit reports it (the truth, ICD US-1), else the profile's."""
    if reading is not None and reading.era_cm2 is not None:
        return reading.era_cm2
    return limits.era_cm2


def integrate(dev: DeviceState, reading: JudgedReading | None, limits: DeviceLimits) -> DeviceState:
    """Add the energy and delivering time since the last reading integrated."""
    settings = dev.settings
    if reading is None or not isinstance(settings, UltrasoundSettings):
        return dev
    t = reading.received_mono_s
    last = dev.integrated_at_s
    if last is not None and t <= last:
        return dev  # not a new reading
    energy, delivering = dev.run_energy_j, dev.run_delivering_s
    area = era_cm2(reading, limits)
    power = None
    if reading.counts_energy and area is not None:
        power = max(reading.level_measured, 0.0) * area * settings.duty_pct / 100.0
    # Between two readings, the earlier one's power; from a start to the first reading
    # delivering, that reading's (the unit may have delivered all along: the cautious count).
    since = dev.integrated_power_w if not (dev.run_unseen and power is not None) else power
    if last is not None and since is not None:
        energy += since * (t - last)
        delivering += t - last
    return replace(
        dev,
        run_energy_j=energy,
        run_delivering_s=delivering,
        integrated_at_s=t,
        integrated_power_w=power,
        run_unseen=dev.run_unseen and power is None,
        # The unit restarts its counter when it acts on the start: trusted from the first
        # reading that shows it delivering (a start withdrawn or lost never gets there).
        counter_valid=dev.counter_valid or (dev.run_unseen and power is not None),
    )


def run_energy_j(dev: DeviceState, reading: JudgedReading | None) -> float:
    """This run's energy: the larger of the console's and the unit's count (the cautious)."""
    counter = None if reading is None or not dev.counter_valid else reading.energy_j
    return max(dev.run_energy_j, float(counter) if counter is not None else 0.0)


def treatment_energy_j(dev: DeviceState, reading: JudgedReading | None) -> float:
    """Energy delivered in the current treatment so far."""
    return dev.treatment_base_j + run_energy_j(dev, reading)


def energy_limit_j(
    dev: DeviceState, reading: JudgedReading | None, limits: DeviceLimits
) -> tuple[float, str] | None:
    """The treatment's energy limit and what it is: the plan's dose over the treated area,
    or else (and never above) the settings' own energy plus the allowance. The settings'
    energy is at the highest intensity set in this treatment, so lowering the intensity
    part-way does not make what was delivered at the higher one look like an overdose."""
    settings = dev.settings
    if not isinstance(settings, UltrasoundSettings):
        return None
    area = era_cm2(reading, limits)
    candidates = []
    if area is not None:
        peak = max(settings.intensity_w_cm2, dev.treatment_peak_level)
        own = settings.settings_energy_j(area, peak) * (1.0 + limits.energy_allowance)
        candidates.append((own, f"the settings' energy plus {limits.energy_allowance * 100:.0f} %"))
    planned = settings.dose_limit_j()
    if planned is not None:
        candidates.append(
            (
                planned,
                f"the plan's {settings.max_dose_j_cm2:g} J/cm² over "
                f"{settings.treated_area_cm2:g} cm²",
            )
        )
    return min(candidates, key=lambda c: c[0]) if candidates else None


def start_problem(
    dev: DeviceState, reading: JudgedReading | None, limits: DeviceLimits, tick_period_s: float
) -> str | None:
    """Why the treatment may not start again: what is left of its energy would be passed
    before a stop could reach the unit (its set power over a reading's staleness, a tick and
    the link's latency), or is under 5 % of it."""
    limit = energy_limit_j(dev, reading, limits)
    settings = dev.settings
    if limit is None or not isinstance(settings, UltrasoundSettings):
        return None
    delivered = treatment_energy_j(dev, reading)
    if delivered <= 0.0:
        return None  # nothing delivered yet: a start at 0 W/cm² is raised while running
    area = era_cm2(reading, limits) or 0.0
    power = settings.intensity_w_cm2 * area * settings.duty_pct / 100.0
    reach_s = limits.stale_limit_s + tick_period_s + limits.link_latency_s
    left = limit[0] - delivered
    if left > max(limit[0] * START_MARGIN, power * reach_s):
        return None
    return (
        f"this treatment has delivered {delivered:.1f} J of {limit[0]:.1f} J ({limit[1]}); "
        "what is left would be passed before a stop could take effect: configure a new "
        "treatment to go on"
    )


def conditions(
    device: str,
    dev: DeviceState,
    reading: JudgedReading,
    limits: DeviceLimits,
    now: float,
    tick_period_s: float,
) -> list[Condition]:
    """DOSE_LIMIT (predictive), TREATMENT_TIME and ENERGY_MISMATCH for a fresh reading."""
    settings = dev.settings
    if not isinstance(settings, UltrasoundSettings) or not reading.running:
        return []
    found = []
    limit = energy_limit_j(dev, reading, limits)
    delivered = treatment_energy_j(dev, reading)
    if limit is not None:
        power = dev.integrated_power_w or 0.0
        horizon = max(now - reading.received_mono_s, 0.0) + tick_period_s + limits.link_latency_s
        predicted = delivered + power * horizon
        if predicted > 0.0 and predicted >= limit[0]:
            found.append(
                Condition(
                    rules.DOSE_LIMIT,
                    f"{device}: {delivered:.1f} J delivered, {predicted:.1f} J within "
                    f"{horizon * 1000:.0f} ms, limit {limit[0]:.1f} J ({limit[1]})",
                    physical=True,
                )
            )
    allowed_s = settings.time_s + limits.time_allowance_s + limits.stale_limit_s
    if dev.run_delivering_s > allowed_s:
        found.append(
            Condition(
                rules.TREATMENT_TIME,
                f"{device}: delivering for {dev.run_delivering_s:.1f} s, set time "
                f"{settings.time_s} s (stopped past {allowed_s:.1f} s)",
                physical=True,
            )
        )
    counter, share = reading.energy_j, limits.energy_mismatch
    judged = share is not None and counter is not None and dev.counter_valid
    if judged and share is not None and counter is not None and not dev.energy_mismatch_reported:
        mine = dev.run_energy_j
        gap = abs(counter - mine)
        if gap > share * max(counter, mine) + COUNTER_QUANTUM_J:
            found.append(
                Condition(
                    rules.ENERGY_MISMATCH,
                    f"{device}: the console counts {mine:.1f} J this run, the device "
                    f"{counter} J ({gap / max(counter, mine) * 100:.0f} % apart, alarm beyond "
                    f"{share * 100:.0f} %)",
                    physical=False,
                )
            )
    return found


def _new_run(dev: DeviceState, integrated_at_s: float | None) -> DeviceState:
    """Nothing integrated in the run yet, and no mismatch reported."""
    return replace(
        dev,
        run_energy_j=0.0,
        run_delivering_s=0.0,
        integrated_at_s=integrated_at_s,
        integrated_power_w=None,
        energy_mismatch_reported=False,
    )


def started(dev: DeviceState, reading: JudgedReading | None, now: float) -> DeviceState:
    """A start was sent: the unit's counter restarts from 0; the treatment keeps its energy.
    The run is integrated from now: the first reading's power counts back to the start."""
    base = dev.treatment_base_j + run_energy_j(dev, reading)
    return replace(_new_run(dev, now), treatment_base_j=base, run_unseen=True, counter_valid=False)


def interrupted(dev: DeviceState, reading: JudgedReading | None) -> DeviceState:
    """The unit rebooted, or holds a setpoint the console did not write: the console makes the
    operator configure it again, and that configure continues this treatment (its energy
    still counts) rather than starting a new one. The counter is the unit's, no longer ours."""
    base = dev.treatment_base_j + run_energy_j(dev, reading)
    return replace(
        _new_run(dev, None), treatment_base_j=base, counter_valid=False, carry_treatment=True
    )


def new_treatment(dev: DeviceState) -> DeviceState:
    """A full configure: a new treatment, nothing delivered yet (the counter is last run's);
    after an interruption the console forced, the same treatment goes on."""
    if dev.carry_treatment:
        return replace(_new_run(dev, None), carry_treatment=False, counter_valid=False)
    return replace(
        _new_run(dev, None), treatment_peak_level=0.0, treatment_base_j=0.0, counter_valid=False
    )
