"""The session screen: device panel, alarm banner, settings, technique log and STOP ALL."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from sessionconsole.api.messages import Snapshot, UltrasoundSnapshot
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.ui.render import alarm_banner_text, device_state_text, ultrasound_table

if TYPE_CHECKING:
    from sessionconsole.ui.app import SessionConsoleApp

# Widgets that use the space bar themselves: on them, space is theirs, not STOP ALL.
SPACE_USERS = (Input, Select)


class SessionScreen(Screen[None]):
    """Where the therapist runs the session."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "stop_all_space", "STOP ALL", key_display="space"),
        Binding("a", "acknowledge", "Acknowledge"),
        Binding("s", "start", "Start US"),
        Binding("x", "stop_device", "Stop US"),
    ]

    def __init__(self, vocabulary: Vocabulary) -> None:
        super().__init__()
        self.vocabulary = vocabulary
        # Built here, not looked up on mount: the connection worker may report before mount,
        # and a timer may fire while the screen is torn down (NoMatches).
        self._connection = Static("", id="connection")
        self._banner = Static("No active alarms", id="alarm-banner")
        self._us_state = Static("waiting for the controller…", id="us-state")
        self._us_values = Static("", id="us-values")
        self._message = Static("", id="message")

    def compose(self) -> ComposeResult:
        yield Header()
        yield self._connection
        yield self._banner
        yield Button("STOP ALL   (F12 or space)", id="stop-all")
        with Horizontal(id="body"):
            with Vertical(classes="device-panel", id="panel-us1") as panel:
                panel.border_title = "Ultrasound"
                yield self._us_state
                yield self._us_values
            with VerticalScroll(id="side"):
                with Horizontal(classes="form-row"):
                    yield Label("Intensity")
                    yield Input(
                        "1.0", id="intensity", type="number", placeholder="W/cm²", compact=True
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Frequency")
                    yield Select(
                        [("1 MHz", 1000), ("3 MHz", 3000)],
                        value=1000,
                        id="frequency",
                        allow_blank=False,
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Duty")
                    yield Select(
                        [(f"{d} %", d) for d in (10, 20, 50, 100)],
                        value=100,
                        id="duty",
                        allow_blank=False,
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Time (min)")
                    yield Input("5", id="minutes", type="integer", compact=True)
                with Horizontal(classes="form-row"):
                    yield Button("Apply settings", id="configure", compact=True)
                with Horizontal(classes="form-row"):
                    yield Button("Start (s)", id="start", variant="success", compact=True)
                    yield Button("Stop (x)", id="stop", variant="warning", compact=True)
                with Horizontal(classes="form-row"):
                    yield Label("Technique")
                    yield Select(
                        [(t.label, t.id) for t in self.vocabulary.techniques],
                        id="technique",
                        prompt="technique",
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Region")
                    yield Select(
                        [(r.label, r.id) for r in self.vocabulary.regions],
                        id="region",
                        prompt="body region",
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Side")
                    yield Select(
                        [(s, s) for s in ("left", "right", "bilateral", "midline")],
                        value="bilateral",
                        id="side-select",
                        allow_blank=False,
                    )
                with Horizontal(classes="form-row"):
                    yield Button("Begin technique", id="technique-begin", compact=True)
                    yield Button("End technique", id="technique-end", compact=True)
        yield self._message
        yield Footer()

    # ---- rendering ----

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Render the newest snapshot (called at most ~10 times a second)."""
        self._connection.remove_class("lost")
        text, priority = alarm_banner_text(snapshot)
        self._banner.update(text)
        self._banner.set_classes(priority)
        ultrasound = [d for d in snapshot.devices if isinstance(d, UltrasoundSnapshot)]
        for device in ultrasound[:1]:
            self._us_state.update(device_state_text(device))
            self._us_values.update(ultrasound_table(device))

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

    @property
    def console(self) -> SessionConsoleApp:
        """The app, typed."""
        return cast("SessionConsoleApp", self.app)

    def action_stop_all_space(self) -> None:
        if isinstance(self.focused, SPACE_USERS):
            return
        self.console.action_stop_all()

    def action_acknowledge(self) -> None:
        self.console.acknowledge()

    def action_start(self) -> None:
        self.console.start_device("us1")

    def action_stop_device(self) -> None:
        self.console.stop_device("us1")

    @on(Button.Pressed, "#stop-all")
    def _stop_all_pressed(self) -> None:
        self.console.action_stop_all()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop_device()

    @on(Button.Pressed, "#configure")
    def _configure_pressed(self) -> None:
        intensity = self.query_one("#intensity", Input).value
        minutes = self.query_one("#minutes", Input).value
        frequency = self.query_one("#frequency", Select).value
        duty = self.query_one("#duty", Select).value
        try:
            settings = {
                "frequency_khz": int(str(frequency)),
                "intensity_w_cm2": float(intensity),
                "duty_pct": int(str(duty)),
                "time_s": int(float(minutes) * 60),
            }
        except ValueError:
            self.say(
                f"Settings not sent: intensity '{intensity}' and time '{minutes}' must be numbers"
            )
            return
        self.console.configure_device("us1", settings)

    @on(Button.Pressed, "#technique-begin")
    def _technique_begin(self) -> None:
        self._technique("begin")

    @on(Button.Pressed, "#technique-end")
    def _technique_end(self) -> None:
        self._technique("end")

    def _technique(self, action: str) -> None:
        technique = self.query_one("#technique", Select).value
        region = self.query_one("#region", Select).value
        side = self.query_one("#side-select", Select).value
        if technique is Select.NULL or region is Select.NULL:
            self.say("Choose a technique and a body region first")
            return
        self.console.log_technique(action, str(technique), str(region), str(side))
