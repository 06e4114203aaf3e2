"""Profile validation that names file, field, bad value and what is allowed, one line each."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ValidationError

from sessionconsole.model.combination import Cx3Profile
from sessionconsole.model.modbus_map import MAP_ERROR, ModbusGenericProfile
from sessionconsole.model.mqtt_map import GenericMqttProfile, MappingProblem
from sessionconsole.model.profile import Us1Profile
from sessionconsole.model.stimulation import Es2Profile

AnyProfile = Us1Profile | ModbusGenericProfile | Es2Profile | Cx3Profile | GenericMqttProfile

PROFILE_KINDS: dict[str, type[BaseModel]] = {
    "us1": Us1Profile,
    "es2": Es2Profile,
    "cx3": Cx3Profile,
    "mqtt_generic": GenericMqttProfile,
    "modbus_generic": ModbusGenericProfile,
}


def validate_profile_file(path: Path) -> list[str]:
    """Every problem of one profile file as a printable line; an empty list when valid."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror or exc}"]
    except tomllib.TOMLDecodeError as exc:
        return [f"{path}: not valid TOML: {exc}"]
    kind = data.get("kind")
    model = PROFILE_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        allowed = ", ".join(sorted(PROFILE_KINDS))
        return [f"{path}: kind = {kind!r}: unknown device kind (allowed: {allowed})"]
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [line for err in exc.errors() for line in _lines(path, err)]
    return []


def _lines(path: Path, err: object) -> list[str]:
    """One line per problem; a register map error carries several, each with its own place."""
    assert isinstance(err, dict)
    if err.get("type") != MAP_ERROR:
        return [_line(path, err)]
    base = [str(p) for p in err.get("loc", ())]
    return [
        f"{path}: {'.'.join([*base, where])} = {value!r}: {reason}"
        for where, value, reason in err["ctx"]["problems"]
    ]


def _line(path: Path, err: object) -> str:
    assert isinstance(err, dict)
    where = ".".join(str(p) for p in err.get("loc", ())) or "(file)"
    problem = (err.get("ctx") or {}).get("error")
    if isinstance(problem, MappingProblem):  # a mapping check naming its own field
        field = problem.field if where == "(file)" else f"{where}.{problem.field}"
        return f"{path}: {field}: {problem.reason}"
    if err.get("type") == "missing":
        return f"{path}: {where}: required field is missing"
    if err.get("type") == "extra_forbidden":
        return f"{path}: {where} = {err.get('input')!r}: unknown field (not part of a profile)"
    return f"{path}: {where} = {err.get('input')!r}: {err.get('msg')}"
