"""`--faults FILE`: a TOML schedule of test-port requests timed from the READY line.

[[at]]
t_s = 12.0
request = {op = "inject", fault = "overtemp"}

The whole file is checked before the simulator serves (TOML syntax, keys, `t_s`, each
request's op, fault name, link mode and unit), so a typo ends the process with a message naming
the file and the entry instead of a scripted fault that silently never happens.
"""

from __future__ import annotations

import asyncio
import logging
import math
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .control import Handler, dispatch
from .link import LINK_MODES

log = logging.getLogger(__name__)

OPS = ("state", "inject", "set", "link", "reboot", "clear")  # SIMULATORS.md's test port
ENTRY_KEYS = ("t_s", "request")


@dataclass(frozen=True)
class ScheduleRules:
    """What one simulator's test port accepts: fault names, link modes, number of units."""

    faults: Collection[str]
    units: int = 1
    link_modes: Collection[str] = LINK_MODES


def check_request(request: dict[str, Any], rules: ScheduleRules) -> str | None:
    """Why the test port would refuse `request` whatever the unit's state, or None."""
    op = request.get("op")
    if op not in OPS:
        return f"op {op!r} is not one of {list(OPS)}"
    if op == "inject" and request.get("fault") not in rules.faults:
        return f"fault {request.get('fault')!r} is not one of {sorted(rules.faults)}"
    if op == "link" and request.get("mode") not in rules.link_modes:
        return f"link mode {request.get('mode')!r} is not one of {list(rules.link_modes)}"
    unit = request.get("unit", 0)
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < rules.units:
        return f"unit {unit!r} is not in 0..{rules.units - 1}"
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
