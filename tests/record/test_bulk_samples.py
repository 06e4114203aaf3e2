"""Readings handed over as columns: SampleColumns/SampleBatch and Recorder.add_samples/add_batch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from sessionconsole.record.recorder import MAX_SAMPLES_PER_ENTRY, Recorder
from sessionconsole.record.sample_columns import SampleBatch, SampleColumns
from sessionconsole.record.session_view import SessionView, load_session_view
from sessionconsole.record.store import SessionStore
from tests.record.keys import installed_key
from tests.record.test_chunks import MS, T0, WALL, Scalar, expected_columns, reading, typed


def columns_of(readings: list[dict[str, Scalar]]) -> SampleColumns:
    """Readings appended one by one, as the controller's loop does."""
    gathered = SampleColumns()
    for i, values in enumerate(readings):
        gathered.append(T0 + i * MS, values)
    return gathered


def recorded(db: Path, sid: str) -> SessionView:
    with SessionStore(db, create=False, key=installed_key()) as store:
        assert store.verify().ok
        return load_session_view(store, sid)


def test_appended_readings_with_changing_keys_stay_aligned() -> None:
    readings = [reading(i) for i in range(2000)]  # keys dropped and added on the way
    gathered = columns_of(readings)
    assert len(gathered) == 2000
    assert gathered.times == [T0 + i * MS for i in range(2000)]
    expected = expected_columns(readings)
    assert list(gathered.columns) == list(expected)
    for key, column in expected.items():
        assert typed(gathered.columns[key]) == typed(column), key


def test_extending_with_other_keys_pads_both_ways_with_none() -> None:
    gathered = SampleColumns()
    gathered.extend([1, 2], {"a": [1.0, 2.0]})
    gathered.extend([3], {"b": ["x"]})
    gathered.extend([4, 5], {"a": [4.0, 5.0], "b": ["y", "z"]})
    assert gathered.columns == {"a": [1.0, 2.0, None, 4.0, 5.0], "b": [None, None, "x", "y", "z"]}
    times, columns = gathered.part(1, 3)
    assert (times, columns) == ([2, 3], {"a": [2.0, None], "b": [None, "x"]})


