"""Alarm views: the session's alarm list, and the full-screen view of an escalated high alarm."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Static

from sessionconsole.api.messages import AcknowledgeCommand, AlarmSnapshot, Snapshot
from sessionconsole.ui.messages import AudioPause, SendCommand, stop_all
from sessionconsole.ui.render import active_alarms

ALARM_COLUMNS = ("#", "Priority", "Raised", "Device", "Alarm", "Now", "Acknowledged by")


def alarm_row(alarm: AlarmSnapshot) -> tuple[str, ...]:
    """One alarm as a list row, its priority and state in words."""
    if alarm.active:
        now = "ACTIVE" if alarm.cause_present else "latched, cause gone"
    else:
        now = "cleared"
    return (
        str(alarm.id),
        alarm.priority.upper(),
        alarm.raised_wall[11:19] if len(alarm.raised_wall) >= 19 else alarm.raised_wall,
        alarm.device or "all",
        f"{alarm.rule_id}: {alarm.message}",
        now,
        alarm.acknowledged_by or ("yes" if alarm.acknowledged else "not yet"),
    )


class AlarmListScreen(Screen[None]):
    """Every alarm of the session, newest first, with times and who acknowledged."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,l", "app.pop_screen", "Back"),
        Binding("a", "acknowledge", "Acknowledge all"),
    ]

    def __init__(self) -> None:
        super().__init__(id="alarm-list")
        self.table: DataTable[str] = DataTable(
            id="alarm-table", cursor_type="row", zebra_stripes=True
        )
        self._shown: tuple[AlarmSnapshot, ...] = ()
        self._alarms: tuple[AlarmSnapshot, ...] = ()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Alarms of this session (newest first). Esc: back.", classes="hint")
        yield self.table
        yield Button("STOP ALL   (F12)", id="stop-all-alarms", classes="stop-all")
        yield Footer()

    def on_mount(self) -> None:
        self.table.add_columns(*ALARM_COLUMNS)
        self._draw()

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the session's alarms; redraw the list when one changed and the list is up."""
        self._alarms = tuple(sorted(snapshot.alarms, key=lambda a: -a.id))
        if self.is_mounted:
            self._draw()

    def _draw(self) -> None:
        alarms = self._alarms
        if alarms == self._shown:
            return
        self._shown = alarms
        self.table.clear()
        for alarm in alarms:
            self.table.add_row(*alarm_row(alarm), key=str(alarm.id))

    def action_acknowledge(self) -> None:
        self.post_message(SendCommand(AcknowledgeCommand(), "Alarms acknowledged"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop-all-alarms":
            self.post_message(stop_all())


class AlarmEscalationScreen(ModalScreen[None]):
    """A high alarm nobody acknowledged: the whole screen says it, until someone does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "acknowledge", "Acknowledge"),
        Binding("p", "audio_pause", "Audio pause 2 min"),
    ]

    def __init__(self) -> None:
        super().__init__(id="alarm-escalation")
        self.text = Static("", id="escalation-text")

    def compose(self) -> ComposeResult:
        with Vertical(id="escalation-box"):
            yield self.text
            yield Button("STOP ALL   (F12)", id="stop-all-escalation", classes="stop-all")
            yield Button("Acknowledge (A)", id="ack-escalation")
        yield Footer()

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Name the unacknowledged high alarms in words."""
        high = [a for a in active_alarms(snapshot) if a.priority == "high" and not a.acknowledged]
        text = Text("HIGH PRIORITY ALARM — NOT ACKNOWLEDGED\n\n", style="bold")
        for alarm in high:
            text.append(f"{alarm.message}\n", style="bold")
            text.append(f"{alarm.what_to_do}\n\n")
        text.append("A: acknowledge    P: audio pause (2 min)    F12: STOP ALL")
        self.text.update(text)

    def action_acknowledge(self) -> None:
        self.post_message(SendCommand(AcknowledgeCommand(), "Alarms acknowledged"))

    def action_audio_pause(self) -> None:
        self.post_message(AudioPause())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop-all-escalation":
            self.post_message(stop_all())
        elif event.button.id == "ack-escalation":
            self.action_acknowledge()
