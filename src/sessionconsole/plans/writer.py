"""Building a plan from presets on the command line: step specs in, a checked plan file out.

A step is one `--step` value: its kind, then `key=value` pairs separated by commas:

    manual,technique=myofascial_release,region=lumbar,side=bilateral,min=8
    ultrasound,preset=us_chronic_1mhz,output=us1,region=lumbar,side=left,min=8,intensity_w_cm2=1.0
    stimulation,preset=tens_conventional,output=es2.ch1,region=lumbar,side=bilateral,min=15,
        amplitude_ma=25,electrode_area_cm2=25

Durations are `min=` or `s=`; any setting a preset has may be given to override it; notes
with `notes=`. Combined steps (one applicator, two modalities) are written by hand (PLANS.md).
The plan is validated by the same model `plan check` loads, and written with tomlkit (pure
here: the CLI reads the presets and does the file I/O).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import tomlkit
from pydantic import ValidationError

from sessionconsole.model.plan import StimulationValues, TreatmentPlan, UltrasoundValues
from sessionconsole.model.preset import Preset


class StepSpecError(ValueError):
    """A `--step` value that does not describe a step; the message names the step and why."""


_COMMON = {"region", "side", "min", "s", "notes"}
_PARTS: dict[str, tuple[set[str], set[str]]] = {
    # kind: (keys of the step's part, settings keys that override the preset)
    "manual": (set(), set()),
    "ultrasound": (
        {"preset", "output", "treated_area_cm2", "lesion_depth_cm"},
        set(UltrasoundValues.model_fields),
    ),
    "stimulation": (
        {"preset", "output", "amplitude_ma", "electrode_area_cm2"},
        set(StimulationValues.model_fields),
    ),
}
_NUMBERS = {"treated_area_cm2", "lesion_depth_cm", "amplitude_ma", "electrode_area_cm2"}


def parse_step(number: int, spec: str) -> dict[str, Any]:
    """One `--step` value as the plan file's step table; StepSpecError saying what is wrong."""
    kind, *pairs = [part.strip() for part in spec.split(",")]
    if kind not in _PARTS:
        raise StepSpecError(f"step {number}: kind {kind!r} is not one of {', '.join(_PARTS)}")
    part_keys, setting_keys = _PARTS[kind]
    allowed = _COMMON | part_keys | setting_keys | ({"technique"} if kind == "manual" else set())
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise StepSpecError(f"step {number}: {pair!r} is not key=value")
        if key not in allowed:
            raise StepSpecError(
                f"step {number}: {kind} steps take no {key!r} (they take "
                f"{', '.join(sorted(allowed))})"
            )
        values[key.strip()] = value.strip()
    step: dict[str, Any] = {"kind": kind, "duration_s": _duration(number, values)}
    for key in ("region", "side", "notes", "technique"):
        if key in values:
            step[key] = values[key]
    if kind != "manual":
        part: dict[str, Any] = {
            key: _number(number, key, values[key]) if key in _NUMBERS else values[key]
            for key in part_keys
            if key in values
        }
        settings = {k: _scalar(values[k]) for k in setting_keys if k in values}
        if settings:
            part["settings"] = settings
        step[kind] = part
    return step


def _duration(number: int, values: Mapping[str, str]) -> int:
    if ("min" in values) == ("s" in values):
        raise StepSpecError(f"step {number}: give its duration as min=MINUTES or s=SECONDS")
    text = values.get("min") or values["s"]
    amount = _number(number, "duration", text)
    seconds = amount * 60 if "min" in values else amount
    if seconds != int(seconds) or seconds < 1:
        raise StepSpecError(f"step {number}: duration {text!r} is not a whole number of seconds")
    return int(seconds)


def _number(number: int, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise StepSpecError(f"step {number}: {key}={text!r} is not a number")
    return value


def _scalar(text: str) -> int | float | str:
    """A setting's value: an int, a float, or text (a mode such as SYM)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def build_plan(
    pseudonym: str,
    title: str,
    author: str,
    step_specs: Iterable[str],
    presets: Mapping[str, Preset],
    limits: Mapping[str, float] | None = None,
) -> TreatmentPlan:
    """The plan the specs describe; StepSpecError or ValueError (pydantic) saying what is wrong."""
    steps = [parse_step(n, spec) for n, spec in enumerate(step_specs, start=1)]
    for n, step in enumerate(steps, start=1):
        for kind in ("ultrasound", "stimulation"):
            preset_id = step.get(kind, {}).get("preset")
            if preset_id is not None and preset_id not in presets:
                known = ", ".join(i for i, p in presets.items() if p.modality == kind)
                raise StepSpecError(
                    f"step {n}: no {kind} preset {preset_id!r} (there are: {known})"
                )
    data = {
        "pseudonym": pseudonym,
        "title": title,
        "author": author,
        "limits": dict(limits or {}),
        "steps": steps,
    }
    try:
        return TreatmentPlan.model_validate(data)
    except ValidationError as exc:
        lines = [_error_line(err) for err in exc.errors()]
        raise ValueError("the plan is not valid:\n" + "\n".join(lines)) from None


def _error_line(err: Mapping[str, Any]) -> str:
    """`step 2: ultrasound.output: Field required` from a pydantic error."""
    loc = [str(p) for p in err.get("loc", ())]
    if len(loc) >= 3 and loc[0] == "steps" and loc[1].isdigit():
        # loc[2] is the step's kind, the tag pydantic's discriminated union adds
        where = f"step {int(loc[1]) + 1}: " + (".".join(loc[3:]) or "the step")
    else:
        where = ".".join(loc)
    return f"  {where}: {err.get('msg', 'invalid')}"


def plan_toml(plan: TreatmentPlan, made_by: str) -> str:
    """The plan file's text: a header saying how it was made, then the plan."""
    data = plan.model_dump(mode="json", exclude_defaults=True)
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Made with `sessionconsole plan new` {made_by}."))
    doc.add(
        tomlkit.comment("Check it before a session: sessionconsole plan check FILE --room ROOM")
    )
    for key in ("pseudonym", "title", "author"):
        doc[key] = data[key]
    if data.get("limits"):
        doc["limits"] = data["limits"]
    steps = tomlkit.aot()
    for step in data["steps"]:
        steps.append(tomlkit.item({"kind": step["kind"], **step}))  # the kind first, to read
    doc["steps"] = steps
    return tomlkit.dumps(doc)
