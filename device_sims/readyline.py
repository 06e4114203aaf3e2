"""The single `READY {json}` line a simulator prints on stdout once it serves."""

from __future__ import annotations

import json
import sys
from typing import Any


def ready_payload(model: str, units: list[dict[str, Any]], control: str) -> dict[str, Any]:
    """Build the READY object: model, units, first unit's endpoints at top level, control."""
    endpoints = units[0]["endpoints"] if units else {}
    return {"model": model, "units": units, "endpoints": endpoints, "control": control}


def emit_ready(payload: dict[str, Any]) -> None:
    """Print the READY line, flush, then send any further stdout writes to stderr."""
    sys.stdout.write("READY " + json.dumps(payload) + "\n")
    sys.stdout.flush()
    sys.stdout = sys.stderr  # the contract: after READY, stdout carries nothing more


def hostport(host: str, port: int) -> str:
    """Format an endpoint as host:port."""
    return f"{host}:{port}"
