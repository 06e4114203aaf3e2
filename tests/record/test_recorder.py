"""Recorder on real files: durable futures, batched samples, order, failures, SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sessionconsole.record.chunks import samples_columns
from sessionconsole.record.recorder import MAX_SAMPLES_PER_ENTRY, Recorder, RecorderClosedError
from sessionconsole.record.store import (
    INTERRUPTED_REASON,
    Entry,
    SessionEndedError,
    SessionStore,
    StoreError,
)
from tests.record.keys import installed_key

T0 = 5_000_000_000
WALL = "2026-11-03T10:00:00+00:00"
MS = 1_000_000


class FaultyStore(SessionStore):
    """A store whose writes can be made to fail (disk full) or to hang (slow disk) on demand."""

    full = threading.Event()
    gate = threading.Event()  # cleared: writes wait until it is set

    def __init__(self, path: Path) -> None:
        super().__init__(path, key=installed_key())

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        self.gate.wait(timeout=10)
        if self.full.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        with super()._write_transaction() as conn:
            yield conn


@pytest.fixture
def faulty() -> Iterator[type[FaultyStore]]:
    """A FaultyStore class with fresh fault switches (writes working)."""

    class Store(FaultyStore):
        full = threading.Event()
        gate = threading.Event()

    Store.gate.set()
    yield Store
    Store.gate.set()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's record database lives."""
    return tmp_path / "record.db"


@pytest.fixture
def recorder(db_path: Path) -> Iterator[Recorder]:
    """A Recorder whose timer stays out of the way: it flushes only before work and on demand."""
    recorder = Recorder(db_path, flush_interval_s=60)
    yield recorder
    recorder.close()


def read_entries(db_path: Path, sid: str) -> list[Entry]:
    """Entries as another process would see them, through a connection of its own."""
    with SessionStore(db_path, create=False, key=installed_key()) as store:
        return store.entries(sid)


def verified(db_path: Path) -> bool:
    """Whether the record verifies, checked through a connection of its own."""
    with SessionStore(db_path, create=False, key=installed_key()) as store:
        return store.verify().ok


def samples_of(entries: list[Entry], device: str) -> tuple[list[int], dict[str, list[Any]]]:
    """All samples of one device concatenated across its samples entries."""
    times: list[int] = []
    values: dict[str, list[Any]] = {}
    for entry in entries:
        if entry.kind == "samples" and entry.payload["device"] == device:
            chunk_times, columns = samples_columns(entry.payload)
            times += chunk_times
            for key, column in columns.items():
                values.setdefault(key, []).extend(column)
    return times, values


def test_durable_entry_resolves_only_after_commit(recorder: Recorder, db_path: Path) -> None:
    sid = recorder.open_session({"therapist": "T-01"}, T0, WALL).result(timeout=5)
    seen_at_resolution: list[list[tuple[int, str]]] = []
    looked = threading.Event()

    def look_from_another_connection(_: object) -> None:
        conn = sqlite3.connect(db_path)
        rows = conn.execute("SELECT seq, kind FROM entries WHERE session_id = ?", (sid,))
        seen_at_resolution.append(rows.fetchall())
        conn.close()
        looked.set()

    future = recorder.submit(sid, "alarm", {"id": "US-TEMP", "priority": "high"}, T0 + 1, WALL)
    future.add_done_callback(look_from_another_connection)
    entry = future.result(timeout=5)
    assert looked.wait(timeout=5)
    assert (entry.seq, entry.kind, entry.payload["id"]) == (2, "alarm", "US-TEMP")
    assert seen_at_resolution == [[(1, "session_start"), (2, "alarm")]]
    assert read_entries(db_path, sid)[-1] == entry


async def test_the_controller_awaits_entries_without_blocking_its_loop(db_path: Path) -> None:
    recorder = Recorder(db_path)
    try:
        sid = await asyncio.wrap_future(recorder.open_session({}, T0, WALL))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        entry = await asyncio.wrap_future(recorder.submit(sid, "operator_stop", {}, T0, WALL))
        ticker.cancel()
        assert entry.seq == 2
        assert ticks > 0
        await asyncio.wrap_future(recorder.end_session(sid, "stopped", "operator", {}, T0, WALL))
    finally:
        recorder.close()
    assert verified(db_path)


