"""History: the real `records` commands on a written session; open its summary, export, F12."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message
from textual.widgets import Input

from sessionconsole.api.messages import StopAllCommand
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.cli_runner import RecordsAccess
from sessionconsole.ui.messages import SendCommand
from sessionconsole.ui.past.parse import parse_list, summary_from_entries
from sessionconsole.ui.past.screen import HistoryScreen
from sessionconsole.ui.summary.screen import SummaryScreen
from tests.record.export_support import write_session
from tests.ui.fixed_snapshots import FakeClock
from tests.ui.test_session_views import screen_text

LIST = (
    "S-1  2026-11-03T10:00:00+00:00  2026-11-03T10:02:39+00:00  completed  9 entries  T-01  P-7Q2\n"
    "S-2  2026-11-04T09:00:00+00:00  -  open  3 entries  -  -\n"
)


def test_records_list_lines_are_read_field_by_field() -> None:
    first, second = parse_list(LIST)
    assert (first.session_id, first.status, first.entries, first.patient) == (
        "S-1",
        "completed",
        9,
        "P-7Q2",
    )
    assert (second.ended, second.status, second.therapist) == ("-", "open", "-")
    assert parse_list("no sessions recorded\n") == []


def test_a_past_summary_pairs_output_runs_and_names_who_acknowledged() -> None:
    def entry(kind: str, s: float, **payload: object) -> dict[str, object]:
        return {"kind": kind, "mono_ns": int(s * 1e9), "payload": payload}

    us = {"frequency_khz": 3000, "intensity_w_cm2": 0.5, "duty_pct": 50, "time_s": 300}
    alarm = {"alarm_id": 2, "rule_id": "R", "priority": "high", "device": "us1", "message": "m"}
    summary = summary_from_entries(
        "S-9",
        [
            entry("output_start", 10, device="us1", modality="ultrasound", settings=us),
            entry("alarm", 20, change="raised", acknowledged_by=None, **alarm),
            entry("alarm", 25, change="acknowledged", acknowledged_by="dana", **alarm),
            entry("output_stop", 130, device="us1"),
            entry("pain_score", 140, when="after", score=2),
        ],
    )
    us1 = summary.outputs["us1"]
    assert us1.on_time_s == 120.0 and us1.settings == ["3 MHz, 0.50 W/cm², duty 50 %, 300 s"]
    assert [(a.priority, a.acknowledged_by) for a in summary.alarms] == [("high", "dana")]
    assert summary.pain_after == 2 and summary.source.startswith("from the session record")


async def test_history_lists_opens_and_exports_a_recorded_session(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    sid = write_session(db, seconds=30, hz=5)
    records = RecordsAccess(db=str(db), export_dir=str(tmp_path / "out"))
    app = SessionConsoleApp(
        "/none.sock", "dana", autoconnect=False, clock=FakeClock(), records=records
    )
    posted: list[Message] = []
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        await pilot.press("f5")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await pilot.wait_for_scheduled_animations()
        for _ in range(300):  # up to 30 s: a `records` child process on a loaded machine
            await pilot.pause(0.1)
            if history.sessions:
                break
        assert [s.session_id for s in history.sessions] == [sid]
        assert history.sessions[0].patient == "P-7Q2"
        await pilot.press("e")
        for _ in range(300):  # up to 30 s: a `records` child process on a loaded machine
            await pilot.pause(0.1)
            if "Exported" in str(history.status.render()):
                break
        assert "Exported" in str(history.status.render()), history.status.render()
        assert (tmp_path / "out" / f"{sid}.html").read_text().startswith("<!")
        history.table.focus()
        await pilot.press("enter")
        for _ in range(300):  # up to 30 s: a `records` child process on a loaded machine
            await pilot.pause(0.1)
            # wait for the bill itself: the "running ... records bill <id>" line that comes
            # first may contain "97" too, inside the random session id
            bill = str(app.screen.bill.render()) if isinstance(app.screen, SummaryScreen) else ""
            if "Billing (from the session record)" in bill:
                break
        summary = app.screen
        assert isinstance(summary, SummaryScreen)
        text = screen_text(app)
        assert "from the session record" in text and "us1" in text and "6/10" in text
        assert "Billing (from the session record)" in str(summary.bill.render())
        await pilot.press("f12")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is history
        history.query_one("#since", Input).focus()
        await pilot.press("f12")  # in a text field too
        await pilot.pause()
        unique = {id(m): m for m in posted if isinstance(m, SendCommand)}
        assert sum(isinstance(m.command, StopAllCommand) for m in unique.values()) == 2


async def test_without_a_database_history_says_what_to_run() -> None:
    app = SessionConsoleApp("/none.sock", "dana", autoconnect=False, clock=FakeClock())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await pilot.pause()
        assert "sessionconsole records list --db DB" in str(
            app.screen.query_one("#history-status").render()
        )
