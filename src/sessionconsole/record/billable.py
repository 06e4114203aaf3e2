"""Billable services read from a session's record entries (monotonic times only).

Techniques: ``technique`` entries, ``begin`` and ``end`` matched by (technique, region, side).
Device outputs: ``output_start``/``output_stop`` entries (payload ``device``, and ``attended``
for stimulation) where a device has them, else the runs of ``output_active`` true in its
``samples``. A device's modality comes from its ``stream_descriptor`` (``modality``, else the
reference model: US-1 ultrasound, ES-2 stimulation). Anything left running is closed at the
session's last entry, and the notes say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from sessionconsole.record.billing import (
    STIM_ATTENDED,
    STIM_UNATTENDED,
    TECHNIQUE_CODES,
    ULTRASOUND,
    Bill,
    Service,
    bill,
)
from sessionconsole.record.chunks import samples_columns
from sessionconsole.record.store import Entry

MODEL_MODALITIES: Final = {"US-1": "ultrasound", "ES-2": "stimulation"}


@dataclass(slots=True)
class Extracted:
    """Services found in a record, and notes on what could not be billed or was closed."""

    services: list[Service] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _output_code(modality: str | None, attended: bool) -> str | None:
    """The code for one output run of a device of this modality, or None if not billable."""
    if modality == "ultrasound":
        return ULTRASOUND
    if modality == "stimulation":
        return STIM_ATTENDED if attended else STIM_UNATTENDED
    return None


def _techniques(entries: Sequence[Entry], end_ns: int, found: Extracted) -> None:
    """Pair technique begin/end entries into services."""
    open_: dict[tuple[str, str, str], int] = {}
    for entry in entries:
        if entry.kind != "technique":
            continue
        p = entry.payload
        key = (str(p.get("technique")), str(p.get("region")), str(p.get("side")))
        if p.get("action") == "begin":
            open_.setdefault(key, entry.mono_ns)
        elif p.get("action") == "end" and key in open_:
            _add_technique(found, key, open_.pop(key), entry.mono_ns)
    for key, start in open_.items():
        found.notes.append(f"{key[0]} on {key[1]} ({key[2]}) never ended: closed at session end")
        _add_technique(found, key, start, end_ns)


def _add_technique(found: Extracted, key: tuple[str, str, str], start: int, end: int) -> None:
    """Add one technique run, or a note when the technique has no code."""
    code = TECHNIQUE_CODES.get(key[0])
    label = f"{key[0]} on {key[1]} ({key[2]})"
    if code is None:
        found.notes.append(f"{label}: no billing code for technique {key[0]!r}; not billed")
        return
    found.services.append(Service(code, start, end, label))


def _modalities(entries: Sequence[Entry]) -> dict[str, str | None]:
    """Each described device's modality."""
    result: dict[str, str | None] = {}
    for entry in entries:
        if entry.kind == "stream_descriptor":
            p = entry.payload
            modality = p.get("modality") or MODEL_MODALITIES.get(str(p.get("model")))
            result[str(p.get("device"))] = None if modality is None else str(modality)
    return result


def _marked_runs(entries: Sequence[Entry], device: str, end_ns: int) -> list[tuple[int, int, bool]]:
    """(start, end, attended) runs from output_start/output_stop entries of one device."""
    runs: list[tuple[int, int, bool]] = []
    started: tuple[int, bool] | None = None
    for entry in entries:
        if entry.payload.get("device") != device:
            continue
        if entry.kind == "output_start" and started is None:
            started = (entry.mono_ns, entry.payload.get("attended") is True)
        elif entry.kind == "output_stop" and started is not None:
            runs.append((started[0], entry.mono_ns, started[1]))
            started = None
    if started is not None:
        runs.append((started[0], end_ns, started[1]))
    return runs


def _sampled_runs(
    entries: Sequence[Entry], device: str, end_ns: int
) -> list[tuple[int, int, bool]]:
    """(start, end, attended=False) runs of output_active true in one device's samples."""
    runs: list[tuple[int, int, bool]] = []
    since: int | None = None
    for entry in entries:
        if entry.kind != "samples" or entry.payload.get("device") != device:
            continue
        times, values = samples_columns(entry.payload)
        for t, on in zip(times, values.get("output_active", []), strict=True):
            if on is True and since is None:
                since = t
            elif on is not True and since is not None:
                runs.append((since, t, False))
                since = None
    if since is not None:
        runs.append((since, end_ns, False))
    return runs


def _outputs(entries: Sequence[Entry], end_ns: int, found: Extracted) -> None:
    """Device output runs as services."""
    marked = {e.payload.get("device") for e in entries if e.kind in ("output_start", "output_stop")}
    for device, modality in _modalities(entries).items():
        if device in marked:
            runs = _marked_runs(entries, device, end_ns)
        else:
            runs = _sampled_runs(entries, device, end_ns)
        for start, end, attended in runs:
            code = _output_code(modality, attended)
            if code is None:
                found.notes.append(f"{device}: output of unknown modality not billed")
                continue
            found.services.append(Service(code, start, end, f"{device} output"))


def services_from_entries(entries: Iterable[Entry]) -> Extracted:
    """Every billable service of one session's entries (in chain order)."""
    ordered = list(entries)
    found = Extracted()
    if not ordered:
        return found
    end_ns = ordered[-1].mono_ns
    _techniques(ordered, end_ns, found)
    _outputs(ordered, end_ns, found)
    return found


def bill_entries(entries: Iterable[Entry]) -> Bill:
    """The bill for one session's record, with extraction notes ahead of the billing notes."""
    found = services_from_entries(entries)
    result = bill(found.services)
    return Bill(
        result.lines, result.timed_minutes, result.timed_units, (*found.notes, *result.notes)
    )
