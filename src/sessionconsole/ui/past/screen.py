"""Past sessions from the record (`records list`): filter, open a summary, export."""

from __future__ import annotations

import json
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from sessionconsole.ui.cli_runner import RecordsAccess, command_line
from sessionconsole.ui.messages import stop_all
from sessionconsole.ui.past.parse import PastSession, parse_list, summary_from_entries
from sessionconsole.ui.summary.screen import SummaryScreen

COLUMNS = ("Session (prefix)", "Started (UTC)", "Status", "Patient", "Therapist", "Entries")


class HistoryScreen(Screen[None]):
    """The record's sessions, newest first; Enter opens one's summary, E exports it as HTML."""

    CSS_PATH = "past.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("e", "export", "Export HTML"),
    ]

    def __init__(self, records: RecordsAccess) -> None:
        super().__init__(id="history")
        self.records = records
        self.sessions: list[PastSession] = []
        self.table: DataTable[str] = DataTable(id="history-table", cursor_type="row")
        self.status = Static("", id="history-status")

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="history-filters"):
            yield Input(placeholder="since YYYY-MM-DD", id="since", compact=True)
            yield Input(placeholder="patient pseudonym", id="patient", compact=True)
            yield Button("Reload (R)", id="reload", compact=True)
        yield self.table
        yield self.status
        yield Button("STOP ALL   (F12)", id="stop-all-history", classes="stop-all")
        yield Footer()

    def on_mount(self) -> None:
        self.table.add_columns(*COLUMNS)
        self.table.focus()  # the keys (Enter, E, R) work at once; Tab reaches the filters
        self.action_reload()

    def list_args(self) -> list[str]:
        """`records list` with the filters typed in."""
        args = ["records", "list", "--db", self.records.db or "DB"]
        for option in ("since", "patient"):
            value = self.query_one(f"#{option}", Input).value.strip()
            if value:
                args += [f"--{option}", value]
        return args

    def action_reload(self) -> None:
        args = self.list_args()
        if self.records.db is None:
            self.status.update(
                "History reads the session record: start the console with --db PATH, or run "
                + command_line(args)
            )
            return
        self.status.update("Reading the record…")
        self._load(args)

    @work(exclusive=True, group="history-list")
    async def _load(self, args: list[str]) -> None:
        result = await self.records.run(args)
        if not result.ok:
            self.status.update(f"records list failed (exit {result.code}): {result.stderr.strip()}")
            return
        self.sessions = list(reversed(parse_list(result.stdout)))
        self.table.clear()
        for s in self.sessions:
            row = (
                s.session_id[:12],
                s.started[:16],
                s.status,
                s.patient,
                s.therapist,
                str(s.entries),
            )
            self.table.add_row(*row, key=s.session_id)
        self.status.update(
            f"{len(self.sessions)} sessions. Enter: summary   E: export HTML"
            if self.sessions
            else result.stdout.strip() or "no sessions"
        )

    def selected(self) -> str | None:
        """The session under the cursor."""
        if not self.sessions or self.table.cursor_row < 0:
            return None
        return self.sessions[min(self.table.cursor_row, len(self.sessions) - 1)].session_id

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        session_id = event.row_key.value
        if session_id is not None:
            self.status.update(f"Opening {session_id}…")
            self._open_summary(session_id)

    @work(exclusive=True, group="history-open")
    async def _open_summary(self, session_id: str) -> None:
        db = self.records.db or "DB"
        result = await self.records.run(["records", "show", session_id, "--json", "--db", db])
        if not result.ok:
            self.status.update(f"records show failed (exit {result.code}): {result.stderr.strip()}")
            return
        try:
            entries = json.loads(result.stdout)
        except ValueError as exc:
            self.status.update(f"records show printed something unreadable: {exc}")
            return
        screen = SummaryScreen(self.records)
        await self.app.push_screen(screen)
        screen.show_summary(summary_from_entries(session_id, entries))
        screen.action_bill()
        self.status.update("")

    def action_export(self) -> None:
        session_id = self.selected()
        if session_id is None:
            self.status.update("No session selected")
            return
        if self.records.db is None:
            args = self.records.export_args(session_id, "html")
            self.status.update("Not exported: no --db given. Run: " + command_line(args))
            return
        self.status.update(f"Exporting {session_id}…")
        self._export(session_id)

    @work(group="history-export")
    async def _export(self, session_id: str) -> None:
        args, result = await self.records.export(session_id, "html")
        if result.ok:
            self.status.update(f"Exported HTML: {args[-1]}")
        else:
            self.status.update(f"Export failed (exit {result.code}): {result.stderr.strip()}")

    @on(Input.Submitted)
    def _filter(self) -> None:
        self.action_reload()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop-all-history":
            self.post_message(stop_all())
        elif event.button.id == "reload":
            self.action_reload()
