"""Thread-backed record writer: the asyncio controller hands it work without ever blocking.

One writer thread owns the SessionStore (its SQLite connection is made in that thread) and
takes jobs from a queue. Durable entries (alarms, operator actions, techniques) come back as
concurrent futures resolved only after their synced COMMIT; await them with
``asyncio.wrap_future``. Samples are buffered column-wise under a lock and written as one
``samples`` entry per device per flush (on a timer, before every durable entry, and at close),
so the record keeps the order in which things were handed over. Samples that cannot be written
or kept become ``gap`` entries, never silently lost.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Final, TypeVar

from sessionconsole.model.paths import record_key_path
from sessionconsole.record.chain import JsonDict, canonical_json, check_json
from sessionconsole.record.chunks import encode_chunk
from sessionconsole.record.sample_columns import SampleBatch, SampleColumns
from sessionconsole.record.signing import RecordKey, load_or_create_key
from sessionconsole.record.store import (
    Entry,
    EntryDraft,
    SessionEndedError,
    SessionStore,
    StoreError,
    check_append_draft,
    session_end_draft,
    session_start_draft,
    utc_wall_now,
    wall_after,
)

log = logging.getLogger(__name__)

SAMPLES_KIND: Final = "samples"
GAP_KIND: Final = "gap"
DEFAULT_FLUSH_INTERVAL_S: Final = 0.25
DEFAULT_MAX_PENDING_SAMPLES: Final = 100_000
# Readings per samples entry (a compact chunk, see chunks.py). 250 ms at 100 Hz is 25; larger
# chunks only come from a flood or a stall, and this bounds one chunk's work holding the GIL.
MAX_SAMPLES_PER_ENTRY: Final = 16384
# Buffered samples (all devices) that make the loop hand the batch over before the timer does,
# so a flood is written in steady chunks instead of piling up for 250 ms.
HANDOVER_SAMPLES: Final = 3 * MAX_SAMPLES_PER_ENTRY
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_SCALAR_TYPES: Final = frozenset({type(None), bool, int, float, str})

T = TypeVar("T")
Scalar = None | bool | int | float | str
StoreFactory = Callable[[Path], SessionStore]
_GapKey = tuple[str, str, str]  # session_id, device_id, reason


class RecorderClosedError(RuntimeError):
    """The recorder was closed; nothing more can be recorded through it."""


@dataclass(slots=True)
class _Gap:
    """A run of samples of one device that could not be recorded."""

    from_mono_ns: int
    to_mono_ns: int
    samples_lost: int

    def widen(self, other: _Gap) -> None:
        """Fold another run of lost samples into this one."""
        self.from_mono_ns = min(self.from_mono_ns, other.from_mono_ns)
        self.to_mono_ns = max(self.to_mono_ns, other.to_mono_ns)
        self.samples_lost += other.samples_lost


def _merge_gap(gaps: dict[_GapKey, _Gap], key: _GapKey, gap: _Gap) -> None:
    """Add gap to gaps, widening an existing gap with the same session, device and reason."""
    existing = gaps.get(key)
    if existing is None:
        gaps[key] = gap
    else:
        existing.widen(gap)


@dataclass(slots=True)
class _Batch:
    """Samples (and backlog losses) collected since the last hand-over to the writer."""

    rows: dict[tuple[str, str], SampleColumns] = field(default_factory=dict)
    gaps: dict[_GapKey, _Gap] = field(default_factory=dict)
    count: int = 0

    def lose(self, session_id: str, device_id: str, times: Sequence[int], reason: str) -> None:
        """Count samples (at these times) that are not kept."""
        gap = _Gap(min(times), max(times), len(times))
        _merge_gap(self.gaps, (session_id, device_id, reason), gap)

    def __bool__(self) -> bool:
        """True when there is anything to write."""
        return bool(self.rows or self.gaps)


@dataclass(slots=True)
class _Job:
    """One unit of writer work: first the samples handed over with it, then its operation."""

    batch: _Batch | None
    op: Callable[[SessionStore], object] | None = None
    future: Future[Any] | None = None
    anchor: tuple[str, int, str] | None = None  # session_id, mono_ns, wall of the operation
    stop: bool = False


def _devices_of(batch: _Batch | None, session_id: str) -> list[tuple[str, SampleColumns]]:
    """The (device, rows) pairs of one session in a batch."""
    if batch is None:
        return []
    return [(device, rows) for (sid, device), rows in batch.rows.items() if sid == session_id]


def _check_text(text: str, what: str) -> None:
    """Refuse text UTF-8 cannot hold (a lone surrogate), which would fail a whole batch later."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{what} {text!r} holds a lone surrogate") from exc