def test_many_samples_become_few_entries_with_every_value_in_order(
    recorder: Recorder, db_path: Path
) -> None:
    sid = recorder.open_session({}, T0, WALL).result(timeout=5)
    for i in range(3000):
        recorder.add_sample(sid, "US-1", T0 + i * MS, {"intensity_w_cm2": i / 10, "on": i % 2 == 0})
        recorder.add_sample(sid, "ES-2", T0 + i * MS, {"current_ma": i})
    recorder.flush().result(timeout=5)
    entries = read_entries(db_path, sid)
    batches = [e for e in entries if e.kind == "samples"]
    assert len(batches) == 2  # one compact chunk per device
    assert all(b.payload["n"] <= MAX_SAMPLES_PER_ENTRY for b in batches)
    times, values = samples_of(entries, "US-1")
    assert times == [T0 + i * MS for i in range(3000)]
    assert values == {
        "intensity_w_cm2": [i / 10 for i in range(3000)],
        "on": [i % 2 == 0 for i in range(3000)],
    }
    assert samples_of(entries, "ES-2")[1] == {"current_ma": list(range(3000))}
    # Sample walls derive from the session's (mono, wall) anchor: 0 ms after the start.
    assert datetime.fromisoformat(batches[0].wall) == datetime.fromisoformat(WALL)


def test_samples_with_changing_keys_stay_aligned(recorder: Recorder, db_path: Path) -> None:
    sid = recorder.open_session({}, T0, WALL).result(timeout=5)
    recorder.add_sample(sid, "CX-3", T0, {"a": 1})
    recorder.add_sample(sid, "CX-3", T0 + 1, {"b": "x"})
    recorder.add_sample(sid, "CX-3", T0 + 2, {"a": 3, "b": "z"})
    recorder.flush().result(timeout=5)
    _, values = samples_of(read_entries(db_path, sid), "CX-3")
    assert values == {"a": [1, None, 3], "b": [None, "x", "z"]}


def test_the_timer_flushes_samples_without_any_durable_entry(db_path: Path) -> None:
    with Recorder(db_path, flush_interval_s=0.05) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        recorder.add_sample(sid, "US-1", T0 + MS, {"x": 1.0})
        deadline = time.monotonic() + 5
        while not any(e.kind == "samples" for e in read_entries(db_path, sid)):
            assert time.monotonic() < deadline, "timer never flushed the samples"
            time.sleep(0.02)


def test_order_is_kept_between_samples_and_durable_entries(
    recorder: Recorder, db_path: Path
) -> None:
    sid = recorder.open_session({}, T0, WALL).result(timeout=5)
    futures = []
    for step in range(5):
        for i in range(10):
            recorder.add_sample(sid, "US-1", T0 + (step * 11 + i) * MS, {"step": step})
        futures.append(
            recorder.submit(sid, "technique", {"step": step}, T0 + (step * 11 + 10) * MS, WALL)
        )
    recorder.end_session(sid, "completed", None, {}, T0 + 99 * MS, WALL).result(timeout=5)
    entries = read_entries(db_path, sid)
    assert [e.kind for e in entries] == ["session_start"] + ["samples", "technique"] * 5 + [
        "session_end"
    ]
    for samples, technique in zip(entries[1:-1:2], entries[2:-1:2], strict=True):
        times, columns = samples_columns(samples.payload)
        assert columns["step"] == [technique.payload["step"]] * 10
        assert max(times) < technique.mono_ns
    assert [f.result(timeout=1).seq for f in futures] == [3, 5, 7, 9, 11]


def test_write_failure_fails_the_future_and_lost_samples_become_a_gap(
    db_path: Path, faulty: type[FaultyStore]
) -> None:
    with Recorder(db_path, store_factory=faulty) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        recorder.add_sample(sid, "US-1", T0 + 1 * MS, {"x": 1})
        faulty.full.set()
        recorder.add_sample(sid, "US-1", T0 + 2 * MS, {"x": 2})
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            recorder.submit(sid, "alarm", {"id": "A"}, T0 + 3 * MS, WALL).result(timeout=5)
        for i in range(4, 8):
            recorder.add_sample(sid, "US-1", T0 + i * MS, {"x": i})
        recorder.flush().result(timeout=5)
        faulty.full.clear()
        recorder.add_sample(sid, "US-1", T0 + 9 * MS, {"x": 9})
        recorder.submit(sid, "alarm", {"id": "B"}, T0 + 10 * MS, WALL).result(timeout=5)
    entries = read_entries(db_path, sid)
    assert [e.kind for e in entries] == ["session_start", "gap", "samples", "alarm"]
    gap = entries[1].payload
    assert gap["device"] == "US-1"
    assert (gap["from_mono_ns"], gap["to_mono_ns"], gap["samples_lost"]) == (
        T0 + 1 * MS,
        T0 + 7 * MS,
        6,
    )
    assert "disk is full" in gap["reason"]
    assert samples_columns(entries[2].payload)[1] == {"x": [9]}
    assert verified(db_path)


