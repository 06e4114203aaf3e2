"""One session read once into a typed view that every exporter shares (JSON, CSV, FHIR, HTML).

The view tolerates what the record may lack (an interrupted session, a stream with no samples,
meta without a plan) and never reinterprets the stored entries: `entries` keeps them verbatim.
Payload shapes read here are listed in docs/ARCHITECTURE.md ("Exports").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sessionconsole.record.chain import JsonDict
from sessionconsole.record.chunks import ChunkError, samples_columns
from sessionconsole.record.store import (
    PATIENT_KIND,
    SESSION_END,
    SESSION_START,
    Entry,
    SessionStore,
    with_patient,
)

Scalar = None | bool | int | float | str

ULTRASOUND: Final = "ultrasound"
STIMULATION: Final = "stimulation"
# Consecutive samples further apart than this are not counted as on-time (a gap in telemetry).
MAX_ON_TIME_STEP_S: Final = 1.0


@dataclass(slots=True)
class Stream:
    """One device's samples in time order, column-wise, with the units its descriptor gave."""

    device: str
    descriptor: JsonDict = field(default_factory=dict)
    t_mono_ns: list[int] = field(default_factory=list)
    columns: dict[str, list[Scalar]] = field(default_factory=dict)

    @property
    def units(self) -> dict[str, str | None]:
        """Unit of every key (descriptor keys first, then keys only seen in samples)."""
        described = self.descriptor.get("keys") or {}
        units: dict[str, str | None] = {}
        for key, spec in described.items():
            unit = spec.get("unit") if isinstance(spec, dict) else None
            units[key] = unit if isinstance(unit, str) else None
        for key in self.columns:
            units.setdefault(key, None)
        return units

    @property
    def modalities(self) -> tuple[str, ...]:
        """Which modalities the unit delivers: from the descriptor, else guessed from its keys."""
        declared = self.descriptor.get("modalities")
        if isinstance(declared, list) and all(isinstance(m, str) for m in declared):
            return tuple(declared)
        keys = self.units
        found = []
        if any(k.startswith(("intensity", "head_temperature")) for k in keys):
            found.append(ULTRASOUND)
        if any("amplitude" in k or k.endswith("_ma") for k in keys):
            found.append(STIMULATION)
        return tuple(found)

    def extend(self, times: list[int], values: dict[str, list[Scalar]]) -> None:
        """Append one samples entry, padding keys missing on either side with None."""
        before = len(self.t_mono_ns)
        self.t_mono_ns.extend(times)
        for key, column in values.items():
            target = self.columns.get(key)
            if target is None:
                target = self.columns[key] = [None] * before
            target.extend(column)
        after = len(self.t_mono_ns)
        for column in self.columns.values():
            if len(column) < after:
                column.extend([None] * (after - len(column)))

    def numeric(self, key: str) -> list[tuple[int, float]]:
        """(mono ns, value) pairs of one key where the value is a number (bools excluded)."""
        column = self.columns.get(key, [])
        return [
            (t, float(v))
            for t, v in zip(self.t_mono_ns, column, strict=True)
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]


@dataclass(frozen=True, slots=True)
class Gap:
    """Samples of one device that the record could not keep, and why."""

    device: str
    from_mono_ns: int
    to_mono_ns: int
    samples_lost: int
    reason: str


