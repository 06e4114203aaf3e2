"""Resolve a preset's clinical ranges to unit values, saying where a range fell between steps.

Pure: preset in, settings out. A range with no unit value inside it is a problem, never clipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import get_args

from sessionconsole.model.preset import ParamRange, StimulationPreset, UltrasoundPreset
from sessionconsole.model.settings import UltrasoundDutyPct, UltrasoundFrequencyKhz


@dataclass(frozen=True, slots=True)
class Steps:
    """The values a unit accepts for one setting: a list of allowed values, or low..high by step."""

    low: float
    high: float
    step: float = 1.0
    values: tuple[float, ...] | None = None

    def inside(self, lo: float, hi: float) -> list[float]:
        """Every allowed value in [lo, hi] (a continuous range: its end points and grid values)."""
        lo, hi = max(lo, self.low), min(hi, self.high)
        if lo > hi:
            return []
        if self.values is not None:
            return [v for v in self.values if lo <= v <= hi]
        first = math.ceil(round(lo / self.step, 9)) * self.step
        last = math.floor(round(hi / self.step, 9)) * self.step
        return [] if first > last + 1e-12 else [round(first, 6), round(last, 6)]

    def nearest(self, target: float, lo: float, hi: float) -> float | None:
        """The allowed value in [lo, hi] closest to target (ties: the lower), or None."""
        candidates = self.inside(lo, hi)
        if not candidates:
            return None
        if self.values is None:  # a grid: snap the target, then keep it inside [lo, hi]
            snapped = round(round(target / self.step) * self.step, 6)
            return min(max(snapped, candidates[0]), candidates[-1])
        return min(candidates, key=lambda v: (abs(v - target), v))


# Device steps from the ICDs (US-1 registers 0-2, CX-3 configure_us; ES-2 CFG, CX-3
# configure_stim). tests/plans/test_presets.py checks them against the settings models.
ULTRASOUND_STEPS: dict[str, Steps] = {
    "frequency_khz": Steps(
        1000, 3000, values=tuple(float(v) for v in get_args(UltrasoundFrequencyKhz))
    ),
    "duty_pct": Steps(10, 100, values=tuple(float(v) for v in get_args(UltrasoundDutyPct))),
    "intensity_w_cm2": Steps(0.0, 3.0, step=0.01),
}
STIMULATION_STEPS: dict[str, Steps] = {
    "freq_hz": Steps(1, 250),
    "pw_us": Steps(5, 400),
    "on_s": Steps(0, 60),
    "off_s": Steps(0, 60),
    "ramp_s": Steps(0, 10),
}


@dataclass(frozen=True, slots=True)
class Resolved:
    """A preset turned into unit values, with a note wherever the unit's steps decided."""

    preset_id: str
    values: dict[str, float]
    notes: tuple[str, ...]
    problems: tuple[str, ...]


def resolve_param(name: str, rng: ParamRange, steps: Steps) -> tuple[float | None, str | None]:
    """One range to one unit value: the preferred value if the unit takes it, else the nearest
    value inside the range (with a note saying so); None with the reason when none fits."""
    value = steps.nearest(rng.preferred, rng.min, rng.max)
    span = f"{rng.min:g}-{rng.max:g}" if rng.min != rng.max else f"{rng.min:g}"
    if value is None:
        allowed = _describe(steps)
        return None, f"{name}: clinical range {span} has no value the unit takes ({allowed})"
    if not math.isclose(value, rng.preferred, abs_tol=1e-9):
        return value, (
            f"{name}: clinical range {span} with {rng.preferred:g} preferred; the unit takes "
            f"{_describe(steps)}, so {value:g} (the unit's value inside the range nearest to it)"
        )
    if steps.values is not None and not {rng.min, rng.max} <= set(steps.values):
        inside = "/".join(f"{v:g}" for v in steps.inside(rng.min, rng.max))
        return value, (
            f"{name}: clinical range {span} falls between the unit's steps "
            f"({_describe(steps)}); {value:g} chosen from {inside} inside the range"
        )
    return value, None


def _describe(steps: Steps) -> str:
    if steps.values is not None:
        return "/".join(f"{v:g}" for v in steps.values)
    return f"{steps.low:g}-{steps.high:g} in steps of {steps.step:g}"


def resolve_ultrasound(preset: UltrasoundPreset) -> Resolved:
    """Frequency, duty and intensity of an ultrasound preset on a US-1/CX-3 (ICD steps)."""
    ranges = {
        "frequency_khz": preset.frequency_khz,
        "duty_pct": preset.duty_pct,
        "intensity_w_cm2": preset.intensity_w_cm2,
    }
    return _resolve(preset.id, ranges, ULTRASOUND_STEPS)


def resolve_stimulation(preset: StimulationPreset) -> Resolved:
    """Waveform values of a stimulation preset on an ES-2/CX-3 (ICD ranges, whole numbers)."""
    if preset.unavailable is not None:
        return Resolved(preset.id, {}, (), (f"preset cannot run: {preset.unavailable}",))
    ranges = {name: rng for name in STIMULATION_STEPS if (rng := getattr(preset, name)) is not None}
    return _resolve(preset.id, ranges, STIMULATION_STEPS)


def _resolve(preset_id: str, ranges: dict[str, ParamRange], steps: dict[str, Steps]) -> Resolved:
    values: dict[str, float] = {}
    notes: list[str] = []
    problems: list[str] = []
    for name, rng in ranges.items():
        value, remark = resolve_param(name, rng, steps[name])
        if value is None:
            problems.append(remark or name)
            continue
        values[name] = value
        if remark is not None:
            notes.append(remark)
    return Resolved(preset_id, values, tuple(notes), tuple(problems))
