"""A room's outputs as the dry-run sees them: modality, unit, and the profile's caps and ERA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sessionconsole.model.combination import Cx3Profile
from sessionconsole.model.modbus_map import ModbusGenericProfile
from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.profile import Us1Profile
from sessionconsole.model.stimulation import Es2Profile
from sessionconsole.model.validation import AnyProfile


@dataclass(frozen=True, slots=True)
class PlannedOutput:
    """One output the kernel judges (named as in core/units.py) and its profile's caps."""

    name: str
    unit: str
    modality: Literal["ultrasound", "stimulation"]
    profile_name: str
    combination: bool  # a CX-3-like unit whose head can be the stimulation electrode
    max_intensity_w_cm2: float | None = None
    max_time_s: int | None = None
    era_cm2: float | None = None
    max_amplitude_ma: float | None = None


def room_outputs(profiles: Mapping[str, AnyProfile]) -> dict[str, PlannedOutput]:
    """Every output of a room: US-1/Modbus `<id>`, ES-2 `<id>.ch1/.ch2`, CX-3 `<id>.us/.stim`."""
    outputs: dict[str, PlannedOutput] = {}
    for unit, p in profiles.items():
        if isinstance(p, Us1Profile | ModbusGenericProfile):
            outputs[unit] = PlannedOutput(
                unit,
                unit,
                "ultrasound",
                p.name,
                False,
                p.limits.max_intensity_w_cm2,
                p.limits.max_time_s,
                p.era_cm2,
            )
        elif isinstance(p, Es2Profile):
            for ch in ("ch1", "ch2"):
                outputs[f"{unit}.{ch}"] = PlannedOutput(
                    f"{unit}.{ch}",
                    unit,
                    "stimulation",
                    p.name,
                    False,
                    max_amplitude_ma=p.limits.max_amplitude_ma,
                )
        elif isinstance(p, Cx3Profile | GenericMqttProfile):
            outputs[f"{unit}.us"] = PlannedOutput(
                f"{unit}.us",
                unit,
                "ultrasound",
                p.name,
                True,
                p.limits.max_intensity_w_cm2,
                p.limits.max_time_s,
                p.era_cm2,
            )
            outputs[f"{unit}.stim"] = PlannedOutput(
                f"{unit}.stim",
                unit,
                "stimulation",
                p.name,
                True,
                max_amplitude_ma=p.limits.max_amplitude_ma,
            )
    return outputs
