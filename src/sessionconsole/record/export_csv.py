"""CSV export: one spreadsheet-ready file per stream, plus techniques.csv and alarms.csv.

Every file starts with a header row; sample columns say their unit ("head_temperature_c [Cel]")
and every row carries session time (seconds on the monotonic clock; minutes for techniques
and alarms) and UTC wall time.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sessionconsole.record.session_view import SessionView, Stream

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def write_csv_folder(view: SessionView, folder: Path) -> list[Path]:
    """Write the CSV files into folder (created if missing); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stream in view.streams.values():
        path = folder / f"stream_{_file_part(stream.device)}.csv"
        if path in written:  # two device ids that differ only in unsafe characters
            path = path.with_name(f"{path.stem}_{len(written)}.csv")
        _write(path, _stream_header(stream), _stream_rows(view, stream))
        written.append(path)
    written.append(_write(folder / "techniques.csv", _TECHNIQUE_HEADER, _technique_rows(view)))
    written.append(_write(folder / "alarms.csv", _ALARM_HEADER, _alarm_rows(view)))
    written.append(_write(folder / "gaps.csv", _GAP_HEADER, _gap_rows(view)))
    return written


def _file_part(device: str) -> str:
    """A device id made safe as part of a file name."""
    return _UNSAFE_NAME.sub("_", device) or "device"


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """One CSV file: header then rows (None written as an empty cell)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _stream_header(stream: Stream) -> list[str]:
    columns = [f"{key} [{unit}]" if unit else key for key, unit in stream.units.items()]
    return ["time_s", "wall_utc", "t_mono_ns", *columns]


def _stream_rows(view: SessionView, stream: Stream) -> Iterable[list[Any]]:
    keys = list(stream.units)
    columns = [stream.columns.get(key, [None] * len(stream.t_mono_ns)) for key in keys]
    for i, t in enumerate(stream.t_mono_ns):
        row: list[Any] = [f"{view.elapsed_s(t):.3f}", view.wall_at(t), t]
        row.extend(column[i] for column in columns)
        yield row


_TECHNIQUE_HEADER = (
    "start_min",
    "end_min",
    "duration_s",
    "technique",
    "region",
    "side",
    "pressure",
    "operator",
    "start_wall_utc",
    "end_wall_utc",
    "notes",
)


def _technique_rows(view: SessionView) -> Iterable[list[Any]]:
    for span in view.techniques:
        end = None if span.end_mono_ns is None else f"{view.elapsed_s(span.end_mono_ns) / 60:.3f}"
        duration = None if span.duration_s is None else f"{span.duration_s:.3f}"
        yield [
            f"{view.elapsed_s(span.start_mono_ns) / 60:.3f}",
            end,
            duration,
            span.technique,
            span.region,
            span.side,
            span.pressure,
            span.operator,
            span.start_wall,
            span.end_wall,
            span.notes,
        ]


_ALARM_HEADER = (
    "time_min",
    "wall_utc",
    "change",
    "alarm_id",
    "rule_id",
    "priority",
    "device",
    "message",
    "what_to_do",
    "acknowledged_by",
)


def _alarm_rows(view: SessionView) -> Iterable[list[Any]]:
    for a in view.alarms:
        yield [
            f"{view.elapsed_s(a.mono_ns) / 60:.3f}",
            a.wall,
            a.change,
            a.alarm_id,
            a.rule_id,
            a.priority,
            a.device,
            a.message,
            a.what_to_do,
            a.acknowledged_by,
        ]


_GAP_HEADER = ("from_min", "to_min", "device", "samples_lost", "reason")


def _gap_rows(view: SessionView) -> Iterable[list[Any]]:
    for g in view.gaps:
        yield [
            f"{view.elapsed_s(g.from_mono_ns) / 60:.3f}",
            f"{view.elapsed_s(g.to_mono_ns) / 60:.3f}",
            g.device,
            g.samples_lost,
            g.reason,
        ]
