"""The summary screen from fixed snapshots: tally, bill and export through a fake CLI, F12."""

from __future__ import annotations

from textual.message import Message

from sessionconsole.api.messages import NoteCommand, PainScoreCommand, StopAllCommand
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.cli_runner import RecordsAccess
from sessionconsole.ui.messages import SendCommand
from sessionconsole.ui.summary.screen import SummaryScreen
from sessionconsole.ui.summary.tally import LiveTally
from tests.ui.fake_cli import FakeCli
from tests.ui.fixed_snapshots import COUPLING_ALARM, OLD_ALARM, FakeClock, feed, snapshot
from tests.ui.test_session_views import screen_text

BILL = "session S-2026-11-12-0007\ncode     minutes  units\n97035          3      0\n"


def stop_alls(posted: list[Message]) -> int:
    unique = {id(m): m for m in posted if isinstance(m, SendCommand)}
    return sum(isinstance(m.command, StopAllCommand) for m in unique.values())


def test_the_tally_counts_on_time_energy_alarms_pain_and_notes() -> None:
    tally = LiveTally()
    for i in range(361):  # 180 s, a snapshot every 0.5 s
        tally.add_snapshot(snapshot(i * 0.5, i, (OLD_ALARM, COUPLING_ALARM)), i * 0.5)
    tally.accepted(PainScoreCommand(when="before", score=6))
    tally.accepted(PainScoreCommand(when="after", score=3))
    tally.accepted(NoteCommand(text="calf tender"))
    summary = tally.summary
    assert summary is not None and summary.session_id == "S-2026-11-12-0007"
    us1, ch2 = summary.outputs["us1"], summary.outputs["es2.ch2"]
    assert us1.on_time_s == 180.0 and us1.energy_j == 900  # 5 J/s for 180 s
    assert us1.settings == ["1 MHz, 1.00 W/cm², duty 100 %, 300 s"]
    assert ch2.on_time_s == 0.0 and ch2.settings == []
    assert us1.alarms == 1 and summary.outputs["cx3.us"].alarms == 1
    assert (summary.pain_before, summary.pain_after, summary.notes) == (6, 3, ["calf tender"])
    tally.add_snapshot(snapshot(0.0, 0).model_copy(update={"session_id": "S-next"}), 200.0)
    assert tally.summary is not None and tally.summary.outputs["us1"].on_time_s == 0.0


async def test_summary_bills_and_exports_through_the_records_commands() -> None:
    clock, posted = FakeClock(), []
    cli = FakeCli({("records", "bill"): (0, BILL), ("records", "export"): (0, "")})
    records = RecordsAccess(db="/srv/sc.db", export_dir="/tmp/sc-test-exports", run=cli)
    app = SessionConsoleApp("/none.sock", "dana", autoconnect=False, clock=clock, records=records)
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        feed(app, clock, seconds=60, alarms=(COUPLING_ALARM,))
        await pilot.press("f4")
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, SummaryScreen)
        body = screen_text(app)
        assert "from this console's view" in body and "es2.ch1" in body and "1:00" in body
        assert "97035" in str(screen.bill.render())
        await pilot.press("h")
        await pilot.pause(0.2)
        assert cli.calls == [
            ("records", "bill", "S-2026-11-12-0007", "--db", "/srv/sc.db"),
            (
                "records",
                "export",
                "S-2026-11-12-0007",
                "--db",
                "/srv/sc.db",
                "--format",
                "html",
                "-o",
                "/tmp/sc-test-exports/S-2026-11-12-0007.html",
            ),
        ]
        assert "Exported HTML: /tmp/sc-test-exports/S-2026-11-12-0007.html" in str(
            screen.status.render()
        )
        await pilot.press("f12")
        await pilot.click("#stop-all-summary")
        await pilot.pause()
        assert stop_alls(posted) == 2
        await pilot.press("escape")
        assert app.screen is app.session_screen


async def test_without_a_database_the_summary_shows_the_commands_to_run() -> None:
    clock = FakeClock()
    app = SessionConsoleApp("/none.sock", "dana", autoconnect=False, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        feed(app, clock, seconds=5)
        await pilot.press("f4")
        await pilot.pause()
        bill = str(app.summary_screen.bill.render())
        assert "sessionconsole records bill S-2026-11-12-0007 --db DB" in bill
        await pilot.click("#export-json")
        await pilot.pause()
        assert "Not exported: no --db given" in str(app.summary_screen.status.render())
