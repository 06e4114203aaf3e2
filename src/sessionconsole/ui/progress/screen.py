"""Progress: one patient's pain (NPRS) and range of motion over sessions, and goal statuses.

The report comes from `sessionconsole progress --format json` in a worker (the UI may not
import `record`); sessions that fail verification are charted with a mark and named above.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Static

from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.ui.cli_runner import RecordsAccess, command_line
from sessionconsole.ui.messages import stop_all
from sessionconsole.ui.progress.chart import (
    goal_lines,
    pain_chart,
    rom_chart,
    verification_summary,
)
from sessionconsole.ui.progress.parse import ProgressReport, parse_report

REPORT_EXIT_CODES = (0, 1, 3)  # verified, a session failed, some not proven: JSON printed


class ProgressScreen(Screen[None]):
    """Charts of one patient's sessions; Enter in the field loads, M shows the next ROM."""

    CSS_PATH = "progress.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+r", "reload", "Reload", key_display="^R"),
        Binding("ctrl+n", "next_rom", "Next ROM", key_display="^N"),
    ]

    def __init__(self, records: RecordsAccess, vocabulary: Vocabulary, patient: str = "") -> None:
        super().__init__(id="progress")
        self.records = records
        self.vocabulary = vocabulary
        self.initial_patient = patient
        self.report: ProgressReport | None = None
        self.rom_index = 0
        self.verification = Static("", id="progress-verification")
        self.pain = Static("", id="progress-pain")
        self.rom = Static("", id="progress-rom")
        self.goals = Static("", id="progress-goals")
        self.status = Static("", id="progress-status")

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="progress-patient-row"):
            yield Input(
                self.initial_patient,
                placeholder="patient pseudonym, e.g. PT-0042 (Enter)",
                id="progress-patient",
                compact=True,
            )
            yield Button("Load (^R)", id="progress-load", compact=True)
        yield self.verification
        with VerticalScroll(id="progress-scroll"):
            yield self.pain
            yield self.rom
            yield self.goals
        yield self.status
        yield Button("STOP ALL   (F12)", id="stop-all-progress", classes="stop-all")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#progress-patient", Input).focus()
        if self.initial_patient:
            self.action_reload()
        else:
            self.status.update("Type the patient's pseudonym and press Enter")

    def progress_args(self) -> list[str]:
        """`sessionconsole progress` for the pseudonym typed in, as JSON."""
        patient = self.query_one("#progress-patient", Input).value.strip()
        return ["progress", patient, "--db", self.records.db or "DB", "--format", "json"]

    def action_reload(self) -> None:
        args = self.progress_args()
        if not args[1]:
            self.status.update("Type the patient's pseudonym first")
            return
        if self.records.db is None:
            self.status.update(
                "Progress reads the session record: start the console with --db PATH, or run "
                + command_line(args[:-2])
            )
            return
        self.status.update(f"Reading the record for {args[1]}…")
        self._load(args)

    @work(exclusive=True, group="progress-load")
    async def _load(self, args: list[str]) -> None:
        result = await self.records.run(args)
        if result.code not in REPORT_EXIT_CODES:
            self.status.update(f"progress failed (exit {result.code}): {result.stderr.strip()}")
            return
        try:
            report = parse_report(result.stdout)
        except ValueError as exc:
            self.status.update(f"progress printed something unreadable: {exc}")
            return
        self.show_report(report)

    def show_report(self, report: ProgressReport) -> None:
        """Draw the charts of a report (the first ROM series measured)."""
        self.report, self.rom_index = report, 0
        summary = verification_summary(report)
        self.verification.update(Text(summary))
        self.verification.set_class(summary.startswith("FAILED"), "failed")
        self.pain.update(Text("\n".join(pain_chart(report))))
        self.goals.update(Text("\n".join(goal_lines(report))))
        self._draw_rom()
        count = len(report.rom_series())
        more = "   ^N: next ROM measure" if count > 1 else ""
        self.status.update(f"{report.pseudonym}: {len(report.sessions)} sessions{more}")

    def _draw_rom(self) -> None:
        report = self.report
        series = report.rom_series() if report is not None else []
        if report is None or not series:
            self.rom.update("ROM: no range-of-motion readings recorded")
            return
        chosen = series[self.rom_index % len(series)]
        position = f"   ({self.rom_index % len(series) + 1} of {len(series)})"
        lines = rom_chart(report, chosen, self.vocabulary)
        lines[0] += position if len(series) > 1 else ""
        self.rom.update(Text("\n".join(lines)))

    def action_next_rom(self) -> None:
        self.rom_index += 1
        self._draw_rom()

    @on(Input.Submitted, "#progress-patient")
    def _submitted(self) -> None:
        self.action_reload()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop-all-progress":
            self.post_message(stop_all())
        elif event.button.id == "progress-load":
            self.action_reload()
