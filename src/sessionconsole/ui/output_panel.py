"""One panel per output: state in words, set next to measured, time left, and a live plot."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Sparkline, Static

from sessionconsole.api.messages import OutputSnapshot, UltrasoundSnapshot
from sessionconsole.ui.history import ValueHistory
from sessionconsole.ui.render import device_state_text, stimulation_table, ultrasound_table

# What each panel plots: (series name in ValueHistory, label, unit, number format).
PLOTS = {
    "ultrasound": (
        ("intensity", "Intens.", "W/cm²", ".1f"),
        ("temperature", "Head", "°C", ".1f"),
    ),
    "stimulation": (
        ("amplitude", "Ampl.", "mA", ".1f"),
        ("impedance", "Imped.", "Ω", ".0f"),
    ),
}


def panel_id(device: str) -> str:
    """A CSS id for an output ("es2.ch1" -> "panel-es2-ch1"): dots are not allowed in ids."""
    return "panel-" + device.replace(".", "-")


def plot_label(name: str, unit: str, fmt: str, values: list[float]) -> str:
    """The words beside a sparkline: what it is and its range, so the shape has a scale."""
    if not values:
        return f"{name} —"
    return f"{name} {min(values):{fmt}}-{max(values):{fmt}} {unit}"


class OutputPanel(Vertical):
    """An ultrasound output or a stimulation channel, drawn from the newest snapshot."""

    def __init__(self, output: OutputSnapshot) -> None:
        super().__init__(id=panel_id(output.device), classes=f"output-panel {output.modality}")
        self.device = output.device
        self.modality = output.modality
        self._shape: tuple[bool, bool, bool] | None = None  # what the last layout was for
        self.state_line = Static("", classes="panel-state")
        self.values = Static("", classes="panel-values")
        self.time_bar = ProgressBar(
            total=1, show_eta=False, show_percentage=False, classes="panel-bar"
        )
        self.energy_bar = ProgressBar(
            total=1, show_eta=False, show_percentage=False, classes="panel-bar"
        )
        self.time_label = Label("", classes="plot-label")
        self.energy_label = Label("", classes="plot-label")
        self.plots = [
            (
                series,
                name,
                unit,
                fmt,
                Label("", classes="plot-label"),
                Sparkline([], classes="plot"),
            )
            for series, name, unit, fmt in PLOTS[output.modality]
        ]
        kind = "Ultrasound" if output.modality == "ultrasound" else "Stimulation"
        self.border_title = f"{output.device} · {kind} · {output.model}"

    def compose(self) -> ComposeResult:
        yield self.state_line
        yield self.values
        if self.modality == "ultrasound":
            with Horizontal(classes="plot-row"):
                yield self.time_label
                yield self.time_bar
            with Horizontal(classes="plot-row"):
                yield self.energy_label
                yield self.energy_bar
        for _, _, _, _, label, sparkline in self.plots:
            with Horizontal(classes="plot-row"):
                yield label
                yield sparkline

    def _show_dose(self, us: UltrasoundSnapshot) -> None:
        """Time given and energy delivered against the settings' whole, as bars with words
        (energy lags time when coupling is poor: the head does not deliver in air)."""
        total = us.settings.time_s if us.settings else None
        if total and us.remaining_s is not None:
            given = max(0, total - us.remaining_s)
            self.time_bar.update(total=total, progress=given)
            self.time_label.update(
                f"Time {given // 60}:{given % 60:02d}/{total // 60}:{total % 60:02d}", layout=False
            )
        else:
            self.time_bar.update(total=1, progress=0)  # not "indeterminate": it animates
            self.time_label.update("Time —", layout=False)
        planned = planned_energy_j(us)
        if planned and us.energy_j is not None:
            self.energy_bar.update(total=planned, progress=min(planned, us.energy_j))
            self.energy_label.update(f"Energy {us.energy_j}/{planned:.0f} J", layout=False)
        else:
            self.energy_bar.update(total=1, progress=0)
            self.energy_label.update("Energy —", layout=False)

    def show(self, output: OutputSnapshot, history: ValueHistory) -> None:
        """Draw `output`; the plots come from `history` (last minutes).

        The screen is laid out again only when the panel's shape changes (settings known or
        not, a fault line, connected): new values in the same rows only repaint, which is
        most of what a frame cost while units stream (bench/tui_perf.py)."""
        shape = (output.settings is None, bool(output.fault), output.connected)
        layout, self._shape = shape != self._shape, shape
        self.state_line.update(device_state_text(output), layout=layout)
        self.set_class(output.output_active, "output-on")
        self.set_class(bool(output.fault) or not output.connected, "faulted")
        self.border_subtitle = _state_words(output)
        if isinstance(output, UltrasoundSnapshot):
            self.values.update(ultrasound_table(output), layout=layout)
            self._show_dose(output)
        else:
            self.values.update(stimulation_table(output), layout=layout)
        for series, name, unit, fmt, label, sparkline in self.plots:
            values = history.values(output.device, series)
            label.update(plot_label(name, unit, fmt, values), layout=False)  # fixed 22 x 1
            sparkline.data = values


def _mmss(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def planned_energy_j(us: UltrasoundSnapshot) -> float | None:
    """Energy the settings deliver over their whole time: I * ERA * duty * t (J), or None."""
    s = us.settings
    if s is None or us.era_cm2 is None:
        return None
    return s.intensity_w_cm2 * us.era_cm2 * s.duty_pct / 100 * s.time_s


def _state_words(output: OutputSnapshot) -> Text:
    """The panel's corner: the same state as the first line, short (colour is not the signal)."""
    if not output.connected:
        return Text("NOT CONNECTED", style="bold")
    if output.fault:
        return Text(f"FAULT {output.fault}", style="bold")
    return Text("OUTPUT ON" if output.output_active else "off", style="bold")
