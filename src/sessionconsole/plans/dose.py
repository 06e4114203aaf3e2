"""Dose helper (pure): ultrasound treatment time, intensity at depth, energy and dose; stimulation
current density. Results are suggestions a therapist accepts or changes; each formula's source
is in its docstring ("REF" = CLINICAL-REFERENCE.md)."""

from __future__ import annotations

from sessionconsole.model.stimulation import (
    current_density_ma_cm2,
    dc_density_ma_cm2,
)

__all__ = ["current_density_ma_cm2", "dc_density_ma_cm2"]  # shared with the kernel

HALF_VALUE_DEPTH_CM: dict[int, float] = {1000: 4.0, 3000: 2.5}
"""Depth at which intensity halves, by frequency in kHz (REF Parameters: 4.0 / 2.5 cm)."""
CURRENT_DENSITY_ATTENTION_MA_CM2 = 2.0
"""Above this rms density an electrode needs attention (REF: AS 60601.2.10:2018; Enraf-Nonius)."""
DC_DENSITY_ADVICE_MA_CM2 = 0.2
"""Maker's advice for a monophasic (DC) component (REF: Enraf-Nonius manual)."""
TREATMENT_AREA_ERA_MULTIPLES = (2.0, 4.0)
"""Treat an area of 2-4 x ERA (REF Parameters: "treat 2-4 x ERA")."""


def treatment_time_s(treatment_area_cm2: float, era_cm2: float, duty_pct: int) -> int:
    """Suggested ultrasound time, Watson's rule: (area / ERA) x 1 min x pulse factor.

    REF Parameters ("Watson time"): the pulse factor is 100 / duty (1:4 = 20 % -> x5). The
    rule is a rule of thumb, not a dose: the result is rounded to whole seconds.
    Example: 10 cm2 with a 5 cm2 head at 20 % -> 2 x 60 s x 5 = 600 s.
    """
    _positive(treatment_area_cm2=treatment_area_cm2, era_cm2=era_cm2, duty_pct=duty_pct)
    return round(treatment_area_cm2 / era_cm2 * 60.0 * (100.0 / duty_pct))


def area_in_era_range(treatment_area_cm2: float, era_cm2: float) -> bool:
    """Whether the treated area is 2-4 x ERA (REF: "treat 2-4 x ERA")."""
    low, high = TREATMENT_AREA_ERA_MULTIPLES
    return low * era_cm2 <= treatment_area_cm2 <= high * era_cm2


def intensity_at_depth(surface_w_cm2: float, depth_cm: float, frequency_khz: int) -> float:
    """Intensity left at a depth: I x 0.5 ** (depth / half-value depth).

    REF Parameters: half-value depth 4.0 cm at 1 MHz, 2.5 cm at 3 MHz (exponential
    attenuation through soft tissue; the halving law itself is what a half-value depth means).
    Example: 1.0 W/cm2 at 1 MHz, 4 cm deep -> 0.5 W/cm2.
    """
    return float(surface_w_cm2 * 0.5 ** (depth_cm / _hvd(frequency_khz)))


def setpoint_for_lesion(lesion_w_cm2: float, depth_cm: float, frequency_khz: int) -> float:
    """The surface intensity that leaves lesion_w_cm2 at depth_cm (the inverse of the above)."""
    return float(lesion_w_cm2 * 2.0 ** (depth_cm / _hvd(frequency_khz)))


def energy_j(intensity_w_cm2: float, era_cm2: float, duty_pct: int, time_s: float) -> float:
    """Delivered energy E = I x ERA x duty x t (REF Parameters)."""
    return intensity_w_cm2 * era_cm2 * duty_pct / 100.0 * time_s


def dose_j_cm2(energy: float, treatment_area_cm2: float) -> float:
    """Dose = energy / treated area (REF Parameters)."""
    _positive(treatment_area_cm2=treatment_area_cm2)
    return energy / treatment_area_cm2


def _hvd(frequency_khz: int) -> float:
    try:
        return HALF_VALUE_DEPTH_CM[frequency_khz]
    except KeyError:
        raise ValueError(
            f"no half-value depth for {frequency_khz} kHz (known: 1000, 3000)"
        ) from None


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be above 0, got {value}")
