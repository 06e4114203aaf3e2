"""What a session summary shows, built from what this console saw (pure, time injected).

Snapshots give settings, on-time, energy and alarms; the commands the controller accepted
from this console give pain scores and notes. The record is the authority (billing, dose,
export): the summary says which view it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sessionconsole.api.messages import (
    AlarmSnapshot,
    Command,
    NoteCommand,
    OutputSnapshot,
    PainScoreCommand,
    Snapshot,
    UltrasoundSnapshot,
)
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup

MAX_STEP_S = 1.0  # as the record: a gap in snapshots counts at most 1 s of on-time
CONSOLE_VIEW = "from this console's view (snapshots it drew, commands it sent)"


def settings_text(settings: UltrasoundSettings | ChannelSetup | None) -> str:
    """Settings in one short line, units in words."""
    if settings is None:
        return "not configured"
    if isinstance(settings, UltrasoundSettings):
        return (
            f"{settings.frequency_khz / 1000:g} MHz, {settings.intensity_w_cm2:.2f} W/cm², "
            f"duty {settings.duty_pct} %, {settings.time_s} s"
        )
    w = settings.waveform
    cycle = f", {w.on_s}/{w.off_s} s" if w.on_s or w.off_s else ""
    return f"{w.mode} {w.freq_hz} Hz {w.pw_us} µs{cycle}, {settings.amplitude_ma:.1f} mA"


@dataclass(frozen=True, slots=True)
class AlarmLine:
    """One alarm as the summary lists it."""

    priority: str
    rule_id: str
    device: str | None
    message: str
    acknowledged_by: str | None

    @classmethod
    def of(cls, alarm: AlarmSnapshot) -> AlarmLine:
        """From a snapshot's alarm."""
        who = alarm.acknowledged_by or ("someone" if alarm.acknowledged else None)
        return cls(alarm.priority, alarm.rule_id, alarm.device, alarm.message, who)


@dataclass(slots=True)
class OutputSummary:
    """One output over the session."""

    device: str
    modality: str
    settings: list[str] = field(default_factory=list)  # every distinct setting, in order
    on_time_s: float | None = 0.0  # None: the source does not say (no output_start entries)
    energy_j: float | None = None
    alarms: int = 0

    def add_settings(self, text: str) -> None:
        """Keep a setting once, in the order first used."""
        if text != "not configured" and text not in self.settings:
            self.settings.append(text)


@dataclass(slots=True)
class SessionSummary:
    """A session as the summary screen shows it, and where that view comes from."""

    session_id: str
    source: str
    outputs: dict[str, OutputSummary] = field(default_factory=dict)
    alarms: list[AlarmLine] = field(default_factory=list)
    pain_before: int | None = None
    pain_after: int | None = None
    notes: list[str] = field(default_factory=list)
    ended: bool = False


class LiveTally:
    """Accumulates the current session from snapshots and accepted commands."""

    def __init__(self) -> None:
        self.summary: SessionSummary | None = None
        self._last_s: float | None = None
        self._energy_last: dict[str, int] = {}

    def add_snapshot(self, snapshot: Snapshot, now_s: float) -> None:
        """Count on-time since the last snapshot; a new session id starts a new tally."""
        if self.summary is None or self.summary.session_id != snapshot.session_id:
            self.summary = SessionSummary(snapshot.session_id, CONSOLE_VIEW)
            self._last_s, self._energy_last = None, {}
        summary = self.summary
        summary.ended = False
        dt = 0.0 if self._last_s is None else min(MAX_STEP_S, max(0.0, now_s - self._last_s))
        self._last_s = now_s
        for output in snapshot.devices:
            self._add_output(summary, output, dt)
        summary.alarms = [AlarmLine.of(a) for a in sorted(snapshot.alarms, key=lambda a: a.id)]
        for out in summary.outputs.values():
            out.alarms = sum(1 for a in summary.alarms if a.device in (out.device, None))

    def _add_output(self, summary: SessionSummary, output: OutputSnapshot, dt: float) -> None:
        out = summary.outputs.get(output.device)
        if out is None:
            out = summary.outputs[output.device] = OutputSummary(output.device, output.modality)
        if output.output_active:
            out.on_time_s = (out.on_time_s or 0.0) + dt
            out.add_settings(settings_text(output.settings))
        if isinstance(output, UltrasoundSnapshot) and output.energy_j is not None:
            last = self._energy_last.get(output.device)
            # the unit's counter: sum its increases; one that went down was reset (a reboot)
            if last is None or output.energy_j < last:
                gained = output.energy_j
            else:
                gained = output.energy_j - last
            out.energy_j = (out.energy_j or 0.0) + gained
            self._energy_last[output.device] = output.energy_j

    def accepted(self, command: Command) -> None:
        """A command the controller accepted from this console (pain scores and notes count)."""
        if self.summary is None:
            return
        if isinstance(command, PainScoreCommand):
            if command.when == "before":
                self.summary.pain_before = command.score
            else:
                self.summary.pain_after = command.score
        elif isinstance(command, NoteCommand):
            self.summary.notes.append(command.text)

    def connection_lost(self) -> None:
        """The controller went away: the session may have ended; keep what was seen."""
        if self.summary is not None:
            self.summary.ended = True
