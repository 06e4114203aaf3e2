"""Smoke test of `bench/sim_cost.py`: every model's series runs, briefly, against real simulators.

It keeps the bench from rotting (a changed READY line, test-port schema or command) and checks
what the "running" figure rests on: after the series all 32 units of each model still run
every output, so the heartbeats the bench feeds over each unit's own protocol arrive (the
settle time is longer than the 1000 ms watchdog). The CPU figures themselves are not judged:
the machine is shared. About 15 s on a quiet box.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import IO

from sessionconsole.testing.mqtt import Mosquitto

BENCH = Path(__file__).resolve().parents[1] / "bench"


def sim_cost() -> ModuleType:
    """The bench as its scripts see each other: by module name from `bench/`."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("sim_cost")


def test_every_model_runs_32_fed_units_and_reports_sane_figures(
    mosquitto_broker: Mosquitto,
) -> None:
    bench = sim_cost()
    opts = argparse.Namespace(seconds=0.3, windows=1, settle=1.5, runs=1)

    async def all_models(log: IO[bytes]) -> dict[str, dict[str, object]]:
        return {m: await bench.measure_model(m, opts, mosquitto_broker, log) for m in bench.MODELS}

    with open(os.devnull, "wb") as log:
        results = asyncio.run(all_models(log))

    for model, result in results.items():
        idle, idle32, running32 = result["series"]  # type: ignore[misc]
        assert running32.running == f"{bench.COUNT}/{bench.COUNT}", (model, running32.running)
        for series in (idle, idle32, running32):
            assert all(math.isfinite(w) and w >= 0 for w in series.windows), (model, series)
            assert series.load >= 0
        assert idle.goal_pct == 2.0 and running32.goal_pct == 50.0
        assert idle32.broker_windows if model == "cx3" else not idle32.broker_windows
    table = bench.table(results)
    assert table.count("\n") == 2 + 3 * len(bench.MODELS) - 1
    assert "| cx3 | 32 units running, fed |" in table
