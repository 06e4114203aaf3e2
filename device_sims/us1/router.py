"""Routes a test-port request to unit `request["unit"]` (default 0) of a `--count N` process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..control import ControlError, Handler
from .testport import US1TestPort


def unit_router(testports: Sequence[US1TestPort]) -> Handler:
    """Build the one control-port handler serving every unit's test port."""

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        unit = request.get("unit", 0)
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < len(testports):
            known = "0" if len(testports) == 1 else f"0..{len(testports) - 1}"
            raise ControlError(f"unknown unit {unit!r}: this simulator runs unit {known}")
        return testports[unit].handle(request)

    return handle
