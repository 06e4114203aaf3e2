"""Clinical protocol presets (config/protocols/*.toml): each value a clinical range with its source.

A preset gives ranges, not device settings: `plans/presets.py` resolves each range to a value
the unit can take (its steps per the ICDs) and says when the range fell between two steps.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sessionconsole.model.stimulation import StimMode

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class ParamRange(BaseModel):
    """One parameter's clinical range, the value preferred inside it, and the range's source."""

    model_config = _STRICT

    min: float
    max: float
    preferred: float
    source: str = Field(min_length=1, description='a citation, or "unsourced (general knowledge)"')
    note: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if not self.min <= self.preferred <= self.max:
            raise ValueError(
                f"need min <= preferred <= max, got {self.min:g} <= {self.preferred:g} "
                f"<= {self.max:g}"
            )
        return self


class UltrasoundPreset(BaseModel):
    """An ultrasound protocol: frequency (depth), duty cycle and intensity at the lesion."""

    model_config = _STRICT

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)
    modality: Literal["ultrasound"]
    source: str = Field(min_length=1)
    note: str = ""
    frequency_khz: ParamRange
    duty_pct: ParamRange
    intensity_w_cm2: ParamRange = Field(description="intensity at the lesion (reference's ranges)")


class StimulationPreset(BaseModel):
    """A stimulation protocol: the ES-2/CX-3 mode and a range for each waveform value."""

    model_config = _STRICT

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)
    modality: Literal["stimulation"]
    source: str = Field(min_length=1)
    note: str = ""
    unavailable: str | None = Field(
        default=None, description="why no reference unit can deliver it (then no values given)"
    )
    mode: StimMode | None = None
    freq_hz: ParamRange | None = None
    pw_us: ParamRange | None = None
    on_s: ParamRange | None = None
    off_s: ParamRange | None = None
    ramp_s: ParamRange | None = None

    @model_validator(mode="after")
    def _deliverable_or_why_not(self) -> StimulationPreset:
        if self.unavailable is None and (
            self.mode is None or self.freq_hz is None or self.pw_us is None
        ):
            raise ValueError("a deliverable preset needs mode, freq_hz and pw_us")
        return self


Preset = UltrasoundPreset | StimulationPreset


class PresetFile(BaseModel):
    """One file of the library: a list of presets."""

    model_config = _STRICT

    presets: list[Annotated[Preset, Field(discriminator="modality")]] = Field(min_length=1)


def load_presets(folder: Path) -> dict[str, Preset]:
    """Every preset of every *.toml in the folder by id; an id used twice is an error."""
    presets: dict[str, Preset] = {}
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as fh:
            data = PresetFile.model_validate(tomllib.load(fh))
        for preset in data.presets:
            if preset.id in presets:
                raise ValueError(f"{path}: preset id {preset.id!r} is defined twice")
            presets[preset.id] = preset
    return presets
