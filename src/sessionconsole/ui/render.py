"""Pure rendering of snapshot parts into Rich renderables (no Textual, easy to test)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from sessionconsole.api.messages import (
    AlarmSnapshot,
    Snapshot,
    StimulationSnapshot,
    UltrasoundSnapshot,
)

PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _num(value: float | int | None, fmt: str, unit: str) -> str:
    return "—" if value is None else f"{value:{fmt}} {unit}"


def ultrasound_table(us: UltrasoundSnapshot) -> Table:
    """Requested next to measured, state in words, link health."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_row("", Text("set", style="dim"), Text("measured", style="dim"))
    requested = us.settings.intensity_w_cm2 if us.settings else None
    table.add_row(
        "Intensity",
        _num(requested, ".2f", "W/cm²"),
        _num(us.intensity_measured_w_cm2, ".2f", "W/cm²"),
    )
    if us.settings is not None:
        s = us.settings
        table.add_row("Freq / duty", f"{s.frequency_khz / 1000:g} MHz", f"{s.duty_pct} %")
    table.add_row("Head temp", "", _num(us.head_temperature_c, ".1f", "°C"))
    table.add_row("Coupling", "", _num(us.coupling_pct, "d", "%"))
    remaining = us.remaining_s
    table.add_row(
        "Time left",
        _num(us.settings.time_s if us.settings else None, "d", "s"),
        "—" if remaining is None else f"{remaining // 60}:{remaining % 60:02d}",
    )
    table.add_row("Energy", "", _num(us.energy_j, "d", "J"))
    return table


def stimulation_table(stim: StimulationSnapshot) -> Table:
    """Amplitude requested next to measured, the waveform, impedance."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_row("", Text("set", style="dim"), Text("measured", style="dim"))
    requested = stim.settings.amplitude_ma if stim.settings else stim.amplitude_setpoint_ma
    table.add_row(
        "Amplitude", _num(requested, ".1f", "mA"), _num(stim.amplitude_measured_ma, ".1f", "mA")
    )
    if stim.settings is not None:
        w = stim.settings.waveform
        table.add_row("Waveform", f"{w.mode} {w.freq_hz} Hz", f"{w.pw_us} µs")
        cycle = f"{w.on_s} s / {w.off_s} s" if w.on_s or w.off_s else "continuous"
        table.add_row("On / off", cycle, f"ramp {w.ramp_s} s")
    table.add_row("Impedance", "", _num(stim.impedance_ohm, ".0f", "Ω"))
    return table


def device_state_text(us: UltrasoundSnapshot | StimulationSnapshot) -> Text:
    """One line: output on/off in words (colour is never the only signal), state, link."""
    if not us.connected:
        return Text(
            f"{us.device}: NOT CONNECTED — {us.last_error or 'connecting…'}", style="bold red"
        )
    output = "OUTPUT ON" if us.output_active else "output off"
    style = "bold black on yellow" if us.output_active else "bold"
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {output} ", style=style)
    text.append(f"  {us.state or '?'}", style="bold")
    if us.fault:
        text.append(f"  FAULT {us.fault}", style="bold red")
    if us.telemetry_age_ms is not None:
        text.append(f" telemetry {us.telemetry_age_ms:.0f} ms", style="dim")
    return text


def active_alarms(snapshot: Snapshot) -> list[AlarmSnapshot]:
    """Active alarms, highest priority first, then newest."""
    alarms = [a for a in snapshot.alarms if a.active]
    return sorted(alarms, key=lambda a: (PRIORITY_ORDER[a.priority], -a.id))


def alarm_banner_text(snapshot: Snapshot) -> tuple[Text, str]:
    """The banner line and its CSS class (priority), naming the priority in words."""
    alarms = active_alarms(snapshot)
    if not alarms:
        return Text("No active alarms"), "none"
    top = alarms[0]
    state = (
        "acknowledged, waiting for the cause to clear"
        if top.acknowledged
        else "press A to acknowledge"
    )
    text = Text(
        f"{top.priority.upper()} PRIORITY ALARM — {top.message}. {top.what_to_do} ({state})"
    )
    if len(alarms) > 1:
        text.append(f"  [+{len(alarms) - 1} more]")
    return text, top.priority