def test_samples_beyond_the_backlog_bound_are_counted_in_a_gap(
    db_path: Path, faulty: type[FaultyStore]
) -> None:
    with Recorder(db_path, store_factory=faulty, max_pending_samples=10) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        faulty.gate.clear()  # the disk stalls
        stalled = recorder.submit(sid, "note", {}, T0, WALL)
        for i in range(25):
            recorder.add_sample(sid, "ES-2", T0 + i * MS, {"i": i})
        faulty.gate.set()
        stalled.result(timeout=5)
    entries = read_entries(db_path, sid)
    assert [e.kind for e in entries] == ["session_start", "note", "gap", "samples"]
    assert entries[2].payload == {
        "device": "ES-2",
        "from_mono_ns": T0 + 10 * MS,
        "to_mono_ns": T0 + 24 * MS,
        "samples_lost": 15,
        "reason": "recorder backlog above 10 samples",
    }
    assert samples_columns(entries[3].payload)[1] == {"i": list(range(10))}


def test_a_cancelled_waiter_does_not_stop_the_entry_being_written(
    db_path: Path, faulty: type[FaultyStore]
) -> None:
    with Recorder(db_path, store_factory=faulty) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        faulty.gate.clear()
        recorder.submit(sid, "note", {"n": 1}, T0, WALL)  # the writer stalls on this one
        cancelled = recorder.submit(sid, "alarm", {"n": 2}, T0, WALL)
        assert cancelled.cancel()
        faulty.gate.set()
    assert [e.kind for e in read_entries(db_path, sid)][-1] == "alarm"


@pytest.mark.parametrize(
    ("device", "mono_ns", "values", "message"),
    [
        ("US-1", T0, {"x": float("nan")}, "NaN"),
        ("US-1", T0, {"x": [1, 2]}, "not a JSON scalar"),
        ("US-1", T0, {1: 2}, "not a str"),
        ("", T0, {"x": 1}, "device_id"),
        ("US-1", 1.5, {"x": 1}, "mono_ns"),
        ("US-1", 2**64, {"x": 1}, "mono_ns"),
        ("US-1", T0, {"x": "\ud800"}, "lone surrogate"),
        ("US-1", T0, {"\udc00": 1}, "lone surrogate"),
    ],
)
def test_bad_samples_are_refused_at_the_call(
    recorder: Recorder, device: str, mono_ns: Any, values: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        recorder.add_sample("a" * 32, device, mono_ns, values)


def test_bad_durable_entries_are_refused_at_the_call(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="must be in UTC"):
        recorder.submit("a" * 32, "note", {}, T0, "2026-11-03T10:00:00")
    with pytest.raises(ValueError, match="nan"):
        recorder.submit("a" * 32, "note", {"x": float("nan")}, T0, WALL)
    with pytest.raises(ValueError, match="exit_status"):
        recorder.end_session("a" * 32, "finished", None, {}, T0, WALL)


def test_after_end_and_after_close_nothing_more_is_taken(db_path: Path) -> None:
    recorder = Recorder(db_path)
    sid = recorder.open_session({}, T0, WALL).result(timeout=5)
    recorder.end_session(sid, "completed", None, {}, T0, WALL)
    with pytest.raises(SessionEndedError):
        recorder.add_sample(sid, "US-1", T0, {"x": 1})
    recorder.close()
    recorder.close()  # idempotent
    with pytest.raises(RecorderClosedError):
        recorder.submit(sid, "note", {}, T0, WALL)
    with pytest.raises(RecorderClosedError):
        recorder.add_sample(sid, "US-1", T0, {"x": 1})


def test_a_store_that_cannot_open_fails_the_constructor(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_text("not a database " * 200)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Recorder(tmp_path / "junk.db")


def test_close_interrupted_goes_through_the_writer(recorder: Recorder) -> None:
    sid = recorder.open_session({}, T0, WALL).result(timeout=5)
    assert recorder.close_interrupted(T0 + 1, WALL).result(timeout=5) == [sid]


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from sessionconsole.record import Recorder, utc_wall_now

    recorder = Recorder(sys.argv[1], flush_interval_s=0.01)
    sid = recorder.open_session({"who": "kill test"}, time.monotonic_ns(), utc_wall_now()).result()
    i = 0
    while True:
        i += 1
        now = time.monotonic_ns()
        recorder.add_sample(sid, "US-1", now, {"i": i, "w_cm2": i * 0.01})
        if i % 10 == 0:
            recorder.submit(sid, "note", {"i": i}, now, utc_wall_now()).result()
        if i == 100:
            print(sid, flush=True)
        time.sleep(0.0005)
    """
)


def test_a_writer_killed_mid_stream_leaves_a_verifiable_record(db_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(db_path)], stdout=subprocess.PIPE, text=True
    ) as writer:
        try:
            assert writer.stdout is not None
            sid = writer.stdout.readline().strip()
            time.sleep(0.3)  # keep it writing, then kill it wherever it is
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    with SessionStore(db_path, create=False, key=installed_key()) as store:
        report = store.verify()
        assert report.ok, report.failures
        assert report.entries_checked > 10
        assert store.close_interrupted(T0, WALL) == [sid]
        (info,) = store.sessions()
        assert (info.exit_status, info.reason) == ("interrupted", INTERRUPTED_REASON)
        assert store.verify().ok
