"""Sample ingest through the real Recorder: sustained rate, and CPU share at the controller's rate.

One reading = every key of one device at one instant. The controller's tick adds each new
reading to a `SampleBatch` and hands the batch over with `Recorder.add_batch` every flush
interval (250 ms), which calls `add_samples` once per device (the values as columns) and has
them written at once. Three devices with ten keys each (a US-1 shaped mix of floats, an int
counter, a bool and two texts, one of them None) are cycled from a pool of precomputed
readings, so building the values is not timed and no chunk repeats itself.

Modes (each prints JSON lines):

    .venv/bin/python bench/record_ingest.py ingest --seconds 5 --runs 3
    .venv/bin/python bench/record_ingest.py ingest --gather --seconds 5 --runs 3
    .venv/bin/python bench/record_ingest.py cpu --hz 100 --seconds 20

`ingest`: hand-overs of BLOCK readings per device as fast as the writer keeps up (at most
IN_FLIGHT hand-overs waiting to be written; the producer then waits for the oldest, so nothing
is lost to the backlog bound) for N seconds, then close() (everything written and synced).
Reports readings kept per second (from the first call to the end of close), readings counted
in gap entries (0 when sustained), samples entries written, database bytes per reading, and
the time `SessionStore.verify` takes on the result. Each hand-over is what `add_batch` does
(add_samples per device, then flush); `--gather` adds every reading to a SampleBatch one by
one first and hands it over with `add_batch`, the whole controller-side path.

`cpu`: a 100 Hz (or --hz) loop that sleeps to each tick's deadline, adds the three devices'
readings to a SampleBatch and hands it over every 250 ms, for N seconds. The recorder's CPU
is its writer thread's CPU time (`time.pthread_getcpuclockid` on the thread named
`record-writer`, read from this thread) plus the time spent on the loop gathering and handing
over (perf_counter around it; it never blocks, so that is CPU). Share = that sum / wall time,
in % of one core. For comparison the whole process's CPU (`time.process_time`) and the same
loop with no recorder work (baseline) are printed too.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import secrets
import statistics
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sessionconsole.record.recorder import (
    DEFAULT_FLUSH_INTERVAL_S,
    GAP_KIND,
    SAMPLES_KIND,
    Recorder,
)
from sessionconsole.record.sample_columns import SampleBatch
from sessionconsole.record.signing import RecordKey
from sessionconsole.record.store import SessionStore, utc_wall_now

DEVICES = ("us1", "es2.ch1", "cx3.us")
POOL = 16384  # readings per device; at least one samples entry's worth, so no chunk repeats
PERIOD_NS = 10_000_000  # the timestamps say 100 Hz whatever the real rate
BLOCK = 4096  # readings per device per hand-over, flat out (the controller: 25 at 100 Hz)
IN_FLIGHT = 2  # hand-overs queued for the writer before the producer waits for the oldest


def reading(i: int, phase: float, rng: random.Random) -> dict[str, Any]:
    """One plausible reading: slow waves plus sensor noise; output on most of the time."""
    on = (i // 1000) % 5 != 0
    wave = math.sin(i / 500.0 + phase)
    noise = rng.gauss(0.0, 0.002)
    return {
        "state": "RUNNING" if on else "IDLE",
        "fault": None,
        "output_active": on,
        "intensity_setpoint_w_cm2": 1.5 if on else 0.0,
        "intensity_measured_w_cm2": round(1.5 + 0.02 * wave + noise, 4) if on else 0.0,
        "power_measured_w": round(7.5 + 0.1 * wave + noise, 3) if on else 0.0,
        "head_temperature_c": round(31.0 + 0.5 * wave + noise, 2),
        "coupling_pct": round(92.0 + 3.0 * wave, 1),
        "remaining_s": round(600.0 - i * 0.01, 2),
        "energy_j": i * 4 // 100,
    }


def pools() -> dict[str, list[dict[str, Any]]]:
    """POOL readings per device, different per device."""
    rng = random.Random(6)
    return {d: [reading(i, n * 1.3, rng) for i in range(POOL)] for n, d in enumerate(DEVICES)}


def open_recorder(db: Path, key: RecordKey) -> tuple[Recorder, str]:
    """A Recorder on db and an open session with a descriptor per device."""
    recorder = Recorder(db, key=key)
    wall = utc_wall_now()
    sid = recorder.open_session({"therapist": "T-BENCH"}, time.monotonic_ns(), wall).result(10)
    for device in DEVICES:
        descriptor = {"device": device, "keys": {k: {} for k in reading(0, 0.0, random.Random())}}
        recorder.submit(sid, "stream_descriptor", descriptor, time.monotonic_ns(), wall)
    recorder.flush().result(10)
    return recorder, sid


def count(db: Path, key: RecordKey, sid: str) -> tuple[int, int, int]:
    """(samples entries, readings kept, readings lost in gaps) of one session."""
    from sessionconsole.record.session_view import load_session_view

    with SessionStore(db, create=False, key=key) as store:
        view = load_session_view(store, sid)
    entries = sum(1 for e in view.entries if e.kind == SAMPLES_KIND)
    kept = sum(len(s.t_mono_ns) for s in view.streams.values())
    lost = sum(int(e.payload["samples_lost"]) for e in view.entries if e.kind == GAP_KIND)
    return entries, kept, lost


def pool_columns(data: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list[Any]]]:
    """Each device's pool as columns (as SampleColumns holds them)."""
    return {d: {k: [r[k] for r in rows] for k in rows[0]} for d, rows in data.items()}


