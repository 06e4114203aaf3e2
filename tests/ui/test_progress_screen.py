"""Progress (F6): the real `progress` command on records written by the Recorder; charts read
without colour at 80x24, a tampered session is named, F12 works from the screen."""

from __future__ import annotations

import json
from pathlib import Path

from textual.message import Message
from textual.widgets import Input

from sessionconsole.api.messages import StopAllCommand
from sessionconsole.model.paths import config_dir
from sessionconsole.model.vocabulary import load_vocabulary
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.cli_runner import RecordsAccess
from sessionconsole.ui.messages import SendCommand
from sessionconsole.ui.progress.chart import pain_chart, rom_chart, verification_summary
from sessionconsole.ui.progress.parse import (
    GoalMark,
    ProgressReport,
    RomReading,
    SessionRow,
    parse_report,
)
from sessionconsole.ui.progress.screen import ProgressScreen
from tests.record.progress_support import three_visits
from tests.record.test_store import tamperer
from tests.ui.fixed_snapshots import FakeClock
from tests.ui.test_session_views import screen_text

VOCABULARY = load_vocabulary(config_dir() / "vocabulary.toml")
KNEE = ("knee", "flexion", "right", "active")


def row(day: str, before: int | None, after: int | None, knee: int | None, **kw: str) -> SessionRow:
    rom = () if knee is None else (RomReading(*KNEE[:3], "active", knee),)
    goals = (GoalMark("walk 400 m", kw.get("goal", "progressing"), ""),)
    verification = kw.get("verification", "verified")
    problem = kw.get("problem")
    return SessionRow(
        f"s-{day}", f"{day}T09:00:00+00:00", verification, problem, before, after, rom, goals
    )


def test_pain_marks_are_letters_on_an_axis_with_the_numbers_beside() -> None:
    report = ProgressReport("PT-0042", (row("2026-03-02", 7, 5, 85), row("2026-03-09", 4, 4, None)))
    title, axis, first, second = pain_chart(report)
    assert "B = before" in title and "A = after" in title
    assert axis.split() == ["0", "2", "4", "6", "8", "10"]
    cells = first[12:33]
    assert cells.index("B") == 14 and cells.index("A") == 10 and first.endswith("B 7  A 5")
    assert second[12:33].index("*") == 8 and "B" not in second[12:33]  # the same score twice


def test_rom_bars_scale_on_the_normal_value_and_say_how_far_off_it_is() -> None:
    report = ProgressReport(
        "PT-0042",
        (
            row("2026-03-02", None, None, 54),
            row("2026-03-09", None, None, None),
            row("2026-03-16", None, None, 135, verification="failed", problem="entry 3"),
        ),
    )
    title, first, missing, last = rom_chart(report, KNEE, VOCABULARY)
    assert title == "ROM: Knee flexion, right, active   normal 135 deg (AAOS)"
    assert first.count("#") == 12 and first.endswith(" 54 deg  40% of normal")
    assert missing.endswith("not measured")
    assert last.count("#") == 30 and last.endswith("135 deg  100% of normal  ! FAILED")
    assert verification_summary(report).startswith("FAILED verification")
    assert all(len(line) <= 78 for line in (title, first, missing, last))


def test_a_document_of_another_shape_is_refused() -> None:
    for text in ('{"version": 2}', '{"version": 1, "pseudonym": "P"}', "[]"):
        try:
            parse_report(text)
        except ValueError as exc:
            assert "version" in str(exc) or "not a progress report" in str(exc)
        else:
            raise AssertionError(f"{text} was read as a report")


async def wait_for_report(pilot: object, screen: ProgressScreen) -> None:
    for _ in range(300):  # up to 30 s: a `progress` child process on a loaded machine
        await pilot.pause(0.1)  # type: ignore[attr-defined]
        if screen.report is not None:
            return
    raise AssertionError(f"no report: {screen.status.render()}")


async def test_progress_charts_a_patients_recorded_sessions(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    three_visits(db)
    records = RecordsAccess(db=str(db), export_dir=str(tmp_path / "out"))
    app = SessionConsoleApp(
        "/none.sock", "dana", autoconnect=False, clock=FakeClock(), records=records
    )
    posted: list[Message] = []
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        await pilot.press("f6")
        screen = app.screen
        assert isinstance(screen, ProgressScreen)
        await pilot.press("f12")  # in the pseudonym field, before anything is loaded
        await pilot.press(*"PT-0042", "enter")
        await wait_for_report(pilot, screen)
        assert screen.report is not None and len(screen.report.sessions) == 3
        text = screen_text(app)
        assert "All 3 sessions verified" in text
        assert "2026-03-02  ..........A...B......  B 7  A 5" in text  # A at 5, B at 7
        assert "ROM: Knee flexion, right, active" in text and "(1 of 2)" in text
        assert "2026-03-16  " + "#" * 27 + "...  120 deg  89% of normal" in text
        assert max(len(line) for line in text.splitlines()) <= 80
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert "ROM: Knee flexion, right, passive" in str(screen.rom.render())
        screen.query_one("#progress-scroll").focus()
        await pilot.press("end")
        await pilot.pause()
        goals = str(screen.goals.render())
        assert "walk 400 m without a rest: not-started > progressing (250 m) > met (420 m)" in goals
        await pilot.press("f12")  # away from the field too
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.session_screen
    unique = {id(m): m for m in posted if isinstance(m, SendCommand)}
    assert sum(isinstance(m.command, StopAllCommand) for m in unique.values()) == 2


async def test_a_tampered_session_is_named_above_the_chart(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    first, *_ = three_visits(db)
    with tamperer(db) as conn:
        seq, payload = conn.execute(
            "SELECT seq, payload FROM entries WHERE session_id = ? AND kind = 'pain_score'",
            (first,),
        ).fetchone()
        edited = json.dumps(json.loads(payload) | {"score": 2})
        conn.execute(
            "UPDATE entries SET payload = ? WHERE session_id = ? AND seq = ?", (edited, first, seq)
        )
    records = RecordsAccess(db=str(db), export_dir=str(tmp_path / "out"))
    app = SessionConsoleApp(
        "/none.sock", "dana", autoconnect=False, clock=FakeClock(), records=records
    )
    async with app.run_test(size=(80, 24)) as pilot:
        screen = ProgressScreen(records, app.vocabulary, patient="PT-0042")
        await app.push_screen(screen)
        await wait_for_report(pilot, screen)
        banner = str(screen.verification.render())
        assert banner.startswith("FAILED verification") and f"entry {seq} (pain_score)" in banner
        assert screen.verification.has_class("failed")
        assert "B 2  A 5  ! FAILED" in str(screen.pain.render())


async def test_without_a_database_progress_says_what_to_run() -> None:
    app = SessionConsoleApp("/none.sock", "dana", autoconnect=False, clock=FakeClock())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await pilot.pause()
        field = app.screen.query_one("#progress-patient", Input)
        assert field.has_focus
        await pilot.press(*"PT-0042", "enter")
        await pilot.pause()
        status = str(app.screen.query_one("#progress-status").render())
        assert "sessionconsole progress PT-0042 --db DB" in status
