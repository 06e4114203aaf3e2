"""Where stimulation electrodes are: current density, DC density and the current's path.

Pure functions of a channel setup and the output's limits (CLINICAL-REFERENCE "Console
conventions for rms current"): refusals before anything is sent, and the warnings a
configured setup keeps raised while it stands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sessionconsole.model.stimulation import (
    ChannelSetup,
    current_density_ma_cm2,
    dc_density_ma_cm2,
)
from sessionconsole.safety import rules
from sessionconsole.safety.conditions import Condition
from sessionconsole.safety.types import DeviceLimits

MAX_RAMP_S = 10  # the units' longest ramp_s (ICD ES-2, CX-3)


def electrode_area(setup: ChannelSetup, limits: DeviceLimits) -> tuple[float, str] | None:
    """The area the current spreads over, and what it is; None when nothing gives one.

    In combination mode the electrode is the ultrasound head, so its ERA counts (the smaller
    of it and a given pad area: the more cautious one). Otherwise the setup's area, else the
    profile's usual pads.
    """
    if setup.electrode == "US_HEAD" and limits.head_era_cm2 is not None:
        if setup.electrode_area_cm2 is not None and setup.electrode_area_cm2 < limits.head_era_cm2:
            return setup.electrode_area_cm2, "electrode"
        return limits.head_era_cm2, "the ultrasound head's ERA"
    if setup.electrode_area_cm2 is not None:
        return setup.electrode_area_cm2, "electrode"
    if limits.electrode_area_cm2 is not None:
        return limits.electrode_area_cm2, "the profile's electrode"
    return None


def setup_problem(setup: ChannelSetup, limits: DeviceLimits) -> tuple[str, str] | None:
    """Why this setup's electrodes may not be used (rule id, reason), if at all."""
    if setup.electrode == "US_HEAD" and limits.head_era_cm2 is None:
        return "WRONG_ELECTRODE", "has no ultrasound head to stimulate through (US_HEAD)"
    area = electrode_area(setup, limits)
    if area is None:
        return "NO_ELECTRODE_AREA", (
            "electrode area unknown: give electrode_area_cm2 (or set the profile's "
            "limits.electrode_area_cm2), so current density can be checked"
        )
    cap = limits.max_density
    value, what = area
    density = current_density_ma_cm2(setup.waveform, setup.amplitude_ma, value)
    if cap is not None and density > cap.value:
        return rules.SETPOINT_LIMIT.id, (
            f"{setup.amplitude_ma:g} mA peak over {value:g} cm² ({what}) is {density:.2f} mA "
            f"rms/cm², above {cap.value:g} mA rms/cm² ({cap.source})"
        )
    return _cycle_ramp_problem(setup, limits)


def _cycle_ramp_problem(setup: ChannelSetup, limits: DeviceLimits) -> tuple[str, str] | None:
    """With on/off cycles every on phase ramps from 0 in `ramp_s`: the console cannot shape
    that, so a ramp steeper than the profile's rate is refused."""
    rate = limits.max_ramp_per_s
    wave = setup.waveform
    cycling = wave.on_s > 0 and wave.off_s > 0
    if rate is None or not cycling or setup.amplitude_ma <= 0.0:
        return None
    if wave.ramp_s > 0 and setup.amplitude_ma / wave.ramp_s <= rate:
        return None
    needed = math.ceil(setup.amplitude_ma / rate - 1e-9)
    steep = "jumps" if wave.ramp_s == 0 else f"rises {setup.amplitude_ma / wave.ramp_s:.1f} mA/s"
    remedy = (
        f"make ramp_s at least {needed} s or lower the amplitude"
        if needed <= MAX_RAMP_S
        else f"lower the amplitude to {rate * MAX_RAMP_S:g} mA or less (ramp_s is at most "
        f"{MAX_RAMP_S} s)"
    )
    return rules.SETPOINT_LIMIT.id, (
        f"with on/off cycles every on phase ramps to {setup.amplitude_ma:g} mA over ramp_s "
        f"{wave.ramp_s} s: it {steep}, above the profile's {rate:g} mA/s; {remedy}"
    )


def density_conditions(device: str, setup: ChannelSetup, limits: DeviceLimits) -> list[Condition]:
    """Warnings a configured setup holds raised: rms density needing attention, DC advice."""
    area = electrode_area(setup, limits)
    if area is None:
        return []
    value, what = area
    conditions = []
    density = current_density_ma_cm2(setup.waveform, setup.amplitude_ma, value)
    if density > limits.density_warning_ma_cm2:
        conditions.append(
            Condition(
                rules.CURRENT_DENSITY,
                f"{device}: {density:.2f} mA rms/cm² over {value:g} cm² ({what}), above "
                f"{limits.density_warning_ma_cm2:g} mA rms/cm²",
                physical=True,
            )
        )
    dc = dc_density_ma_cm2(setup.waveform, setup.amplitude_ma, value)
    if dc is not None and dc > limits.dc_density_advice_ma_cm2:
        conditions.append(
            Condition(
                rules.DC_DENSITY,
                f"{device}: monophasic, {dc:.3f} mA/cm² DC over {value:g} cm² ({what}), above "
                f"the advised {limits.dc_density_advice_ma_cm2:g} mA/cm²",
                physical=True,
            )
        )
    return conditions


def transthoracic_problem(
    device: str,
    setup: ChannelSetup,
    others: Mapping[str, ChannelSetup],
    thoracic: Mapping[str, str],
) -> str | None:
    """Why this setup, with the other stimulation outputs' setups, could drive current across
    the chest, if it could.

    Safest reading of the issue: electrodes of every stimulation output of the session count
    together (one device or several), since the path between outputs on one patient is not
    known. Across the thorax means front and back (e.g. anterior thorax and upper back), or
    left and right (a bilateral placement, or one output on each side). A thoracic placement
    without a side cannot be judged and is refused too.
    """
    region = setup.electrode_region
    if region is None or region not in thoracic:
        return None
    if setup.electrode_side is None:
        return (
            f"electrodes on {setup.electrode_region} need electrode_side, so the console can "
            "check that no current crosses the thorax"
        )
    if setup.electrode_side == "bilateral":
        return (
            f"electrodes on both sides of {setup.electrode_region}: current would cross the thorax"
        )
    for other, o in others.items():
        if o.electrode_region is None or o.electrode_region not in thoracic or other == device:
            continue
        place = f"{other} on {o.electrode_region} ({o.electrode_side or 'side not given'})"
        if thoracic[o.electrode_region] != thoracic[region]:
            return (
                f"on {setup.electrode_region} with {place}: front and back of the thorax, "
                "current could cross the chest"
            )
        if {o.electrode_side, setup.electrode_side} == {"left", "right"}:
            return (
                f"on the {setup.electrode_side} with {place}: both sides of the thorax, "
                "current could cross the chest"
            )
    return None