def ingest_once(work: Path, seconds: float, key: RecordKey, gather: bool) -> dict[str, Any]:
    """Hand readings over flat out for `seconds`, close, then count, size and verify the result.

    Without gather, each hand-over is what `Recorder.add_batch` does with the controller's
    batch: `add_samples` for each device with BLOCK readings as columns, then `flush`. With
    gather, every reading is first added one by one to a SampleBatch, as the controller's
    loop does, and the batch is handed over with `add_batch` whenever it holds BLOCK readings
    per device: the whole controller-side path.
    """
    db = work / f"ingest-{secrets.token_hex(4)}.db"
    data = pools()
    columns = pool_columns(data)
    recorder, sid = open_recorder(db, key)
    writer = next(t for t in threading.enumerate() if t.name == "record-writer")
    writer0 = thread_cpu_s(writer)
    t_ns = time.monotonic_ns()
    handed = 0
    rounds = 0
    start = time.perf_counter()
    loop_cpu_s = time.thread_time()
    deadline = start + seconds
    batch = SampleBatch()
    in_flight: deque[Future[None]] = deque()
    while time.perf_counter() < deadline:
        # Blocks start at a different place of the pool each round, so no chunk repeats.
        offset = (rounds * 1237) % (POOL - BLOCK)
        if gather:
            for j in range(offset, offset + BLOCK):
                t_ns += PERIOD_NS
                for device in DEVICES:
                    batch.add(device, t_ns, data[device][j])
            written = recorder.add_batch(sid, batch)
        else:
            times = list(range(t_ns + PERIOD_NS, t_ns + (BLOCK + 1) * PERIOD_NS, PERIOD_NS))
            t_ns = times[-1]
            for device in DEVICES:
                block = {k: c[offset : offset + BLOCK] for k, c in columns[device].items()}
                recorder.add_samples(sid, device, times, block)
            written = recorder.flush()
        handed += BLOCK * len(DEVICES)
        rounds += 1
        in_flight.append(written)
        if len(in_flight) > IN_FLIGHT:  # sustained: as fast as the writer keeps up, no faster
            in_flight.popleft().result(timeout=120)
    handed_s = time.perf_counter() - start
    loop_cpu_s = time.thread_time() - loop_cpu_s  # the hand-overs (and the loop)
    recorder.flush().result(timeout=120)  # everything written; close() then only stops
    writer_s = thread_cpu_s(writer) - writer0
    recorder.close()
    elapsed_s = time.perf_counter() - start
    entries, kept, lost = count(db, key, sid)
    with SessionStore(db, create=False, key=key) as store:
        t0 = time.perf_counter()
        report = store.verify()
        verify_s = time.perf_counter() - t0
    db_bytes = sum(p.stat().st_size for p in work.glob(db.name + "*"))
    for p in work.glob(db.name + "*"):
        p.unlink()
    return {
        "bench": "record_ingest",
        "mode": "ingest --gather" if gather else "ingest",
        "seconds": seconds,
        "readings_per_hand_over": BLOCK * len(DEVICES),
        "readings_handed": handed,
        "readings_kept": kept,
        "readings_in_gaps": lost,
        "handed_per_s": round(handed / handed_s),
        "readings_per_s": round(kept / elapsed_s),
        "close_s": round(elapsed_s - handed_s, 3),
        "loop_cpu_us_per_reading": round(1e6 * loop_cpu_s / handed, 3),
        "writer_cpu_us_per_reading": round(1e6 * writer_s / max(kept, 1), 3),
        "samples_entries": entries,
        "db_bytes": db_bytes,
        "bytes_per_reading": round(db_bytes / max(kept, 1), 1),
        "verify_s": round(verify_s, 3),
        "verify_ok": report.ok,
    }