def test_columns_handed_over_in_blocks_read_back_exactly(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    n = MAX_SAMPLES_PER_ENTRY + 3000  # more than one chunk
    readings = [reading(i) for i in range(n)]
    gathered = columns_of(readings)
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        for start in range(0, n, 7001):  # blocks that do not line up with the chunks
            times, columns = gathered.part(start, start + 7001)
            recorder.add_samples(sid, "us1", times, columns)
    view = recorded(db, sid)
    assert view.streams["us1"].t_mono_ns == gathered.times
    for key, column in expected_columns(readings).items():
        assert typed(view.streams["us1"].columns[key]) == typed(column), key
    assert max(e.payload["n"] for e in view.entries if e.kind == "samples") == (
        MAX_SAMPLES_PER_ENTRY
    )


def test_the_caller_may_reuse_its_lists_at_once(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    times, values = [T0, T0 + MS], [1.0, 2.0]
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        recorder.add_samples(sid, "us1", times, {"x": values})
        times[:] = [T0 + 5 * MS, T0 + 6 * MS]
        values[:] = [9.0, 9.0]
        recorder.add_samples(sid, "us1", times, {"x": values})
    stream = recorded(db, sid).streams["us1"]
    assert (stream.t_mono_ns, stream.columns["x"]) == (
        [T0, T0 + MS, T0 + 5 * MS, T0 + 6 * MS],
        [1.0, 2.0, 9.0, 9.0],
    )


@pytest.mark.parametrize(
    ("times", "columns", "message"),
    [
        ([T0, T0 + 1], {"x": [1.0, math.nan]}, "us1 sample x=nan: NaN/Infinity"),
        ([T0, T0 + 1], {"x": [None, -math.inf]}, "us1 sample x=-inf: NaN/Infinity"),
        ([T0, T0 + 1], {"s": ["ok", "\ud800"]}, "lone surrogate"),
        ([T0, T0 + 1], {"s": [None, [1]]}, r"us1 sample s=\[1\] is not a JSON scalar"),
        ([T0, T0 + 1], {"x": [1.0]}, "column 'x' has 1 values for 2"),
        ([T0, 1.5], {"x": [1.0, 2.0]}, "mono_ns .* got 1.5"),
        ([T0, True], {"x": [1.0, 2.0]}, "mono_ns .* got True"),
        ([T0, 2**63], {"x": [1.0, 2.0]}, "mono_ns"),
        ([T0], {1: [1.0]}, "key 1 is not a str"),
    ],
)
def test_a_bad_value_anywhere_refuses_the_call_naming_it_and_keeps_nothing_of_it(
    tmp_path: Path, times: list[Any], columns: dict[Any, list[Any]], message: str
) -> None:
    db = tmp_path / "record.db"
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        with pytest.raises(ValueError, match=message):
            recorder.add_samples(sid, "us1", times, columns)
        recorder.add_samples(sid, "us1", [T0 + 10], {"x": [3.0]})
    stream = recorded(db, sid).streams["us1"]
    assert (stream.t_mono_ns, stream.columns) == ([T0 + 10], {"x": [3.0]})


def test_large_finite_floats_are_kept_although_their_sum_overflows(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        recorder.add_samples(sid, "us1", [T0, T0 + 1], {"x": [1e308, 1e308]})
    assert recorded(db, sid).streams["us1"].columns == {"x": [1e308, 1e308]}


def test_a_block_past_the_backlog_bound_keeps_its_head_and_counts_its_tail(
    tmp_path: Path,
) -> None:
    db = tmp_path / "record.db"
    with Recorder(db, flush_interval_s=60, max_pending_samples=100) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        times = [T0 + i * MS for i in range(150)]
        recorder.add_samples(sid, "us1", times, {"x": [float(i) for i in range(150)]})
    view = recorded(db, sid)
    assert view.streams["us1"].columns == {"x": [float(i) for i in range(100)]}
    (gap,) = view.gaps
    assert (gap.device, gap.from_mono_ns, gap.to_mono_ns, gap.samples_lost) == (
        "us1",
        T0 + 100 * MS,
        T0 + 149 * MS,
        50,
    )
    assert "backlog" in gap.reason


def test_a_batch_keeps_every_device_and_an_unrecordable_one_as_a_gap_with_the_reason(
    tmp_path: Path,
) -> None:
    db = tmp_path / "record.db"
    batch = SampleBatch()
    for i in range(10):
        batch.add("us1", T0 + i * MS, {"x": float(i)})
        batch.add("es2.ch1", T0 + i * MS, {"amplitude_ma": math.nan if i == 4 else 1.0})
    assert batch.count == 20
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        recorder.add_batch(sid, batch)
        assert batch.count == 0 and batch.take() == {}
    view = recorded(db, sid)
    assert view.streams["us1"].columns == {"x": [float(i) for i in range(10)]}
    assert "es2.ch1" not in view.streams
    (gap,) = view.gaps
    assert (gap.device, gap.from_mono_ns, gap.to_mono_ns, gap.samples_lost) == (
        "es2.ch1",
        T0,
        T0 + 9 * MS,
        10,
    )
    assert gap.reason.startswith("readings not recordable: es2.ch1 sample amplitude_ma=nan")


def test_a_batch_is_written_without_waiting_for_the_flush_timer(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    batch = SampleBatch()
    batch.add("us1", T0, {"x": 1.0})
    with Recorder(db, flush_interval_s=3600) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        recorder.add_batch(sid, batch).result(timeout=10)  # not an hour's flush timer
        with SessionStore(db, create=False, key=installed_key()) as store:
            assert load_session_view(store, sid).streams["us1"].columns == {"x": [1.0]}
