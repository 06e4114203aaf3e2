"""The summary screen: the session in one page, its bill and export buttons (record via CLI)."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from sessionconsole.ui.cli_runner import RecordsAccess, command_line
from sessionconsole.ui.messages import stop_all
from sessionconsole.ui.summary.tally import SessionSummary
from sessionconsole.ui.summary.view import summary_renderable

EXPORT_FORMATS = ("html", "json", "csv", "fhir")


class SummaryScreen(Screen[None]):
    """Per output: settings, on-time, energy, alarms; pain, notes; billing units; exports."""

    CSS_PATH = "summary.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("b", "bill", "Bill"),
        Binding("h", "export('html')", "Export HTML"),
    ]

    def __init__(self, records: RecordsAccess, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.records = records
        self.summary: SessionSummary | None = None
        self.body = Static("No session seen yet.", id="summary-body")
        self.bill = Static("", id="summary-bill")
        self.status = Static("", id="summary-status")

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="summary-scroll"):
            yield self.body
            yield self.bill
        with Horizontal(id="summary-actions"):
            yield Button("Bill (B)", id="bill", compact=True)
            yield Static("Export:", classes="actions-label")
            for fmt in EXPORT_FORMATS:
                yield Button(fmt.upper(), id=f"export-{fmt}", compact=True)
        yield self.status
        yield Button("STOP ALL   (F12)", id="stop-all-summary", classes="stop-all")
        yield Footer()

    def show_summary(self, summary: SessionSummary | None) -> None:
        """Draw a summary (or say there is none); the bill is fetched anew on request."""
        self.summary = summary
        if summary is None:
            self.body.update(
                "No session seen yet: the summary is built from what this console "
                "draws, so connect to the controller first."
            )
            return
        self.body.update(summary_renderable(summary))
        if self.records.db is None:
            self.bill.update(
                "Billing units and exports come from the session record. This console was "
                "started without --db; run:\n  "
                + command_line(self.records.bill_args(summary.session_id))
            )

    def action_bill(self) -> None:
        session_id = self._session_or_say()
        if session_id is None:
            return
        args = self.records.bill_args(session_id)
        if self.records.db is None:
            self.bill.update(
                "Billing needs the session record (no --db given). Run:\n  " + command_line(args)
            )
            return
        self.bill.update(f"Billing: running {command_line(args)} …")
        self._bill(args)

    def action_export(self, fmt: str) -> None:
        session_id = self._session_or_say()
        if session_id is None:
            return
        args = self.records.export_args(session_id, fmt)
        if self.records.db is None:
            self.status.update("Not exported: no --db given. Run: " + command_line(args))
            return
        self.status.update(f"Exporting {fmt.upper()}…")
        self._export(session_id, fmt)

    def _session_or_say(self) -> str | None:
        if self.summary is None:
            self.status.update("No session to bill or export yet")
            return None
        return self.summary.session_id

    @work(exclusive=True, group="summary-bill")
    async def _bill(self, args: list[str]) -> None:
        result = await self.records.run(args)
        if result.ok:
            self.bill.update("Billing (from the session record):\n" + result.stdout.rstrip())
        else:
            self.bill.update(f"Billing failed (exit {result.code}): {result.stderr.strip()}")

    @work(group="summary-export")
    async def _export(self, session_id: str, fmt: str) -> None:
        args, result = await self.records.export(session_id, fmt)
        where = args[-1]
        if result.ok:
            self.status.update(f"Exported {fmt.upper()}: {where}")
        else:
            self.status.update(f"Export failed (exit {result.code}): {result.stderr.strip()}")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        if button == "stop-all-summary":
            self.post_message(stop_all())
        elif button == "bill":
            self.action_bill()
        elif button.startswith("export-"):
            self.action_export(button.removeprefix("export-"))