def thread_cpu_s(thread: threading.Thread) -> float:
    """CPU seconds a thread of this process has used so far (Linux, POSIX thread clocks)."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def paced(seconds: float, hz: int, tick: Any) -> tuple[float, float]:
    """Call tick(i) at hz, sleeping to each deadline; (wall s, process CPU s) of the run."""
    period = 1.0 / hz
    cpu0, start = time.process_time(), time.perf_counter()
    for i in range(int(seconds * hz)):
        tick(i)
        delay = start + (i + 1) * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return time.perf_counter() - start, time.process_time() - cpu0


def cpu_share(work: Path, seconds: float, hz: int, key: RecordKey) -> dict[str, Any]:
    """The recorder's CPU share at the controller's rate: writer thread + add_sample calls."""
    data = pools()
    db = work / f"cpu-{secrets.token_hex(4)}.db"
    base_wall, base_cpu = paced(min(seconds, 10.0), hz, lambda i: None)
    recorder, sid = open_recorder(db, key)
    writer = next(t for t in threading.enumerate() if t.name == "record-writer")
    in_add = 0.0

    batch = SampleBatch()
    every = max(1, round(hz * DEFAULT_FLUSH_INTERVAL_S))

    def tick(i: int) -> None:  # what the controller's tick does with new readings
        nonlocal in_add
        t_ns = time.monotonic_ns()
        j = i % POOL
        t0 = time.perf_counter()
        for device in DEVICES:
            batch.add(device, t_ns, data[device][j])
        if i % every == every - 1:
            recorder.add_batch(sid, batch)
        in_add += time.perf_counter() - t0

    writer0 = thread_cpu_s(writer)
    wall, cpu = paced(seconds, hz, tick)
    writer_s = thread_cpu_s(writer) - writer0
    recorder.close()
    entries, kept, lost = count(db, key, sid)
    db_bytes = sum(p.stat().st_size for p in work.glob(db.name + "*"))
    for p in work.glob(db.name + "*"):
        p.unlink()
    return {
        "bench": "record_ingest",
        "mode": "cpu",
        "hz": hz,
        "devices": len(DEVICES),
        "seconds": round(wall, 2),
        "readings_kept": kept,
        "readings_in_gaps": lost,
        "samples_entries": entries,
        "bytes_per_reading": round(db_bytes / max(kept, 1), 1),
        "writer_thread_pct": round(100 * writer_s / wall, 3),
        "on_loop_pct": round(100 * in_add / wall, 3),
        "recorder_pct": round(100 * (writer_s + in_add) / wall, 3),
        "on_loop_us_per_reading": round(1e6 * in_add / max(kept, 1), 2),
        "process_pct": round(100 * cpu / wall, 2),
        "baseline_loop_pct": round(100 * base_cpu / base_wall, 2),
    }


def main() -> None:
    """Run the chosen mode `--runs` times; one JSON line per run, then the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("ingest", "cpu"))
    parser.add_argument("--seconds", type=float, default=None, help="5 (ingest) or 20 (cpu)")
    parser.add_argument("--hz", type=int, default=100, help="cpu mode: ticks per second")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--gather",
        action="store_true",
        help="ingest mode: add each reading to a SampleBatch first, as the controller's loop does",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # gaps are counted in the output, not logged
    key = RecordKey(secrets.token_bytes(32))
    results = []
    with tempfile.TemporaryDirectory(prefix="record-ingest-") as tmp:
        for _ in range(args.runs):
            if args.mode == "ingest":
                result = ingest_once(Path(tmp), args.seconds or 5.0, key, args.gather)
            else:
                result = cpu_share(Path(tmp), args.seconds or 20.0, args.hz, key)
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.runs > 1:
        numeric = [
            k
            for k, v in results[0].items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        medians = {k: round(statistics.median(r[k] for r in results), 3) for k in numeric}
        if "verify_ok" in results[0]:
            medians["verify_ok"] = all(r["verify_ok"] for r in results)
        mode = results[0]["mode"]
        header = {"bench": "record_ingest", "mode": mode, "median_of": args.runs}
        print(json.dumps({**header, **medians}))


if __name__ == "__main__":
    main()
