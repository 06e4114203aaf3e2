"""The session screen: a panel per output, alarm banner, settings, session log and STOP ALL."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Header,
    Input,
    RadioButton,
    RadioSet,
    Select,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)

from sessionconsole.api.messages import AcknowledgeCommand, OutputSnapshot, Snapshot
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.ui.alarm_sound import SoundState
from sessionconsole.ui.guide_strip import GuideStrip
from sessionconsole.ui.history import ValueHistory
from sessionconsole.ui.messages import AudioPause, SendCommand, stop_all
from sessionconsole.ui.output_panel import OutputPanel
from sessionconsole.ui.render import alarm_banner_text
from sessionconsole.ui.session_log import SessionLog
from sessionconsole.ui.settings_form import SettingsForm

# Widgets that use the space bar themselves: on them, space is theirs, not STOP ALL.
SPACE_USERS = (Input, Select, TextArea, Checkbox, RadioButton, RadioSet)


class SessionScreen(Screen[None]):
    """Where the therapist runs the session."""

    # From 120 columns the panels sit two abreast (app.tcss: `.-wide`). Textual types this
    # as a plain attribute, so mypy refuses ClassVar here.
    HORIZONTAL_BREAKPOINTS = [  # noqa: RUF012
        (0, "-narrow"),
        (120, "-wide"),
    ]

    BINDINGS: ClassVar[list[BindingType]] = [
        # Shown on the STOP ALL button; the footer keeps room for F12 at 80 columns.
        Binding("space", "stop_all_space", "STOP ALL", key_display="space", show=False),
        Binding("a", "acknowledge", "Acknowledge"),
        Binding("p", "audio_pause", "Audio pause"),
        Binding("l", "alarm_list", "Alarm list"),
        Binding("s", "start", "Start output", show=False),  # shown on the buttons
        Binding("x", "stop_device", "Stop output", show=False),
        # Guided session keys: shown on the guide strip (ui/guide_strip.py), not in the footer.
        Binding("g", "guide_go", "Start/resume step", show=False),
        Binding("h", "guide_hold", "Pause step", show=False),
        Binding("k", "guide_skip", "Skip step", show=False),
    ]

    def __init__(self, vocabulary: Vocabulary) -> None:
        super().__init__(id="session")
        self.vocabulary = vocabulary
        self.history = ValueHistory()
        self.panels: dict[str, OutputPanel] = {}
        # Built here, not looked up on mount: the connection worker may report before mount,
        # and a timer may fire while the screen is torn down (NoMatches).
        self._connection = Static("", id="connection")
        self._banner = Static("No active alarms", id="alarm-banner")
        self._outputs = VerticalScroll(id="outputs")
        self._waiting = Static("waiting for the controller…", id="waiting")
        self._message = Static("", id="message")
        self.form = SettingsForm([(r.label, r.id) for r in vocabulary.regions])
        self.guide_strip = GuideStrip()
        self._banner_text = Text("No active alarms")
        self._priority = "none"

    def compose(self) -> ComposeResult:
        yield Header()
        yield self._connection
        yield self._banner
        yield Button("STOP ALL   (F12 or space)", id="stop-all", classes="stop-all")
        yield self.guide_strip
        with Horizontal(id="body"):
            with self._outputs:
                yield self._waiting
            with TabbedContent(id="side"):
                with TabPane("Output", id="tab-output"):
                    yield self.form
                with TabPane("Log", id="tab-log"):
                    yield SessionLog(self.vocabulary)
        yield self._message
        yield Footer()

    # ---- rendering ----

    def show_snapshot(self, snapshot: Snapshot, now_s: float) -> None:
        """Render the newest snapshot (at most ~10 times a second); `now_s` dates the plots."""
        self._connection.remove_class("lost")
        self._banner_text, self._priority = alarm_banner_text(snapshot)
        self._banner.update(self._banner_text)
        self._banner.set_classes(self._priority)
        self.form.set_outputs(snapshot.devices)
        self.guide_strip.show_guide(snapshot.guide)
        for output in snapshot.devices:
            self.history.add(output, now_s)
            panel = self.panels.get(output.device)
            if panel is None or panel.modality != output.modality:
                panel = self._add_panel(output)
            panel.show(output, self.history)
        self._waiting.display = not snapshot.devices

    def _add_panel(self, output: OutputSnapshot) -> OutputPanel:
        panel = OutputPanel(output)
        old = self.panels.get(panel.device)
        if old is not None:
            old.remove()
        self.panels[panel.device] = panel
        self._outputs.mount(panel)
        return panel

    def show_sound(self, sound: SoundState) -> None:
        """Flash the banner while an alarm sounds unacknowledged; say when audio is paused."""
        self._banner.set_class(sound.flash_on, "flash")
        if sound.paused_s_left is not None:
            paused = self._banner_text.copy()
            paused.append(f"  AUDIO PAUSED {sound.paused_s_left:.0f} s")
            self._banner.update(paused)

    def show_disconnected(self, why: str) -> None:
        """The controller cannot be reached: say so, and what it means for the outputs."""
        self._connection.update(
            f"CONTROLLER UNREACHABLE ({why}). Outputs are stopped by each device's watchdog "
            "within its timeout. Reconnecting…"
        )
        self._connection.add_class("lost")

    def say(self, message: str) -> None:
        """A one-line message under the panels (command outcomes, refusals)."""
        self._message.update(message)

    # ---- actions ----

    def action_stop_all_space(self) -> None:
        if isinstance(self.focused, SPACE_USERS):
            return
        self.post_message(stop_all())

    def action_acknowledge(self) -> None:
        self.post_message(SendCommand(AcknowledgeCommand(), "Alarms acknowledged"))

    def action_audio_pause(self) -> None:
        self.post_message(AudioPause())

    def action_alarm_list(self) -> None:
        self.app.push_screen("alarms")

    def action_start(self) -> None:
        self.form.start()

    def action_stop_device(self) -> None:
        self.form.stop()

    def action_guide_go(self) -> None:
        self.guide_strip.go()

    def action_guide_hold(self) -> None:
        self.guide_strip.hold()

    def action_guide_skip(self) -> None:
        self.guide_strip.skip()

    @on(Button.Pressed, "#stop-all")
    def _stop_all_pressed(self) -> None:
        self.post_message(stop_all())

    def on_click(self, event: events.Click) -> None:
        """Clicking a panel makes its output the settings form's target."""
        widget = event.widget
        while widget is not None and not isinstance(widget, OutputPanel):
            widget = widget.parent  # type: ignore[assignment]
        if isinstance(widget, OutputPanel):
            self.form.select(widget.device)
