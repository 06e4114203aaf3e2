"""Form text to validated settings, with one readable reason when it does not fit (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup

M = TypeVar("M", bound=BaseModel)


class SettingsProblem(ValueError):
    """A form value that is not a number, or settings the model refuses (field and reason)."""


def _number(values: Mapping[str, str], key: str, kind: type[int] | type[float]) -> int | float:
    text = values[key].strip()
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsProblem(f"{key.replace('_', ' ')} '{text}' must be {what}") from None


def _validated(model: type[M], data: dict[str, object]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or model.__name__
        raise SettingsProblem(f"{field}: {first['msg']}") from None


def ultrasound_settings(values: Mapping[str, str]) -> UltrasoundSettings:
    """From the form: frequency_khz and duty_pct (choices), intensity_w_cm2, minutes."""
    minutes = _number(values, "minutes", float)
    return _validated(
        UltrasoundSettings,
        {
            "frequency_khz": int(values["frequency_khz"]),
            "intensity_w_cm2": float(_number(values, "intensity_w_cm2", float)),
            "duty_pct": int(values["duty_pct"]),
            "time_s": round(minutes * 60),
        },
    )


def channel_setup(values: Mapping[str, str]) -> ChannelSetup:
    """From the form: mode, freq_hz, pw_us, on_s, off_s, ramp_s and amplitude_ma; and where
    the electrodes are, each left empty when not given (electrode_area_cm2: the profile's
    pads; electrode_region, electrode_side)."""
    waveform = {
        key: _number(values, key, int) for key in ("freq_hz", "pw_us", "on_s", "off_s", "ramp_s")
    }
    placement: dict[str, object] = {}
    if values.get("electrode_area_cm2", "").strip():
        placement["electrode_area_cm2"] = float(_number(values, "electrode_area_cm2", float))
    for key in ("electrode_region", "electrode_side"):
        if values.get(key, "").strip():
            placement[key] = values[key].strip()
    return _validated(
        ChannelSetup,
        {
            "waveform": {"mode": values["mode"], **waveform},
            "amplitude_ma": float(_number(values, "amplitude_ma", float)),
            **placement,
        },
    )
