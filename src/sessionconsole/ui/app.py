"""The Textual app: connects to the controller, renders snapshots, sends commands, rings alarms.

All I/O happens in workers; snapshots are coalesced (the newest wins) and drawn ten times a
second. F12 is STOP ALL everywhere: a priority binding, so it works inside inputs and menus.
Screens post `SendCommand`; the app is the one place that talks to the controller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message_pump import MessagePump
from textual.screen import Screen

from sessionconsole.api.client import ControllerClient, ControllerUnavailable
from sessionconsole.api.messages import Command, Snapshot
from sessionconsole.model.paths import config_dir
from sessionconsole.model.vocabulary import Vocabulary, load_vocabulary
from sessionconsole.ui.alarm_sound import AlarmSounder
from sessionconsole.ui.alarm_views import AlarmEscalationScreen, AlarmListScreen
from sessionconsole.ui.cli_runner import RecordsAccess
from sessionconsole.ui.messages import AudioPause, CommandAnswered, Say, SendCommand, stop_all
from sessionconsole.ui.past.screen import HistoryScreen
from sessionconsole.ui.profiles.screen import ProfilesScreen
from sessionconsole.ui.progress.screen import ProgressScreen
from sessionconsole.ui.session_screen import SessionScreen
from sessionconsole.ui.start.screen import StartScreen
from sessionconsole.ui.summary.screen import SummaryScreen
from sessionconsole.ui.summary.tally import LiveTally

RECONNECT_S = 0.5
REFRESH_S = 0.1
SOUND_TICK_S = 0.1


class SessionConsoleApp(App[int]):
    """SessionConsole's terminal UI."""

    CSS_PATH = "app.tcss"
    TITLE = "SessionConsole"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f12", "stop_all", "STOP ALL", priority=True, key_display="F12"),
        Binding("ctrl+q", "quit", "Quit"),
        Binding("f4", "summary", "Summary", key_display="F4"),
        Binding("f5", "history", "History", key_display="F5", show=False),
        Binding("f6", "progress", "Progress", key_display="F6", show=False),
    ]

    def __init__(
        self,
        socket_path: str,
        operator: str,
        vocabulary: Vocabulary | None = None,
        *,
        autoconnect: bool = True,
        clock: Callable[[], float] = time.monotonic,
        records: RecordsAccess | None = None,
        start: bool = False,
    ) -> None:
        """`autoconnect=False` draws only snapshots fed to `show()` (previews, screenshots);
        `records` says where the session record is (None: the commands are shown, not run);
        `start` opens the Start screen over the session screen at launch."""
        super().__init__()
        self.records = records or RecordsAccess(db=None, export_dir="exports")
        self.socket_path = socket_path
        self.operator = operator
        self.autoconnect = autoconnect
        self.clock = clock
        self.vocabulary = vocabulary or load_vocabulary(config_dir() / "vocabulary.toml")
        self.client: ControllerClient | None = None
        self._latest: Snapshot | None = None
        self._drawn_seq = -1
        self.session_screen = SessionScreen(self.vocabulary)
        self.alarm_list = AlarmListScreen()
        self.escalation = AlarmEscalationScreen()
        self.sounder = AlarmSounder()
        self.tally = LiveTally()
        self.summary_screen = SummaryScreen(self.records, id="summary")
        self.open_start = start

    def on_mount(self) -> None:
        self.sub_title = f"operator {self.operator}"
        self.install_screen(self.alarm_list, "alarms")
        self.push_screen(self.session_screen)
        if self.open_start:
            self.action_start()
        if self.autoconnect:
            self.set_interval(REFRESH_S, self._refresh_view)
            self.set_interval(SOUND_TICK_S, self.sound_tick)
            self._connect_loop()

    # ---- connection ----

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._latest = snapshot

    @work(exclusive=True, group="connection")
    async def _connect_loop(self) -> None:
        """Keep a connection to the controller; reconnect by itself when it is lost."""
        while True:
            client = ControllerClient(
                self.socket_path, self.operator, client_name="tui", on_snapshot=self._on_snapshot
            )
            try:
                await client.connect()
            except ControllerUnavailable as exc:
                self.session_screen.show_disconnected(str(exc))
                await asyncio.sleep(RECONNECT_S)
                continue
            self.client = client
            await client.wait_closed()
            self.client = None
            self._latest = None
            self.session_screen.show_disconnected("connection lost")
            self.tally.connection_lost()
            await asyncio.sleep(RECONNECT_S)

    def _refresh_view(self) -> None:
        snapshot = self._latest
        if not self.screen_stack:  # the app is closing: a timer may still fire once
            return
        if snapshot is None or snapshot.seq == self._drawn_seq:
            return
        self._drawn_seq = snapshot.seq
        self.show(snapshot)

    def show(self, snapshot: Snapshot) -> None:
        """Draw a snapshot on the session screen and on whichever alarm view is up."""
        self._latest = snapshot
        now_s = self.clock()
        self.tally.add_snapshot(snapshot, now_s)
        self.session_screen.show_snapshot(snapshot, now_s)
        if isinstance(self.screen, StartScreen):
            self.screen.session_patient(snapshot.patient)
        self.alarm_list.show_snapshot(snapshot)
        if self.screen is self.summary_screen:
            self.summary_screen.show_summary(self.tally.summary)
        if self.escalation in self.screen_stack:
            self.escalation.show_snapshot(snapshot)

    # ---- alarms heard ----

    def sound_tick(self) -> None:
        """Ring the bell in the alarm's pattern, flash the banner, escalate or stand down."""
        alarms = self._latest.alarms if self._latest is not None else []
        sound = self.sounder.update(alarms, self.clock())
        if sound.rings:
            self.bell()
        self.session_screen.show_sound(sound)
        showing = self.escalation in self.screen_stack
        if sound.escalated and not showing:
            self.push_screen(self.escalation)
            if self._latest is not None:
                self.escalation.show_snapshot(self._latest)
        elif not sound.escalated and showing and self.screen is self.escalation:
            self.pop_screen()

    @on(AudioPause)
    def audio_pause(self) -> None:
        """Silence the sounding alarms for up to two minutes (acknowledge stays separate)."""
        if self.sounder.pause_audio(self.clock()):
            self.session_screen.say("Audio paused for up to 2 minutes; alarms still shown")
        else:
            self.session_screen.say("No alarm is sounding")

    # ---- commands ----

    @on(SendCommand)
    def _send_requested(self, message: SendCommand) -> None:
        self._send(message.command, message.done, message.reply_to)

    @on(Say)
    def _say(self, message: Say) -> None:
        self.session_screen.say(message.text)
        if message.alert:
            self.bell()

    @work(group="commands")
    async def _send(self, command: Command, done: str, reply_to: MessagePump | None) -> None:
        client = self.client
        if client is None:
            problem = f"Not sent: the controller is unreachable ({done})"
            self._answer(reply_to, command, False, problem)
            return
        try:
            reply = await client.send(command)
        except (ControllerUnavailable, TimeoutError) as exc:
            self._answer(reply_to, command, False, f"Not sent: {exc}")
            return
        if reply.ok:
            self.tally.accepted(command)
            self.session_screen.say(done)
            self._answer(reply_to, command, True, None)
        else:
            self._answer(reply_to, command, False, f"Refused: {reply.error}")

    def _answer(
        self, reply_to: MessagePump | None, command: Command, ok: bool, problem: str | None
    ) -> None:
        """Say a failure (with the bell) and tell the screen that sent the command, if any."""
        if problem is not None:
            self.session_screen.say(problem)
            self.bell()
        if reply_to is not None:
            reply_to.post_message(CommandAnswered(command, ok, problem))

    # ---- other screens ----

    def action_summary(self) -> None:
        """The session summary from this console's view; the bill from the record when known."""
        if self.screen is self.summary_screen:
            return
        self.push_screen(self.summary_screen)
        self.summary_screen.show_summary(self.tally.summary)
        if self.records.db is not None and self.tally.summary is not None:
            self.summary_screen.action_bill()

    def action_history(self) -> None:
        """Past sessions, read from the record through `records list`."""
        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen(self.records))

    def action_progress(self) -> None:
        """One patient's pain and range of motion over sessions, read through `progress`."""
        if not isinstance(self.screen, ProgressScreen):
            self.push_screen(ProgressScreen(self.records, self.vocabulary))

    def action_start(self) -> None:
        """Patient, plan or preset, contraindication checklist (Esc: back)."""
        if not isinstance(self.screen, StartScreen):
            self.push_screen(StartScreen(config_dir(), self.vocabulary, self.operator))

    def action_profiles(self) -> None:
        """Device profiles, for biomedical staff behind a PIN."""
        if not isinstance(self.screen, ProfilesScreen):
            self.push_screen(ProfilesScreen(config_dir() / "profiles", self.records.run))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The command palette also lists the screens."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Summary", "This session's summary (F4)", self.action_summary)
        yield SystemCommand("History", "Past sessions from the record (F5)", self.action_history)
        yield SystemCommand(
            "Progress",
            "A patient's pain and range of motion over sessions (F6)",
            self.action_progress,
        )
        yield SystemCommand("Start", "Patient, plan, contraindications", self.action_start)
        yield SystemCommand("Profiles", "Device profiles (biomedical, PIN)", self.action_profiles)

    def action_stop_all(self) -> None:
        """STOP ALL: every output of every device, latched until acknowledged."""
        self.post_message(stop_all())


def run_tui(socket_path: str, operator: str, db: str | None = None) -> int:
    """Run the TUI until the operator quits; `db` lets it bill and export from the record."""
    records = RecordsAccess(db=db, export_dir=str(Path.cwd() / "sessionconsole-exports"))
    SessionConsoleApp(socket_path, operator, records=records, start=True).run()
    return 0
