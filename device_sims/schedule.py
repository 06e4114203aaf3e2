"""`--faults FILE`: a TOML schedule of test-port requests timed from the READY line.

[[at]]
t_s = 12.0
request = {op = "inject", fault = "overtemp"}
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from pathlib import Path
from typing import Any

from .control import Handler, dispatch

log = logging.getLogger(__name__)


def load_schedule(path: Path) -> list[tuple[float, dict[str, Any]]]:
    """Read and validate a fault schedule; raises ValueError naming the bad entry."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    entries = data.get("at", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'at' must be an array of tables ([[at]])")
    schedule: list[tuple[float, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        t_s = entry.get("t_s") if isinstance(entry, dict) else None
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(t_s, int | float) or isinstance(t_s, bool) or t_s < 0:
            raise ValueError(f"{path}: at[{index}].t_s must be a number >= 0")
        if not isinstance(request, dict):
            raise ValueError(f"{path}: at[{index}].request must be a table")
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
