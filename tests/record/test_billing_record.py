"""Billing from records written through the real Recorder/SessionStore, times injected."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionconsole.record.billable import bill_entries
from sessionconsole.record.billing import NS_PER_MINUTE, BillLine
from sessionconsole.record.cli import add_parser
from sessionconsole.record.recorder import Recorder
from sessionconsole.record.signing import RecordKey
from sessionconsole.record.store import SessionStore, wall_after

T0 = 7_000_000_000_000
WALL = "2026-11-03T10:00:00+00:00"
MIN = NS_PER_MINUTE
SEC = 1_000_000_000


class ScriptedSession:
    """Drives a Recorder like the controller does, with the monotonic clock given per step."""

    def __init__(self, recorder: Recorder, meta: dict[str, Any] | None = None) -> None:
        self.recorder = recorder
        self.sid = recorder.open_session(meta or {"therapist": "T-01"}, T0, WALL).result(5)

    def at(self, offset_ns: int, kind: str, payload: dict[str, Any]) -> None:
        """A durable entry at T0 + offset_ns, waited for like the controller's replies."""
        wall = wall_after(WALL, offset_ns)
        self.recorder.submit(self.sid, kind, payload, T0 + offset_ns, wall).result(5)

    def technique(self, name: str, begin_ns: int, end_ns: int, region: str = "lumbar") -> None:
        """A technique's begin and end entries, as the controller writes them."""
        for action, offset in (("begin", begin_ns), ("end", end_ns)):
            payload = {"action": action, "technique": name, "region": region, "side": "left"}
            self.at(offset, "technique", {**payload, "operator": "T-01"})

    def samples(self, device: str, on_from_ns: int, on_to_ns: int, until_ns: int) -> None:
        """1 Hz samples of one device from 0 to until_ns, output on in [on_from, on_to)."""
        for t in range(0, until_ns + 1, SEC):
            values = {"output_active": on_from_ns <= t < on_to_ns, "intensity_w_cm2": 1.0}
            self.recorder.add_sample(self.sid, device, T0 + t, values)

    def end(self, offset_ns: int) -> None:
        """The session_end entry."""
        wall = wall_after(WALL, offset_ns)
        self.recorder.end_session(self.sid, "completed", None, {}, T0 + offset_ns, wall).result(5)


@pytest.fixture
def recorder(tmp_path: Path, key: RecordKey) -> Iterator[Recorder]:
    """A Recorder on a real file, flushing only before work (the test owns the clock)."""
    with Recorder(tmp_path / "record.db", key=key, flush_interval_s=60) as recorder:
        yield recorder


def billed(recorder: Recorder, sid: str) -> Any:
    """Bill a session read back from the file through a separate store."""
    recorder.flush().result(5)
    with SessionStore(recorder._path, create=False) as store:
        return bill_entries(store.entries(sid))


@pytest.mark.parametrize(
    ("length_ns", "minutes", "units"),
    [(7 * MIN + 59 * SEC, 7, 0), (8 * MIN, 8, 1), (22 * MIN + 59 * SEC, 22, 1), (23 * MIN, 23, 2)],
)
def test_a_recorded_technique_at_the_edges(
    recorder: Recorder, length_ns: int, minutes: int, units: int
) -> None:
    session = ScriptedSession(recorder)
    session.technique("trigger_point", 1 * MIN, 1 * MIN + length_ns)
    session.end(30 * MIN)
    result = billed(recorder, session.sid)
    assert result.lines == (BillLine("97140", minutes, units, True),)


def test_a_combined_session_bills_techniques_ultrasound_and_stimulation(
    recorder: Recorder,
) -> None:
    session = ScriptedSession(recorder)
    session.at(0, "stream_descriptor", {"device": "us1", "model": "US-1", "keys": {}})
    session.at(0, "stream_descriptor", {"device": "es2", "modality": "stimulation", "keys": {}})
    session.at(0, "stream_descriptor", {"device": "tens", "modality": "stimulation", "keys": {}})
    # deep tissue 0-12 min; ultrasound on 10-20 min (2 min under the massage); attended
    # stimulation 20-29 min; unattended TENS 0-30 min
    session.technique("deep_tissue", 0, 12 * MIN)
    session.samples("us1", 10 * MIN, 20 * MIN, 31 * MIN)
    session.at(20 * MIN, "output_start", {"device": "es2", "attended": True})
    session.at(29 * MIN, "output_stop", {"device": "es2"})
    session.at(0, "output_start", {"device": "tens", "attended": False})
    session.at(30 * MIN, "output_stop", {"device": "tens"})
    session.end(31 * MIN)
    result = billed(recorder, session.sid)
    # timed: 97124 12 + 97035 8 + 97032 9 = 29 min → 2 units; leftovers 12, 9, 8 → 97124, 97032
    assert result.lines == (
        BillLine("97032", 9, 1, True),
        BillLine("97035", 8, 0, True),
        BillLine("97124", 12, 1, True),
        BillLine("97014", 30, 1, False),
    )
    assert (result.timed_minutes, result.timed_units) == (29, 2)
    assert result.notes[0] == (
        "2 min 0 s of 97035 overlapped 97124 and counts as 97124 only "
        "(the hands-on technique takes the minute)"
    )


def test_a_technique_never_ended_is_closed_at_session_end_and_noted(recorder: Recorder) -> None:
    session = ScriptedSession(recorder)
    session.at(
        0,
        "technique",
        {"action": "begin", "technique": "lymphatic_drainage", "region": "calf", "side": "right"},
    )
    session.end(15 * MIN)
    result = billed(recorder, session.sid)
    assert result.lines == (BillLine("97140", 15, 1, True),)
    assert (
        result.notes[0] == "lymphatic_drainage on calf (right) never ended: closed at session end"
    )


def test_records_bill_prints_the_bill(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    session = ScriptedSession(recorder)
    session.at(0, "stream_descriptor", {"device": "us1", "model": "US-1", "keys": {}})
    session.technique("sports_massage", 0, 10 * MIN)
    session.samples("us1", 5 * MIN, 15 * MIN, 16 * MIN)
    session.end(16 * MIN)
    recorder.close()
    parser = argparse.ArgumentParser(prog="sessionconsole")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["records", "bill", "last", "--db", str(recorder._path)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"session {session.sid}",
        "code     minutes  units",
        "97035          5      0",
        "97124         10      1",
        "timed: 15 minutes, 1 units",
        "note: 5 min 0 s of 97035 overlapped 97124 and counts as 97124 only "
        "(the hands-on technique takes the minute)",
    ]