def _check_columns(device_id: object, times: Sequence[Any], columns: object) -> None:
    """Refuse readings the record could not store exactly; whole columns at a time, in C loops.

    The messages name the device, the key and the first offending value.
    """
    if not isinstance(device_id, str) or not device_id:
        raise ValueError(f"device_id must be a non-empty str, got {device_id!r}")
    _check_text(device_id, "device_id")
    if times and (
        set(map(type, times)) != {int} or min(times) < _INT64_MIN or max(times) > _INT64_MAX
    ):
        bad = next(t for t in times if type(t) is not int or not _INT64_MIN <= t <= _INT64_MAX)
        raise ValueError(f"mono_ns must be 64-bit int nanoseconds, got {bad!r}")
    if not isinstance(columns, Mapping):
        raise ValueError(f"{device_id} sample values must be a dict, got {type(columns).__name__}")
    for key, column in columns.items():
        if not isinstance(key, str):
            raise ValueError(f"{device_id} sample key {key!r} is not a str")
        _check_text(key, f"{device_id} sample key")
        if len(column) != len(times):
            size = len(column)
            raise ValueError(f"{device_id} column {key!r} has {size} values for {len(times)}")
        _check_column(device_id, key, column)


def _check_column(device_id: str, key: str, column: Sequence[object]) -> None:
    """Refuse a column holding anything but finite JSON scalars (fast when it holds none)."""
    types = set(map(type, column))
    if not types <= _SCALAR_TYPES:
        for value in column:
            _check_value(device_id, key, value)
    if float in types:
        floats = column if len(types) == 1 else [v for v in column if type(v) is float]
        if not math.isfinite(sum(floats)):  # type: ignore[arg-type]  # NaN, ±inf, or overflow
            for value in floats:
                _check_value(device_id, key, value)
    if str in types:
        texts = column if len(types) == 1 else [v for v in column if type(v) is str]
        if not all(map(str.isascii, texts)):  # type: ignore[arg-type]
            for text in dict.fromkeys(texts):
                _check_text(text, f"{device_id} sample {key}")  # type: ignore[arg-type]


