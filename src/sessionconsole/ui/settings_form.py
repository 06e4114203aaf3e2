"""The settings form: targets the selected output and offers that output's settings."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Button, Checkbox, Input, Label, Select

from sessionconsole.api.messages import (
    ConfigureCommand,
    OutputSnapshot,
    StartCommand,
    StopCommand,
)
from sessionconsole.ui.messages import Say, SendCommand
from sessionconsole.ui.settings_parse import SettingsProblem, channel_setup, ultrasound_settings

STIM_MODES = ("SYM", "ASYM", "RUSS", "IFC", "HVPC")


def _row(label: str, *widgets: Input | Select[str] | Select[int] | Checkbox) -> Horizontal:
    return Horizontal(Label(label), *widgets, classes="form-row")


def _number(field_id: str, value: str, kind: str = "number") -> Input:
    return Input(value, id=field_id, type=kind, compact=True)  # type: ignore[arg-type]


class SettingsForm(VerticalScroll):
    """Output picker, ultrasound or stimulation settings, attended mark, apply/start/stop."""

    def __init__(self, regions: list[tuple[str, str]] | None = None) -> None:
        super().__init__(id="settings-form")
        self._regions = regions or []  # (label, id) of the vocabulary's body regions
        self._modality: dict[str, str] = {}
        self.target: Select[str] = Select([], id="target", prompt="output", allow_blank=True)

    def compose(self) -> ComposeResult:
        yield _row("Output", self.target)
        with Vertical(id="us-fields"):
            yield _row("Intensity", _number("intensity", "1.0"))
            yield _row(
                "Frequency",
                Select(
                    [("1 MHz", 1000), ("3 MHz", 3000)],
                    value=1000,
                    id="frequency",
                    allow_blank=False,
                ),
            )
            yield _row(
                "Duty",
                Select(
                    [(f"{d} %", d) for d in (10, 20, 50, 100)],
                    value=100,
                    id="duty",
                    allow_blank=False,
                ),
            )
            yield _row("Time (min)", _number("minutes", "5"))
        with Vertical(id="stim-fields"):
            yield _row(
                "Mode",
                Select([(m, m) for m in STIM_MODES], value="SYM", id="mode", allow_blank=False),
            )
            yield _row("Freq (Hz)", _number("freq_hz", "100", "integer"))
            yield _row("Pulse (µs)", _number("pw_us", "200", "integer"))
            yield _row(
                "On/off (s)", _number("on_s", "0", "integer"), _number("off_s", "0", "integer")
            )
            yield _row("Ramp (s)", _number("ramp_s", "2", "integer"))
            yield _row("Amplitude", _number("amplitude_ma", "10.0"))
            yield _row(
                "Pads (cm²)",
                Input("", id="electrode_area_cm2", placeholder="profile's", compact=True),
            )
            yield _row(
                "Placed on",
                Select(self._regions, id="electrode_region", prompt="region", compact=True),
                Select(
                    [(side, side) for side in ("left", "right", "bilateral", "midline")],
                    id="electrode_side",
                    prompt="side",
                    compact=True,
                ),
            )
            yield _row("", Checkbox("attended (therapist present)", id="attended", compact=True))
        with Horizontal(classes="form-row"):
            yield Button("Apply settings", id="configure", compact=True)
        with Horizontal(classes="form-row"):
            yield Button("Start (s)", id="start", variant="success", compact=True)
            yield Button("Stop (x)", id="stop", variant="warning", compact=True)

    def on_mount(self) -> None:
        self._show_fields()

    # ---- outputs ----

    def set_outputs(self, outputs: list[OutputSnapshot]) -> None:
        """Offer the snapshot's outputs; keep the choice while the list stays the same."""
        modality: dict[str, str] = {o.device: o.modality for o in outputs}
        if modality == self._modality:
            return
        current = self.target.value
        try:
            self.target.set_options([(f"{d} ({m})", d) for d, m in modality.items()])
        except NoMatches:
            # The Select has not mounted its option overlay yet (the first snapshot can beat
            # it under load): leave the list as it was and offer it on the next refresh.
            return
        self._modality = modality
        chosen = current if isinstance(current, str) and current in modality else None
        if chosen is None and modality:
            chosen = next(iter(modality))
        # After set_options the Select rebuilds its current-value label; setting the value in
        # the same turn can reach for that label before it exists (Textual 8, seen under
        # load): set it once the rebuild has been drawn.
        self.call_after_refresh(self._choose, chosen)

    def _choose(self, device: str | None) -> None:
        """Set the form's target (after a refresh) unless one was chosen meanwhile (a click on
        a panel), and show that output's fields."""
        current = self.target.value
        chosen = isinstance(current, str) and current in self._modality
        if not chosen and device is not None and device in self._modality:
            self.target.value = device
        self._show_fields()

    @property
    def selected(self) -> str | None:
        """The output the form acts on, if one is chosen."""
        value = self.target.value
        return value if isinstance(value, str) else None

    def select(self, device: str) -> None:
        """Make `device` the form's target (clicking a panel does this)."""
        if device in self._modality:
            self.target.value = device

    @on(Select.Changed, "#target")
    def _target_changed(self) -> None:
        self._show_fields()

    def _show_fields(self) -> None:
        modality = self._modality.get(self.selected or "")
        self.query_one("#us-fields").display = modality == "ultrasound"
        self.query_one("#stim-fields").display = modality == "stimulation"

    # ---- commands ----

    def _values(self, *ids: str) -> dict[str, str]:
        values: dict[str, str] = {}
        for field_id in ids:
            widget = self.query_one(f"#{field_id}")
            value = widget.value if isinstance(widget, Input | Select) else ""
            values[field_id] = "" if value is Select.NULL else str(value)
        return values

    @on(Button.Pressed, "#configure")
    def apply(self) -> None:
        """Validate the target's settings here (a readable reason), then send them."""
        device = self.selected
        if device is None:
            self.post_message(Say("Choose an output first", alert=True))
            return
        try:
            if self._modality[device] == "ultrasound":
                v = self._values("intensity", "frequency", "duty", "minutes")
                settings: object = ultrasound_settings(
                    {
                        "intensity_w_cm2": v["intensity"],
                        "frequency_khz": v["frequency"],
                        "duty_pct": v["duty"],
                        "minutes": v["minutes"],
                    }
                )
            else:
                settings = channel_setup(
                    self._values(
                        "mode",
                        "freq_hz",
                        "pw_us",
                        "on_s",
                        "off_s",
                        "ramp_s",
                        "amplitude_ma",
                        "electrode_area_cm2",
                        "electrode_region",
                        "electrode_side",
                    )
                )
        except SettingsProblem as exc:
            self.post_message(Say(f"Settings not sent: {exc}", alert=True))
            return
        command = ConfigureCommand.model_validate({"device": device, "settings": settings})
        self.post_message(SendCommand(command, f"{device} settings applied"))

    @on(Button.Pressed, "#start")
    def start(self) -> None:
        """Start the target; a stimulation start carries the attended mark."""
        device = self.selected
        if device is None:
            self.post_message(Say("Choose an output first", alert=True))
            return
        attended = (
            self._modality[device] == "stimulation" and self.query_one("#attended", Checkbox).value
        )
        done = f"{device} started" + (" (attended)" if attended else "")
        self.post_message(SendCommand(StartCommand(device=device, attended=attended), done))

    @on(Button.Pressed, "#stop")
    def stop(self) -> None:
        """Stop the target's output."""
        device = self.selected
        if device is not None:
            self.post_message(SendCommand(StopCommand(device=device), f"{device} stopped"))