@dataclass(frozen=True, slots=True)
class TechniqueSpan:
    """A manual technique from its begin entry to its end entry (end None: never ended)."""

    technique: str
    region: str
    side: str
    pressure: str | None
    notes: str
    operator: str | None
    start_mono_ns: int
    start_wall: str
    end_mono_ns: int | None = None
    end_wall: str | None = None

    @property
    def duration_s(self) -> float | None:
        """Monotonic duration in seconds, None while not ended."""
        if self.end_mono_ns is None:
            return None
        return (self.end_mono_ns - self.start_mono_ns) / 1e9


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alarm entry: raised, acknowledged or cleared."""

    change: str
    alarm_id: Any
    rule_id: str
    priority: str
    device: str | None
    message: str
    what_to_do: str
    acknowledged_by: str | None
    mono_ns: int
    wall: str


@dataclass(frozen=True, slots=True)
class PainScore:
    """An NPRS 0-10 score; `when` is "before", "after" or None when the entry did not say."""

    score: int
    when: str | None
    mono_ns: int
    wall: str


@dataclass(frozen=True, slots=True)
class RomMeasurement:
    """A range-of-motion reading: joint, movement, side, degrees from neutral, active/passive."""

    joint: str
    movement: str
    side: str
    degrees: int
    mode: str
    notes: str
    mono_ns: int
    wall: str


@dataclass(frozen=True, slots=True)
class GoalStatus:
    """Where the patient stood on one functional goal at this point of the session."""

    goal: str
    status: str
    measure: str
    mono_ns: int
    wall: str


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """Settings written to a device (an accepted configure command or a settings entry)."""

    device: str
    settings: JsonDict
    operator: str | None
    why: str | None
    mono_ns: int
    wall: str


@dataclass(frozen=True, slots=True)
class Note:
    """A free-text note."""

    text: str
    mono_ns: int
    wall: str


@dataclass(frozen=True, slots=True)
class ModalitySummary:
    """What one device delivered in one modality: on-time, energy/dose, settings, alarms."""

    device: str
    modality: str
    model: str | None
    on_time_s: float
    first_on_wall: str | None
    last_on_wall: str | None
    energy_j: float | None
    dose_j_cm2: float | None
    peak: tuple[str, float, str | None] | None  # key, value, unit
    settings: JsonDict
    alarms: tuple[AlarmEvent, ...]
    attended: bool | None  # stimulation only: the plan says whether it was attended


@dataclass(slots=True)
class SessionView:
    """A whole session as the exporters need it; `entries` are the stored entries, verbatim."""

    session_id: str
    started_wall: str
    start_mono_ns: int
    entries: list[Entry]
    meta: JsonDict = field(default_factory=dict)
    ended_wall: str | None = None
    end_mono_ns: int | None = None
    exit_status: str | None = None
    reason: str | None = None
    summary: JsonDict = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    techniques: list[TechniqueSpan] = field(default_factory=list)
    alarms: list[AlarmEvent] = field(default_factory=list)
    pain_scores: list[PainScore] = field(default_factory=list)
    rom_measurements: list[RomMeasurement] = field(default_factory=list)
    goal_statuses: list[GoalStatus] = field(default_factory=list)
    settings_changes: list[SettingsChange] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def therapist(self) -> str | None:
        """Who ran the session (an id or initials, as the console was told)."""
        return _text(self.meta.get("therapist"))

    @property
    def patient_pseudonym(self) -> str | None:
        """The patient's pseudonym; the record never holds a name."""
        return _text(self.meta.get("patient_pseudonym", self.meta.get("patient")))

    @property
    def plan(self) -> JsonDict:
        """The treatment plan (empty when the session started without one)."""
        plan = self.meta.get("plan")
        return plan if isinstance(plan, dict) else {}

    def elapsed_s(self, mono_ns: int) -> float:
        """Seconds since the session started, on the monotonic clock."""
        return (mono_ns - self.start_mono_ns) / 1e9

    def wall_at(self, mono_ns: int) -> str:
        """Wall time of a monotonic instant, anchored on the session start."""
        start = datetime.fromisoformat(self.started_wall)
        moment = start + timedelta(microseconds=(mono_ns - self.start_mono_ns) // 1000)
        return moment.isoformat(timespec="milliseconds")

    def pain(self, when: str) -> PainScore | None:
        """The last pain score marked `when` ("before" or "after"), if any."""
        marked = [p for p in self.pain_scores if p.when == when]
        return marked[-1] if marked else None

    def modality_summaries(self) -> list[ModalitySummary]:
        """One summary per device and modality it delivers, in stream order."""
        return [
            _summarise(self, stream, modality)
            for stream in self.streams.values()
            for modality in stream.modalities
        ]


def load_session_view(store: SessionStore, session_id: str) -> SessionView:
    """Read one session's entries once (a consistent snapshot) and build its view."""
    return build_view(store.entries(session_id))


def build_view(entries: list[Entry]) -> SessionView:
    """Build the view from a session's entries in chain order (the first is session_start)."""
    if not entries or entries[0].kind != SESSION_START:
        raise ValueError("a session's entries must begin with session_start")
    first = entries[0]
    view = SessionView(first.session_id, first.wall, first.mono_ns, entries)
    view.meta = first.payload
    open_techniques: dict[tuple[str, str, str], TechniqueSpan] = {}
    for entry in entries[1:]:
        _READERS.get(entry.kind, _ignore)(view, entry, open_techniques)
    view.techniques.extend(open_techniques.values())
    view.techniques.sort(key=lambda span: span.start_mono_ns)
    return view


# -- entry readers ------------------------------------------------------------------------

_Open = dict[tuple[str, str, str], TechniqueSpan]


def _ignore(view: SessionView, entry: Entry, open_: _Open) -> None:
    """Kinds the exports show only in JSON (client_connected, stop_sent, ...)."""


def _stream(view: SessionView, device: str) -> Stream:
    stream = view.streams.get(device)
    if stream is None:
        stream = view.streams[device] = Stream(device)
    return stream


def _read_descriptor(view: SessionView, entry: Entry, open_: _Open) -> None:
    device = _text(entry.payload.get("device"))
    if device is not None:
        _stream(view, device).descriptor = entry.payload


def _read_samples(view: SessionView, entry: Entry, open_: _Open) -> None:
    device = _text(entry.payload.get("device"))
    if device is None:
        return
    try:
        times, values = samples_columns(entry.payload)
    except ChunkError as exc:
        raise ChunkError(f"samples entry {entry.seq}: {exc}") from None
    _stream(view, device).extend(times, values)


def _read_gap(view: SessionView, entry: Entry, open_: _Open) -> None:
    p = entry.payload
    view.gaps.append(
        Gap(
            _text(p.get("device")) or "?",
            int(p.get("from_mono_ns", entry.mono_ns)),
            int(p.get("to_mono_ns", entry.mono_ns)),
            int(p.get("samples_lost", 0)),
            _text(p.get("reason")) or "",
        )
    )


def _read_technique(view: SessionView, entry: Entry, open_: _Open) -> None:
    p = entry.payload
    key = (str(p.get("technique")), str(p.get("region")), str(p.get("side", "bilateral")))
    if p.get("action") == "end":
        begun = open_.pop(key, None)
        if begun is None:  # an end without a begin: keep it as a zero-length span
            begun = _span(p, key, entry)
        notes = _text(p.get("notes")) or begun.notes
        view.techniques.append(
            TechniqueSpan(
                *key,
                begun.pressure,
                notes,
                begun.operator,
                begun.start_mono_ns,
                begun.start_wall,
                entry.mono_ns,
                entry.wall,
            )
        )
        return
    open_[key] = _span(p, key, entry)


def _span(p: JsonDict, key: tuple[str, str, str], entry: Entry) -> TechniqueSpan:
    return TechniqueSpan(
        *key,
        _text(p.get("pressure")),
        _text(p.get("notes")) or "",
        _text(p.get("operator")),
        entry.mono_ns,
        entry.wall,
    )


def _read_alarm(view: SessionView, entry: Entry, open_: _Open) -> None:
    p = entry.payload
    view.alarms.append(
        AlarmEvent(
            _text(p.get("change")) or "raised",
            p.get("alarm_id"),
            _text(p.get("rule_id")) or "?",
            _text(p.get("priority")) or "?",
            _text(p.get("device")),
            _text(p.get("message")) or "",
            _text(p.get("what_to_do")) or "",
            _text(p.get("acknowledged_by")),
            entry.mono_ns,
            entry.wall,
        )
    )


def _read_pain(view: SessionView, entry: Entry, open_: _Open) -> None:
    score = entry.payload.get("score")
    if isinstance(score, int) and not isinstance(score, bool):
        when = _text(entry.payload.get("when"))
        view.pain_scores.append(PainScore(score, when, entry.mono_ns, entry.wall))


def _read_rom(view: SessionView, entry: Entry, open_: _Open) -> None:
    p = entry.payload
    degrees = p.get("degrees")
    joint, movement = _text(p.get("joint")), _text(p.get("movement"))
    if not isinstance(degrees, int) or isinstance(degrees, bool) or not joint or not movement:
        return
    view.rom_measurements.append(
        RomMeasurement(
            joint,
            movement,
            _text(p.get("side")) or "?",
            degrees,
            _text(p.get("mode")) or "?",
            _text(p.get("notes")) or "",
            entry.mono_ns,
            entry.wall,
        )
    )


def _read_goal(view: SessionView, entry: Entry, open_: _Open) -> None:
    p = entry.payload
    goal, status = _text(p.get("goal")), _text(p.get("status"))
    if goal and status:
        measure = _text(p.get("measure")) or ""
        view.goal_statuses.append(GoalStatus(goal, status, measure, entry.mono_ns, entry.wall))


def _read_operator_action(view: SessionView, entry: Entry, open_: _Open) -> None:
    command = entry.payload.get("command")
    if not isinstance(command, dict) or command.get("type") != "configure":
        return
    device, settings = _text(command.get("device")), command.get("settings")
    if device is not None and isinstance(settings, dict):
        operator = _text(entry.payload.get("operator"))
        change = SettingsChange(device, settings, operator, None, entry.mono_ns, entry.wall)
        view.settings_changes.append(change)


def _read_settings_change(view: SessionView, entry: Entry, open_: _Open) -> None:
    p = entry.payload
    device, settings = _text(p.get("device")), p.get("settings")
    if device is not None and isinstance(settings, dict):
        view.settings_changes.append(
            SettingsChange(
                device,
                settings,
                _text(p.get("operator")),
                _text(p.get("why")),
                entry.mono_ns,
                entry.wall,
            )
        )


def _read_note(view: SessionView, entry: Entry, open_: _Open) -> None:
    text = _text(entry.payload.get("text"))
    if text is not None:
        view.notes.append(Note(text, entry.mono_ns, entry.wall))


def _read_end(view: SessionView, entry: Entry, open_: _Open) -> None:
    p = entry.payload
    view.ended_wall, view.end_mono_ns = entry.wall, entry.mono_ns
    view.exit_status = _text(p.get("exit_status"))
    view.reason = _text(p.get("reason"))
    view.summary = _dict(p.get("summary"))


def _read_patient(view: SessionView, entry: Entry, open_: _Open) -> None:
    """A session opened without a patient is that of the first pseudonym named later."""
    view.meta = with_patient(view.meta, entry.payload)


_READERS = {
    PATIENT_KIND: _read_patient,
    "stream_descriptor": _read_descriptor,
    "samples": _read_samples,
    "gap": _read_gap,
    "technique": _read_technique,
    "alarm": _read_alarm,
    "pain_score": _read_pain,
    "range_of_motion": _read_rom,
    "goal_status": _read_goal,
    "operator_action": _read_operator_action,
    "settings_change": _read_settings_change,
    "note": _read_note,
    SESSION_END: _read_end,
}


# -- per-modality summaries ---------------------------------------------------------------

_PEAK_KEYS: Final = {
    ULTRASOUND: ("intensity_measured_w_cm2", "intensity_setpoint_w_cm2"),
    STIMULATION: ("amplitude_measured_ma", "amplitude_setpoint_ma", "measured_ma", "target_ma"),
}


def _summarise(view: SessionView, stream: Stream, modality: str) -> ModalitySummary:
    on_time_s, first_on, last_on = _on_time(stream, modality)
    energy = _energy_j(stream) if modality == ULTRASOUND else None
    area = _treated_area_cm2(view.plan, stream.device)
    dose = energy / area if energy is not None and area else None
    changes = [c.settings for c in view.settings_changes if c.device == stream.device]
    alarms = tuple(a for a in view.alarms if a.device == stream.device)
    attended = None
    if modality == STIMULATION:
        attended = _attended(view, stream.device)
    model = _text(stream.descriptor.get("model"))
    return ModalitySummary(
        stream.device,
        modality,
        model,
        on_time_s,
        None if first_on is None else view.wall_at(first_on),
        None if last_on is None else view.wall_at(last_on),
        energy,
        dose,
        _peak(stream, modality),
        changes[-1] if changes else {},
        alarms,
        attended,
    )


def _attended(view: SessionView, device: str) -> bool | None:
    """Whether stimulation on this output was attended: the `attended` mark of its
    output_start entries (set at each start, as billing reads it), else the plan's flag."""
    marks = [
        e.payload.get("attended")
        for e in view.entries
        if e.kind == "output_start" and e.payload.get("device") == device
    ]
    marked = [m for m in marks if isinstance(m, bool)]
    if marked:
        return any(marked)
    flag = view.plan.get("stimulation_attended")
    return flag if isinstance(flag, bool) else None


def _on_time(stream: Stream, modality: str) -> tuple[float, int | None, int | None]:
    """Seconds with output on (output_active, else a non-zero amplitude/intensity)."""
    active = stream.columns.get("output_active")
    if active is None:
        key = next((k for k in _PEAK_KEYS[modality] if k in stream.columns), None)
        column = stream.columns.get(key, []) if key is not None else []
        active = [isinstance(v, int | float) and v > 0 for v in column]
    total_ns, first, last = 0, None, None
    limit_ns = int(MAX_ON_TIME_STEP_S * 1e9)
    times = stream.t_mono_ns
    for i, on in enumerate(active):
        if on is not True:
            continue
        first = times[i] if first is None else first
        last = times[i]
        if i + 1 < len(times):
            total_ns += min(times[i + 1] - times[i], limit_ns)
    return total_ns / 1e9, first, last


def _energy_j(stream: Stream) -> float | None:
    """Energy from the unit's counter: the sum of its increases (survives a counter reset)."""
    values = [v for _, v in stream.numeric("energy_j")]
    if not values:
        return None
    total, previous = 0.0, 0.0
    for value in values:
        if value > previous:
            total += value - previous
        previous = value
    return total


def _treated_area_cm2(plan: JsonDict, device: str) -> float | None:
    """The treated area the plan gives for this device (or for the whole session)."""
    per_device = plan.get("devices")
    candidates = [plan.get("treated_area_cm2")]
    if isinstance(per_device, dict) and isinstance(per_device.get(device), dict):
        candidates.insert(0, per_device[device].get("treated_area_cm2"))
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _peak(stream: Stream, modality: str) -> tuple[str, float, str | None] | None:
    for key in _PEAK_KEYS[modality]:
        values = [v for _, v in stream.numeric(key)]
        if values:
            return key, max(values), stream.units.get(key)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: object) -> JsonDict:
    return value if isinstance(value, dict) else {}
