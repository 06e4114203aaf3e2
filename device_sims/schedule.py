"""`--faults FILE`: a TOML schedule of test-port requests timed from the READY line.

[[at]]
t_s = 12.0
request = {op = "inject", fault = "overtemp"}

The whole file is checked before the simulator serves (TOML syntax, keys, `t_s`, and each
request as the model's test port would judge it whatever the unit's state: op, fault name,
link mode and its `ms`/`rate`, the quantities `set` may pin and their ranges, `ch`, unit), so a
typo ends the process with a message naming the file and the entry instead of a scripted
fault that silently never happens.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .control import Handler, dispatch
from .link import LINK_MODES, LinkControl

log = logging.getLogger(__name__)

OPS = ("state", "inject", "set", "link", "reboot", "clear")  # SIMULATORS.md's test port
ENTRY_KEYS = ("t_s", "request")


@dataclass(frozen=True)
class ScheduleRules:
    """What one simulator's test port accepts whatever the unit's state.

    `settable`: the quantities `set` may pin, with their ranges. `channels`: the values `ch`
    may take (empty: the model has no `ch`). `needs_channel`: the faults (and "set") that
    must name one.
    """

    faults: Collection[str]
    units: int = 1
    link_modes: Collection[str] = LINK_MODES
    settable: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    channels: Collection[int] = ()
    needs_channel: Collection[str] = ()


def check_request(request: dict[str, Any], rules: ScheduleRules) -> str | None:
    """Why the test port would refuse `request` whatever the unit's state, or None."""
    op = request.get("op")
    if op not in OPS:
        return f"op {op!r} is not one of {list(OPS)}"
    if op == "inject" and request.get("fault") not in rules.faults:
        return f"fault {request.get('fault')!r} is not one of {sorted(rules.faults)}"
    if op == "link":
        return _check_link(request, rules)
    if op == "set":
        problem = _check_set(request, rules)
        if problem is not None:
            return problem
    name = "set" if op == "set" else request.get("fault") if op == "inject" else None
    if "ch" in request or name in rules.needs_channel:
        ch = request.get("ch")
        if isinstance(ch, bool) or ch not in rules.channels:
            return f"ch {ch!r} is not one of {list(rules.channels)}"
    unit = request.get("unit", 0)
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < rules.units:
        return f"unit {unit!r} is not in 0..{rules.units - 1}"
    return None


def _check_link(request: dict[str, Any], rules: ScheduleRules) -> str | None:
    mode = request.get("mode")
    if mode not in rules.link_modes:
        return f"link mode {mode!r} is not one of {list(rules.link_modes)}"
    if mode in LINK_MODES:
        try:  # the test port's own check of `ms` and `rate`, on a link nobody uses
            LinkControl(rng=random.Random(0)).set(request)
        except ValueError as exc:
            return str(exc)
    return None


def _check_set(request: dict[str, Any], rules: ScheduleRules) -> str | None:
    keys = [key for key in request if key not in ("op", "unit", "ch")]
    if not keys:
        return f"set needs one of {sorted(rules.settable)}"
    for key in keys:
        if key not in rules.settable:
            return f"cannot set {key!r}; settable: {sorted(rules.settable)}"
        value, (low, high) = request[key], rules.settable[key]
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            return f"{key} must be a number in {low:g}..{high:g} or null, got {value!r}"
    return None


def load_schedule(path: Path, rules: ScheduleRules) -> list[tuple[float, dict[str, Any]]]:
    """Read and check a fault schedule; raises ValueError naming the file and the bad entry."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--faults {path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"at"})
    if unknown:
        raise ValueError(f"--faults {path}: unknown key(s) {unknown}; entries are [[at]] tables")
    entries = data.get("at", [])
    if not isinstance(entries, list):
        raise ValueError(f"--faults {path}: 'at' must be an array of tables ([[at]])")
    schedule: list[tuple[float, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        where = f"--faults {path}: at[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a table")
        extra = sorted(set(entry) - set(ENTRY_KEYS))
        if extra:
            raise ValueError(f"{where} has unknown key(s) {extra}; expected {list(ENTRY_KEYS)}")
        t_s, request = entry.get("t_s"), entry.get("request")
        if not isinstance(t_s, int | float) or isinstance(t_s, bool) or not math.isfinite(t_s):
            raise ValueError(f"{where}.t_s must be a finite number of seconds, got {t_s!r}")
        if t_s < 0:
            raise ValueError(f"{where}.t_s must be >= 0 (seconds after READY), got {t_s!r}")
        if not isinstance(request, dict):
            raise ValueError(f"{where}.request must be a table, got {request!r}")
        problem = check_request(request, rules)
        if problem is not None:
            raise ValueError(f"{where}.request: {problem}")
        schedule.append((float(t_s), request))
    return sorted(schedule, key=lambda item: item[0])


def start_schedule(
    schedule: list[tuple[float, dict[str, Any]]], handler: Handler
) -> list[asyncio.TimerHandle]:
    """Arm one timer per entry, counted from now (call right after READY)."""
    loop = asyncio.get_running_loop()

    def fire(request: dict[str, Any]) -> None:
        log.info("fault schedule: %s -> %s", request, dispatch(request, handler))

    return [loop.call_later(t_s, fire, request) for t_s, request in schedule]