def _check_value(device_id: str, key: str, value: object) -> None:
    """Refuse a sample value that is not a finite JSON scalar."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{device_id} sample {key}={value!r}: NaN/Infinity not recordable")
        return
    if isinstance(value, str):
        _check_text(value, f"{device_id} sample {key}")
        return
    raise ValueError(f"{device_id} sample {key}={value!r} is not a JSON scalar")


def _snapshot(payload: Mapping[str, Any], where: str) -> JsonDict:
    """A deep, JSON-checked copy, so the caller may reuse its dict the moment we return."""
    check_json(payload, where)
    text = canonical_json(payload)
    _check_text(text, where)
    copy: JsonDict = json.loads(text)
    return copy


class Recorder:
    """Records sessions through a SessionStore owned by one dedicated writer thread."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_pending_samples: int = DEFAULT_MAX_PENDING_SAMPLES,
        key: RecordKey | None = None,
        store_factory: StoreFactory | None = None,
    ) -> None:
        """Start the writer thread; blocks until the store is open (raises if it cannot be).

        key signs every entry; None loads the installation key (record_key_path(), created on
        first use). A store_factory, if given, opens the store itself (and brings its own key).
        """
        self._path = Path(path)
        if store_factory is None:
            signing_key = key if key is not None else load_or_create_key(record_key_path())

            def store_factory(db: Path) -> SessionStore:
                return SessionStore(db, key=signing_key)

        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending_samples
        self._backlog_reason = f"recorder backlog above {max_pending_samples} samples"
        self._store_factory = store_factory
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._batch = _Batch()
        self._pending = 0  # samples accepted but not yet written or counted as lost
        self._closed = False
        self._ended: set[str] = set()
        self._gaps: dict[_GapKey, _Gap] = {}  # writer thread only
        self._anchors: dict[str, tuple[int, str]] = {}  # writer thread only
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="record-writer", daemon=True
        )
        self._thread.start()
        ready.result()

    # -- caller side (the asyncio loop): never blocks beyond a short lock ------------------

    def open_session(self, meta: Mapping[str, Any], mono_ns: int, wall: str) -> Future[str]:
        """Queue a new session; the future gives its id once session_start is on disk."""
        draft = session_start_draft(uuid.uuid4().hex, _snapshot(meta, "meta"), mono_ns, wall)

        def op(store: SessionStore) -> str:
            return store.open_session(draft.payload, mono_ns, wall, session_id=draft.session_id)

        return self._enqueue(op, (draft.session_id, mono_ns, wall))

    def submit(
        self, session_id: str, kind: str, payload: Mapping[str, Any], mono_ns: int, wall: str
    ) -> Future[Entry]:
        """Queue a durable entry; the future resolves after its COMMIT is synced to disk."""
        draft = EntryDraft(session_id, kind, _snapshot(payload, f"{kind} payload"), mono_ns, wall)
        check_append_draft(draft)
        return self._enqueue(
            lambda store: store.append_many([draft])[0], (session_id, mono_ns, wall)
        )

    def end_session(
        self,
        session_id: str,
        exit_status: str,
        reason: str | None,
        summary: Mapping[str, Any],
        mono_ns: int,
        wall: str,
    ) -> Future[Entry]:
        """Queue the session's end (after its buffered samples); resolves once synced."""
        summary_copy = _snapshot(summary, "session_end summary")
        session_end_draft(session_id, exit_status, reason, summary_copy, mono_ns, wall)

        def op(store: SessionStore) -> Entry:
            return store.end_session(session_id, exit_status, reason, summary_copy, mono_ns, wall)

        future = self._enqueue(op, (session_id, mono_ns, wall))
        with self._lock:
            self._ended.add(session_id)
        return future

    def close_interrupted(self, mono_ns: int, wall: str) -> Future[list[str]]:
        """Queue closing every unfinished session as interrupted (used at controller start)."""
        return self._enqueue(lambda store: store.close_interrupted(mono_ns, wall), None)

    def flush(self) -> Future[None]:
        """Queue writing every sample buffered so far; resolves when they are written or counted."""
        return self._enqueue(lambda store: None, None)

    def add_sample(
        self, session_id: str, device_id: str, mono_ns: int, values: Mapping[str, Scalar]
    ) -> None:
        """Buffer one reading (scalars only): add_samples with one reading."""
        if not isinstance(values, Mapping):
            kind = type(values).__name__
            raise ValueError(f"{device_id} sample values must be a dict, got {kind}")
        self.add_samples(session_id, device_id, [mono_ns], {k: [v] for k, v in values.items()})

    def add_samples(
        self,
        session_id: str,
        device_id: str,
        times: Sequence[int],
        columns: Mapping[str, Sequence[Scalar]],
    ) -> None:
        """Buffer many readings of one device given as columns (each as long as times).

        Every value is checked here, a column at a time; a bad one raises ValueError naming it,
        and nothing of the call is kept. The values are copied, so the caller may reuse its
        lists. Readings past the backlog bound are counted in a gap entry instead.
        """
        _check_columns(device_id, times, columns)
        count = len(times)
        if not count:
            return
        with self._lock:
            if self._closed:
                self._require_open()
            if session_id in self._ended:
                raise SessionEndedError(f"session {session_id} has ended; sample refused")
            batch = self._batch
            keep = max(0, min(count, self._max_pending - self._pending))
            if keep < count:
                batch.lose(session_id, device_id, times[keep:], self._backlog_reason)
                if not keep:
                    return
                times = times[:keep]
                columns = {key: column[:keep] for key, column in columns.items()}
            self._pending += keep
            buffer = batch.rows.get((session_id, device_id))
            if buffer is None:
                buffer = batch.rows[session_id, device_id] = SampleColumns()
            buffer.extend(times, columns)
            batch.count += keep
            if batch.count >= HANDOVER_SAMPLES:
                self._queue.put(_Job(self._take_batch()))

    def add_batch(self, session_id: str, batch: SampleBatch) -> Future[None]:
        """Take every device's readings gathered in batch (emptying it) and write them now;
        the future resolves once they are written (or counted in a gap).

        A device whose readings include one the record cannot hold (a NaN from a unit, say)
        has that hand-over kept as a gap entry naming the reason; the other devices are kept.
        """
        for device_id, readings in batch.take().items():
            try:
                self.add_samples(session_id, device_id, readings.times, readings.columns)
            except ValueError as exc:
                log.error("record: readings of %s not recordable: %s", device_id, exc)
                reason = f"readings not recordable: {exc}"
                self.add_gap(session_id, device_id, readings.times, reason)
        return self.flush()

    def add_gap(self, session_id: str, device_id: str, times: Sequence[int], reason: str) -> None:
        """Record that readings at these times were taken but could not be kept (a gap entry)."""
        if not times:
            return
        _check_text(reason, "gap reason")
        with self._lock:
            self._require_open()
            self._batch.lose(session_id, device_id, times, reason)

    def close(self, timeout: float | None = None) -> None:
        """Flush what is buffered, finish queued work, stop the writer thread and join it."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_Job(self._take_batch(), stop=True))
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"record writer for {self._path} still busy after {timeout} s")

    def __enter__(self) -> Recorder:
        """Use as a context manager that closes on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close (flush and join) on leaving the with block."""
        self.close()

    def _require_open(self) -> None:
        """Refuse work after close (call with the lock held)."""
        if self._closed:
            raise RecorderClosedError(f"recorder for {self._path} is closed")

    def _take_batch(self) -> _Batch | None:
        """Swap out the sample buffer (call with the lock held, and queue it at once)."""
        if not self._batch:
            return None
        batch, self._batch = self._batch, _Batch()
        return batch

    def _enqueue(
        self, op: Callable[[SessionStore], T], anchor: tuple[str, int, str] | None
    ) -> Future[T]:
        """Queue op behind the samples buffered so far, so the record keeps their order."""
        future: Future[T] = Future()
        with self._lock:
            self._require_open()
            self._queue.put(_Job(self._take_batch(), op, future, anchor))
        return future

    # -- writer thread ---------------------------------------------------------------------

    def _run(self, ready: Future[None]) -> None:
        """Writer thread body: open the store here (sqlite3 objects stay in their thread)."""
        try:
            store = self._store_factory(self._path)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        log.info("record writer started on %s", self._path)
        try:
            self._serve(store)
        finally:
            store.close()
            self._report_unrecorded_gaps()
            log.info("record writer stopped on %s", self._path)

    def _serve(self, store: SessionStore) -> None:
        """Take jobs until the stop job; schedule a sample flush every flush interval."""
        next_flush = time.monotonic() + self._flush_interval_s
        while True:
            now = time.monotonic()
            if now >= next_flush:
                self._schedule_flush()
                next_flush = now + self._flush_interval_s
            try:
                job = self._queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                continue
            self._handle(store, job)
            if job.stop:
                return

    def _schedule_flush(self) -> None:
        """Queue the buffered samples (and a retry of unwritten gaps) behind queued work."""
        with self._lock:
            if self._closed:
                return
            batch = self._take_batch()
            if batch is not None or self._gaps:
                self._queue.put(_Job(batch))

    def _handle(self, store: SessionStore, job: _Job) -> None:
        """Write the job's samples, then run its operation and settle its future."""
        try:
            self._write_samples(store, job.batch)
        except Exception:  # a bug here must not wedge the queue or strand futures
            log.exception("record writer: unexpected error writing samples")
        if job.op is not None and job.future is not None:
            self._run_op(store, job.op, job.future, job.anchor)

    def _run_op(
        self,
        store: SessionStore,
        op: Callable[[SessionStore], object],
        future: Future[Any],
        anchor: tuple[str, int, str] | None,
    ) -> None:
        """Run one durable operation; a cancelled waiter does not stop it being written."""
        waiting = future.set_running_or_notify_cancel()
        try:
            result = op(store)
        except Exception as exc:
            log.error("record write failed: %s: %s", type(exc).__name__, exc)
            if waiting:
                future.set_exception(exc)
            return
        if anchor is not None:
            self._anchors[anchor[0]] = (anchor[1], anchor[2])
        if waiting:
            future.set_result(result)

    def _write_samples(self, store: SessionStore, batch: _Batch | None) -> None:
        """Write pending gaps and the batch's samples, one transaction per session."""
        if batch is not None:
            for key, gap in batch.gaps.items():
                _merge_gap(self._gaps, key, gap)
        sessions = dict.fromkeys(key[0] for key in self._gaps)
        if batch is not None:
            sessions.update(dict.fromkeys(key[0] for key in batch.rows))
        try:
            for session_id in sessions:
                self._write_session(store, session_id, batch)
        finally:
            if batch is not None and batch.count:
                with self._lock:
                    self._pending -= batch.count

    def _write_session(self, store: SessionStore, session_id: str, batch: _Batch | None) -> None:
        """Append one session's pending gap and new samples entries in one transaction."""
        devices: list[tuple[str, SampleColumns]] = []
        samples_drafts: list[EntryDraft] = []
        for device, rows in _devices_of(batch, session_id):
            try:
                samples_drafts += self._samples_drafts(session_id, device, rows)
            except Exception as exc:  # a bug in packing: keep the loss on record, write the rest
                log.exception("record: samples of %s could not be packed", device)
                reason = f"samples could not be packed: {type(exc).__name__}: {exc}"
                gap = _Gap(min(rows.times), max(rows.times), len(rows))
                _merge_gap(self._gaps, (session_id, device, reason), gap)
            else:
                devices.append((device, rows))
        gap_keys = [key for key in self._gaps if key[0] == session_id]
        drafts = [self._gap_draft(key, self._gaps[key]) for key in gap_keys] + samples_drafts
        try:
            store.append_many(drafts)
        except (StoreError, ValueError) as exc:  # can never succeed: do not retry forever
            self._log_unrecordable(session_id, exc, gap_keys, devices)
        except Exception as exc:  # disk full, I/O error, database locked: keep them as gaps
            self._keep_as_gaps(session_id, exc, devices)
            return
        else:
            for key in gap_keys:
                self._log_gap_recorded(key)
        for key in gap_keys:
            del self._gaps[key]

    def _keep_as_gaps(
        self, session_id: str, exc: Exception, devices: list[tuple[str, SampleColumns]]
    ) -> None:
        """Count samples that failed to write into gaps, to be recorded once writing works."""
        reason = f"write failed: {type(exc).__name__}: {exc}"
        for device, cols in devices:
            gap = _Gap(min(cols.times), max(cols.times), len(cols))
            _merge_gap(self._gaps, (session_id, device, reason), gap)
        lost = sum(len(cols) for _, cols in devices)
        if lost:
            log.error("record: %d samples of session %s not written: %s", lost, session_id, reason)
        else:
            log.debug("record: gap entries of session %s still not written: %s", session_id, reason)

    def _log_gap_recorded(self, key: _GapKey) -> None:
        """Say that a gap entry now stands in the record for samples that were lost."""
        session_id, device_id, reason = key
        gap = self._gaps[key]
        log.warning(
            "record: gap of %d samples of %s recorded in session %s: %s",
            gap.samples_lost,
            device_id,
            session_id,
            reason,
        )

    def _log_unrecordable(
        self,
        session_id: str,
        exc: Exception,
        gap_keys: list[_GapKey],
        devices: list[tuple[str, SampleColumns]],
    ) -> None:
        """Say loudly which samples the record cannot hold at all (e.g. session unknown/ended)."""
        lost = sum(self._gaps[key].samples_lost for key in gap_keys)
        lost += sum(len(cols) for _, cols in devices)
        log.error("record: %d samples of session %s cannot be recorded: %s", lost, session_id, exc)

    def _gap_draft(self, key: _GapKey, gap: _Gap) -> EntryDraft:
        """The gap entry that records a run of lost samples."""
        session_id, device_id, reason = key
        payload = {
            "device": device_id,
            "from_mono_ns": gap.from_mono_ns,
            "to_mono_ns": gap.to_mono_ns,
            "samples_lost": gap.samples_lost,
            "reason": reason,
        }
        wall = self._wall_at(session_id, gap.from_mono_ns)
        return EntryDraft(session_id, GAP_KIND, payload, gap.from_mono_ns, wall)

    def _samples_drafts(
        self, session_id: str, device_id: str, rows: SampleColumns
    ) -> list[EntryDraft]:
        """The samples entries (compact chunks) for one device's buffered readings."""
        drafts = []
        for start in range(0, len(rows), MAX_SAMPLES_PER_ENTRY):
            times, columns = rows.part(start, start + MAX_SAMPLES_PER_ENTRY)
            payload = encode_chunk(device_id, times, columns)
            wall = self._wall_at(session_id, times[0])
            drafts.append(EntryDraft(session_id, SAMPLES_KIND, payload, times[0], wall))
        return drafts

    def _wall_at(self, session_id: str, mono_ns: int) -> str:
        """Wall time of a sample, from the session's latest (mono, wall) pair the caller gave."""
        anchor = self._anchors.get(session_id)
        if anchor is None:
            return utc_wall_now()
        return wall_after(anchor[1], mono_ns - anchor[0])

    def _report_unrecorded_gaps(self) -> None:
        """At shutdown, log every gap that could not be written (the disk never came back)."""
        for (session_id, device_id, reason), gap in self._gaps.items():
            log.error(
                "record: %d samples of %s in session %s (mono %d..%d) lost and unrecorded: %s",
                gap.samples_lost,
                device_id,
                session_id,
                gap.from_mono_ns,
                gap.to_mono_ns,
                reason,
            )
