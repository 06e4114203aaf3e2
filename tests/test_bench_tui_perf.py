"""Smoke test of `bench/tui_perf.py`: every measurement runs, briefly, against the real stack.

It keeps the bench from rotting (a renamed widget, a Textual upgrade that moves the frame
hand-over, a changed start-up path) without judging the figures: the machine is shared, so
only the structure and sane ranges are checked, never a time limit. About 10 s on a quiet
box (the stack's start and stop are most of it), so it stays out of the `slow` mark and runs
with `make test`; at load average 11 it took 48 s.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def tui_perf() -> ModuleType:
    """The bench as its scripts see each other: by module name from `bench/`."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("tui_perf")


def test_every_tui_figure_is_measured_and_sane() -> None:
    bench = tui_perf()  # the demo stack: mosquitto, or the embedded broker without it
    figures = bench.run(launches=1, presses=1, seconds=2.0)

    assert bench.sane(figures)
    numbers = {k: v for k, v in figures.items() if isinstance(v, int | float)}
    assert all(math.isfinite(v) and v >= 0 for v in numbers.values()), numbers
    for key in (
        "launch_first_frame_median_ms",
        "launch_first_live_frame_median_ms",
        "key_to_frame_p50_ms",
        "key_to_frame_max_ms",
        "key_alarm_list_open_p50_ms",
        "key_tab_to_log_p50_ms",
        "stream_snapshots_received_per_s",
        "stream_snapshots_drawn_per_s",
        "stream_frames_per_s",
        "stream_tui_process_cpu_pct",
    ):
        assert figures[key] is not None and figures[key] > 0, key
    assert (
        figures["launch_first_live_frame_median_ms"] >= figures["launch_first_live_drawn_median_ms"]
    )
    assert figures["key_to_frame_n"] == 4  # one press of each of the four keys
    # One output of each unit was started; a loaded machine may have stopped some since (the
    # alarms say why), so this is a range, not an expectation.
    assert 0 <= figures["stream_outputs_running_at_end"] <= 3
    assert isinstance(figures["alarms_raised"], list)
    # Coalescing: the app never draws more snapshots than the controller sent.
    assert figures["stream_snapshots_drawn_per_s"] <= figures["stream_snapshots_received_per_s"]
