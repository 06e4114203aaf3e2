"""Export cost of a 30-minute session with three devices at 50 Hz, in each format.

Writes the session through the real Recorder (injected monotonic/wall times, no sleeping;
samples handed over in 250 ms batches as the controller's flush timer would), then times
reading it into a SessionView and each exporter, and prints one JSON line per format with
the time (read + export, what `records export` costs) and the size on disk.

    .venv/bin/python bench/record_export.py [--minutes 30] [--hz 50] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sessionconsole.record.export_cli import FORMATS, export_view
from sessionconsole.record.recorder import Recorder
from sessionconsole.record.session_view import load_session_view
from sessionconsole.record.store import SessionStore, wall_after

T0 = 10_000_000_000
WALL0 = "2026-11-03T10:00:00.000000+00:00"
S = 1_000_000_000
DEVICES = {
    "us1": ("US-1", ("intensity_setpoint_w_cm2", "intensity_measured_w_cm2", "head_temperature_c")),
    "es2": ("ES-2", ("amplitude_setpoint_ma", "amplitude_measured_ma", "impedance_ohm")),
    "cx3": ("CX-3", ("intensity_measured_w_cm2", "amplitude_measured_ma", "head_temperature_c")),
}
UNITS = {"w_cm2": "W/cm2", "_c": "Cel", "_ma": "mA", "_ohm": "ohm", "_j": "J"}


def unit_of(key: str) -> str | None:
    """The unit a key's suffix names."""
    return next((unit for suffix, unit in UNITS.items() if key.endswith(suffix)), None)


def values(keys: tuple[str, ...], i: int, hz: int) -> dict[str, Any]:
    """One plausible reading: a slow sine on every key, output on after the first minute."""
    on = i >= hz * 60
    reading: dict[str, Any] = {"output_active": on, "state": "ON" if on else "IDLE"}
    for n, key in enumerate(keys):
        wave = 0.5 * math.sin(i / (hz * 10.0) + n)
        if key.endswith("_c"):  # head temperature: skin level, warming while on
            reading[key] = round(31.0 + wave + (min(i, hz * 600) / (hz * 300) if on else 0), 3)
        else:
            reading[key] = round(1.0 + n + wave, 4) if on else 0.0
    reading["energy_j"] = max(0, i - hz * 60) * 4 // hz
    return reading


def write_session(db: Path, minutes: int, hz: int) -> str:
    """Write the session through the Recorder; return its id."""
    at = lambda ns: (T0 + ns, wall_after(WALL0, ns))  # noqa: E731
    meta = {"therapist": "T-01", "patient_pseudonym": "P-BENCH", "plan": {"treated_area_cm2": 30}}
    with Recorder(db) as recorder:
        sid = recorder.open_session(meta, *at(0)).result(timeout=10)
        for device, (model, keys) in DEVICES.items():
            spec = {k: {"unit": unit_of(k)} for k in (*keys, "energy_j", "output_active", "state")}
            descriptor = {"device": device, "model": model, "keys": spec}
            recorder.submit(sid, "stream_descriptor", descriptor, *at(1))
        per_flush = max(1, hz // 4)  # 250 ms of samples per batch, as the flush timer does
        pending = []
        for i in range(minutes * 60 * hz):
            offset = 2 * S + i * S // hz
            for device, (_, keys) in DEVICES.items():
                recorder.add_sample(sid, device, T0 + offset, values(keys, i, hz))
            if i % (hz * 60) == 0:
                minute = i // (hz * 60)
                technique = {"technique": "deep_tissue", "region": "thigh", "side": "left"}
                action = "begin" if minute % 2 == 0 else "end"
                recorder.submit(sid, "technique", {"action": action, **technique}, *at(offset))
            if (i + 1) % per_flush == 0:
                pending.append(recorder.flush())
                if len(pending) >= 40:  # bound the backlog (the real timer never lets it grow)
                    for future in pending:
                        future.result(timeout=60)
                    pending.clear()
        end = 3 * S + minutes * 60 * S
        recorder.end_session(sid, "completed", None, {}, *at(end)).result(timeout=60)
    return sid


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


def main() -> None:
    """Write the session once, then time each format `--runs` times (median)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--hz", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the database and exports here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="record-export-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "record.db"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    sid = write_session(db, args.minutes, args.hz)
    written_s = time.perf_counter() - t0
    with SessionStore(db, create=False) as store:
        samples = 0
        reads = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            view = load_session_view(store, sid)
            reads.append(time.perf_counter() - t0)
        samples = sum(len(s.t_mono_ns) for s in view.streams.values())
        base = {"bench": "record_export", "minutes": args.minutes, "hz": args.hz}
        print(
            json.dumps(
                {
                    **base,
                    "step": "write+read",
                    "devices": len(view.streams),
                    "samples": samples,
                    "entries": len(view.entries),
                    "db_bytes": size_of(db),
                    "write_s": round(written_s, 2),
                    "read_view_s": round(statistics.median(reads), 3),
                }
            )
        )
        for fmt in FORMATS:
            out = work / (
                "csv" if fmt == "csv" else f"session.{fmt}.{'html' if fmt == 'html' else 'json'}"
            )
            times = []
            for _ in range(args.runs):
                if out.is_dir():
                    shutil.rmtree(out)
                t0 = time.perf_counter()
                export_view(load_session_view(store, sid), fmt, out)
                times.append(time.perf_counter() - t0)
            files = len(list(out.iterdir())) if out.is_dir() else 1
            record = {**base, "format": fmt, "seconds": round(statistics.median(times), 3)}
            print(json.dumps({**record, "bytes": size_of(out), "files": files}))
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
