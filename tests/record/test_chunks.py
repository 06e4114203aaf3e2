"""Compact samples chunks: exact round trips through the Recorder, gaps, tampering, old entries."""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionconsole.record.billable import bill_entries
from sessionconsole.record.chain import canonical_json, entry_hash
from sessionconsole.record.chunks import ENCODING, ChunkError, encode_chunk, samples_columns
from sessionconsole.record.recorder import MAX_SAMPLES_PER_ENTRY, Recorder
from sessionconsole.record.session_view import load_session_view
from sessionconsole.record.store import SessionStore
from tests.record.keys import installed_key
from tests.record.test_recorder import FaultyStore

T0 = 5_000_000_000
WALL = "2026-11-03T10:00:00+00:00"
MS = 1_000_000

Scalar = None | bool | int | float | str


def reading(i: int) -> dict[str, Scalar]:
    """A reading with every kind of value a device gives, changing over time."""
    values: dict[str, Scalar] = {
        "state": ("IDLE", "RUNNING", "FAULT", "é-état")[i % 4],
        "fault": None if i % 7 else f"E{i % 3}",
        "output_active": i % 3 != 0,
        "intensity_measured_w_cm2": i / 7,
        "head_temperature_c": 31.0 + math.sin(i) if i % 11 else -0.0,
        "energy_j": i * 4,
        "big_counter": 2**70 + i,  # beyond int64: stays exact through JSON
        "mixed": (1, True, 1.0, None, "1")[i % 5],  # never merged: 1, True and 1.0 differ
    }
    if i % 10 == 5:
        del values["fault"]  # a key missing from one reading reads back as None
    if i % 1000 == 999:
        values["rare"] = i  # a key present in a few readings only
    return values


def expected_columns(readings: list[dict[str, Scalar]]) -> dict[str, list[Scalar]]:
    """What a stream must hold: every key seen, None where a reading lacked it."""
    keys = dict.fromkeys(key for r in readings for key in r)
    return {key: [r.get(key) for r in readings] for key in keys}


def typed(column: list[Scalar]) -> list[tuple[str, Scalar]]:
    """A column with each value's type, so 1, True and 1.0 (equal in Python) differ."""
    return [(type(v).__name__, v) for v in column]


