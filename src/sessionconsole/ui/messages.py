"""Textual messages the screens post to the app: one path for every command to the controller."""

from __future__ import annotations

from textual.message import Message
from textual.message_pump import MessagePump

from sessionconsole.api.messages import Command, StopAllCommand


class SendCommand(Message):
    """Send `command` to the controller; `done` is what the message line says once accepted.

    `reply_to`, if given, is sent a `CommandAnswered` with the outcome, so a screen can show
    a thing as done only when the controller has accepted (and recorded) it.
    """

    def __init__(self, command: Command, done: str, reply_to: MessagePump | None = None) -> None:
        super().__init__()
        self.command = command
        self.done = done
        self.reply_to = reply_to


class CommandAnswered(Message):
    """The controller's answer to a command a screen sent: accepted, or why not."""

    def __init__(self, command: Command, ok: bool, error: str | None) -> None:
        super().__init__()
        self.command = command
        self.ok = ok
        self.error = error


class AudioPause(Message):
    """The operator asked to silence the sounding alarms for up to two minutes."""


class Say(Message):
    """A line for the message line under the panels; `alert` rings the bell (a refusal)."""

    def __init__(self, text: str, alert: bool = False) -> None:
        super().__init__()
        self.text = text
        self.alert = alert


def stop_all() -> SendCommand:
    """STOP ALL, the same message from every key and button that asks for it."""
    return SendCommand(StopAllCommand(), "STOP ALL sent: every output stopped")
