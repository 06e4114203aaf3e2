"""The Textual app: connects to the controller, renders snapshots, sends commands.

All I/O happens in workers; snapshots are coalesced (the newest wins) and drawn ten times a
second. F12 is STOP ALL everywhere: a priority binding, so it works inside inputs and menus.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import ValidationError
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from sessionconsole.api.client import ControllerClient, ControllerUnavailable
from sessionconsole.api.messages import (
    AcknowledgeCommand,
    Command,
    ConfigureCommand,
    LogTechniqueCommand,
    Snapshot,
    StartCommand,
    StopAllCommand,
    StopCommand,
)
from sessionconsole.model.paths import config_dir
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.vocabulary import Vocabulary, load_vocabulary
from sessionconsole.ui.session_screen import SessionScreen

RECONNECT_S = 0.5
REFRESH_S = 0.1


class SessionConsoleApp(App[int]):
    """SessionConsole's terminal UI."""

    CSS_PATH = "app.tcss"
    TITLE = "SessionConsole"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f12", "stop_all", "STOP ALL", priority=True, key_display="F12"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, socket_path: str, operator: str, vocabulary: Vocabulary | None = None):
        super().__init__()
        self.socket_path = socket_path
        self.operator = operator
        self.vocabulary = vocabulary or load_vocabulary(config_dir() / "vocabulary.toml")
        self.client: ControllerClient | None = None
        self._latest: Snapshot | None = None
        self._drawn_seq = -1
        self.session_screen = SessionScreen(self.vocabulary)

    def on_mount(self) -> None:
        self.sub_title = f"operator {self.operator}"
        self.push_screen(self.session_screen)
        self.set_interval(REFRESH_S, self._refresh_view)
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
            await asyncio.sleep(RECONNECT_S)

    def _refresh_view(self) -> None:
        snapshot = self._latest
        if snapshot is None or snapshot.seq == self._drawn_seq:
            return
        self._drawn_seq = snapshot.seq
        self.session_screen.show_snapshot(snapshot)

    # ---- commands ----

    def send(self, command: Command, done: str) -> None:
        """Send a command in a worker; report the outcome in the message line."""
        self._send(command, done)

    @work(group="commands")
    async def _send(self, command: Command, done: str) -> None:
        client = self.client
        if client is None:
            self.session_screen.say(f"Not sent: the controller is unreachable ({done})")
            self.bell()
            return
        try:
            reply = await client.send(command)
        except (ControllerUnavailable, TimeoutError) as exc:
            self.session_screen.say(f"Not sent: {exc}")
            self.bell()
            return
        if reply.ok:
            self.session_screen.say(done)
        else:
            self.session_screen.say(f"Refused: {reply.error}")
            self.bell()

    def action_stop_all(self) -> None:
        """STOP ALL: every output of every device, latched until acknowledged."""
        self.send(StopAllCommand(), "STOP ALL sent: every output stopped")

    def acknowledge(self) -> None:
        """Acknowledge every active alarm."""
        self.send(AcknowledgeCommand(), "Alarms acknowledged")

    def start_device(self, device: str) -> None:
        """Start a device's output."""
        self.send(StartCommand(device=device), f"{device} started")

    def stop_device(self, device: str) -> None:
        """Stop a device's output."""
        self.send(StopCommand(device=device), f"{device} stopped")

    def configure_device(self, device: str, values: dict[str, Any]) -> None:
        """Validate settings locally (for a readable message), then send them."""
        try:
            settings = UltrasoundSettings.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            self.session_screen.say(f"Settings not sent: {first['loc'][0]}: {first['msg']}")
            self.bell()
            return
        self.send(ConfigureCommand(device=device, settings=settings), f"{device} settings applied")

    def log_technique(self, action: str, technique: str, region: str, side: str) -> None:
        """Begin or end a manual technique on a body region."""
        command = LogTechniqueCommand.model_validate(
            {"action": action, "technique": technique, "region": region, "side": side}
        )
        self.send(command, f"{technique} on {region}: {action}")


def run_tui(socket_path: str, operator: str) -> int:
    """Run the TUI until the operator quits."""
    SessionConsoleApp(socket_path, operator).run()
    return 0