def test_readings_written_through_the_recorder_read_back_exactly(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    n = MAX_SAMPLES_PER_ENTRY + 500  # more than one chunk per device
    readings = [reading(i) for i in range(n)]
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        for i, values in enumerate(readings):
            recorder.add_sample(sid, "us1", T0 + i * 10 * MS, values)
            recorder.add_sample(sid, "es2", T0 + i * 10 * MS + 1, {"amplitude_ma": i % 40})
    with SessionStore(db, create=False, key=installed_key()) as store:
        assert store.verify().ok
        view = load_session_view(store, sid)
    chunks = [e for e in view.entries if e.kind == "samples"]
    assert all(e.payload["encoding"] == ENCODING for e in chunks)
    assert all(e.payload["n"] <= MAX_SAMPLES_PER_ENTRY for e in chunks)
    us1 = view.streams["us1"]
    assert us1.t_mono_ns == [T0 + i * 10 * MS for i in range(n)]
    expected = expected_columns(readings)
    assert list(us1.columns) == list(expected)
    for key, column in expected.items():
        assert typed(us1.columns[key]) == typed(column), key
    assert view.streams["es2"].columns == {"amplitude_ma": [i % 40 for i in range(n)]}


def test_a_flood_with_a_stalled_disk_keeps_what_fits_and_counts_the_rest_in_a_gap(
    tmp_path: Path,
) -> None:
    class Stalled(FaultyStore):
        full = threading.Event()
        gate = threading.Event()

    db = tmp_path / "record.db"
    Stalled.gate.set()
    with Recorder(db, store_factory=Stalled, max_pending_samples=3000) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        Stalled.gate.clear()  # the disk stalls while a flood comes in
        stalled = recorder.submit(sid, "note", {}, T0, WALL)
        for i in range(10_000):
            recorder.add_sample(sid, "us1", T0 + i * MS, reading(i))
        Stalled.gate.set()
        stalled.result(timeout=10)
    with SessionStore(db, create=False, key=installed_key()) as store:
        assert store.verify().ok
        view = load_session_view(store, sid)
    (gap,) = view.gaps
    assert (gap.from_mono_ns, gap.to_mono_ns, gap.samples_lost) == (
        T0 + 3000 * MS,
        T0 + 9999 * MS,
        7000,
    )
    kept = view.streams["us1"]
    assert kept.t_mono_ns == [T0 + i * MS for i in range(3000)]
    assert typed(kept.columns["mixed"]) == typed([reading(i)["mixed"] for i in range(3000)])


def test_known_devices_and_keys_still_have_every_value_checked(tmp_path: Path) -> None:
    with Recorder(tmp_path / "record.db", flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        recorder.add_sample(sid, "us1", T0, {"x": 1.0, "s": "ok"})
        for bad, message in [
            ({"x": math.nan, "s": "ok"}, "NaN"),
            ({"x": -math.inf, "s": "ok"}, "NaN/Infinity"),
            ({"x": 1.0, "s": "\ud800"}, "lone surrogate"),
            ({"x": [1.0], "s": "ok"}, "not a JSON scalar"),
            ({"x": 1.0, 2: "ok"}, "not a str"),
        ]:
            with pytest.raises(ValueError, match=message):
                recorder.add_sample(sid, "us1", T0 + 1, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="mono_ns"):
            recorder.add_sample(sid, "us1", True, {"x": 1.0})


def stored_chunk(db: Path) -> tuple[str, int, str]:
    """(session, seq, payload text) of the first samples entry of a small recorded session."""
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        for i in range(500):
            recorder.add_sample(sid, "us1", T0 + i * MS, reading(i))
        recorder.submit(sid, "note", {"text": "after the samples"}, T0 + 600 * MS, WALL)
    conn = sqlite3.connect(db)
    seq, payload = conn.execute(
        "SELECT seq, payload FROM entries WHERE kind = 'samples' ORDER BY seq"
    ).fetchone()
    conn.close()
    return sid, seq, payload


def flip_one_data_char(payload: str) -> str:
    """The payload with one base64 character inside the compressed data changed."""
    at = payload.index('"data":"') + len('"data":"') + 40
    swapped = "A" if payload[at] != "A" else "B"
    return payload[:at] + swapped + payload[at + 1 :]


def tamper(db: Path, sql: str, *args: Any) -> None:
    """Run an edit as someone with the file (and not the key) would: triggers dropped."""
    conn = sqlite3.connect(db, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(sql, args)
    conn.close()


def test_a_flipped_byte_inside_a_chunk_is_named_by_verify(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    sid, seq, payload = stored_chunk(db)
    tamper(db, "UPDATE entries SET payload = ? WHERE seq = ?", flip_one_data_char(payload), seq)
    with SessionStore(db, create=False, key=installed_key()) as store:
        (failure,) = store.verify().failures
    assert (failure.session_id, failure.seq, failure.kind) == (sid, seq, "samples")
    assert failure.reason == "hash mismatch"


def test_a_chunk_edited_and_rehashed_without_the_key_fails_its_signature(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    sid, seq, payload = stored_chunk(db)
    times, columns = samples_columns(json.loads(payload))
    columns["intensity_measured_w_cm2"][3] = 9.9  # a plausible-looking forged value
    forged = encode_chunk("us1", times, columns)
    conn = sqlite3.connect(db)
    mono_ns, wall, prev_hash = conn.execute(
        "SELECT mono_ns, wall, prev_hash FROM entries WHERE seq = ?", (seq,)
    ).fetchone()
    conn.close()
    digest = entry_hash(
        session_id=sid,
        seq=seq,
        mono_ns=mono_ns,
        wall=wall,
        kind="samples",
        payload=forged,
        prev_hash=prev_hash,
    )
    sql = "UPDATE entries SET payload = ?, hash = ? WHERE seq = ?"
    tamper(db, sql, canonical_json(forged), digest, seq)
    with SessionStore(db, create=False, key=installed_key()) as store:
        (failure,) = store.verify().failures
    assert failure.seq == seq and "signature does not match" in failure.reason


def test_entries_written_as_json_lists_still_read(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    minute = 60_000 * MS
    legacy = {  # a samples entry as written before the compact encoding
        "device": "us1",
        "t_mono_ns": [T0 + MS, T0 + 2 * MS],
        "values": {"output_active": [True, True], "state": ["ON", "ON"]},
    }
    chunk = encode_chunk(
        "us1",
        [T0 + 9 * minute, T0 + 10 * minute],
        {"output_active": [True, False], "state": ["ON", "IDLE"]},
    )
    descriptor = {"device": "us1", "modality": "ultrasound", "modalities": ["ultrasound"]}
    with SessionStore(db, key=installed_key()) as store:
        sid = store.open_session({}, T0, WALL)
        store.append(sid, "stream_descriptor", descriptor, T0, WALL)
        store.append(sid, "samples", legacy, T0 + MS, WALL)
        store.append(sid, "samples", chunk, T0 + 9 * minute, WALL)
        store.end_session(sid, "completed", None, {}, T0 + 11 * minute, WALL)
        assert store.verify().ok
        entries = store.entries(sid)
        view = load_session_view(store, sid)
    stream = view.streams["us1"]
    assert stream.t_mono_ns == [T0 + MS, T0 + 2 * MS, T0 + 9 * minute, T0 + 10 * minute]
    assert stream.columns == {
        "output_active": [True, True, True, False],
        "state": ["ON", "ON", "ON", "IDLE"],
    }
    assert samples_columns(legacy) == (legacy["t_mono_ns"], legacy["values"])
    # Billing reads the output run across both encodings: on from 1 ms to 10 min.
    (line,) = bill_entries(entries).lines
    assert (line.code, line.minutes) == ("97035", 9)


def test_an_unknown_or_broken_chunk_is_an_error_not_missing_data() -> None:
    chunk = encode_chunk("us1", [1, 2], {"x": [1.0, 2.0]})
    with pytest.raises(ChunkError, match="unknown"):
        samples_columns({**chunk, "encoding": "zcol/9"})
    with pytest.raises(ChunkError, match="does not decode"):
        samples_columns({**chunk, "data": chunk["data"][:-8]})
    short = base64.b64encode(zlib.compress(b"\x00" * 20)).decode()
    with pytest.raises(ChunkError, match="bytes"):
        samples_columns({**chunk, "data": short})
    with pytest.raises(ChunkError, match="lacks"):
        samples_columns({k: v for k, v in chunk.items() if k != "columns"})


def test_columns_are_packed_by_type() -> None:
    chunk = encode_chunk(
        "d",
        [3, -(2**63), 2**63 - 1],  # not monotonic, and a difference beyond 64 bits
        {
            "f": [1.5, -0.0, 1e300],
            "i": [1, -(2**63), 2],
            "b": [True, False, True],
            "t": ["A", None, "A"],
            "m": [1, True, 1.0],
        },
    )
    assert chunk["time"][0] == "i8"
    assert [c[1] for c in chunk["columns"]] == ["f8", "i8", "b1", "cat", "json"]


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=("Cs",))),
)
keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=30).flatmap(
        lambda times: st.tuples(
            st.just(times),
            st.dictionaries(
                keys,
                st.lists(scalars, min_size=len(times), max_size=len(times)),
                max_size=4,
            ),
        )
    )
)
def test_any_chunk_round_trips_exactly(case: tuple[list[int], dict[str, list[Scalar]]]) -> None:
    times, columns = case
    back_times, back = samples_columns(encode_chunk("d", times, columns))
    assert back_times == times
    assert {k: typed(v) for k, v in back.items()} == {k: typed(v) for k, v in columns.items()}


def test_samples_that_cannot_be_packed_become_a_gap_and_the_rest_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionconsole.record.recorder as recorder_module

    real = recorder_module.encode_chunk

    def broken_for_es2(device: str, *args: Any) -> dict[str, Any]:
        if device == "es2":
            raise RuntimeError("packer bug")
        return real(device, *args)

    monkeypatch.setattr(recorder_module, "encode_chunk", broken_for_es2)
    db = tmp_path / "record.db"
    with Recorder(db, flush_interval_s=60) as recorder:
        sid = recorder.open_session({}, T0, WALL).result(timeout=5)
        for i in range(10):
            recorder.add_sample(sid, "us1", T0 + i * MS, {"x": float(i)})
            recorder.add_sample(sid, "es2", T0 + i * MS, {"y": i})
    with SessionStore(db, create=False, key=installed_key()) as store:
        assert store.verify().ok
        view = load_session_view(store, sid)
    assert view.streams["us1"].columns == {"x": [float(i) for i in range(10)]}
    (gap,) = view.gaps
    assert (gap.device, gap.samples_lost, gap.from_mono_ns, gap.to_mono_ns) == (
        "es2",
        10,
        T0,
        T0 + 9 * MS,
    )
    assert "packer bug" in gap.reason
