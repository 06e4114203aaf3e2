"""Readings gathered column by column, the form in which samples travel to the record.

The controller's loop appends each new reading to a `SampleBatch` (no checks, no lock) and
hands the batch to the recorder every flush interval with `Recorder.add_samples`, one call per
device. The recorder checks and buffers whole columns, and its writer packs them into chunks
(chunks.py) without transposing rows. Handing columns over in bulk is what lets one Python
process record on the order of a million readings a second (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

Scalar = None | bool | int | float | str


@dataclass(slots=True)
class SampleColumns:
    """One device's readings in arrival order: times and one column per key (None where absent).

    Keys keep their first-seen order; a key that appears late is None for the earlier readings.
    """

    times: list[int] = field(default_factory=list)
    columns: dict[str, list[Scalar]] = field(default_factory=dict)

    def __len__(self) -> int:
        """How many readings are held."""
        return len(self.times)

    def append(self, mono_ns: int, values: Mapping[str, Scalar]) -> None:
        """Add one reading (not checked here: the recorder checks whole columns)."""
        columns = self.columns
        if values.keys() == columns.keys():
            for key, value in values.items():
                columns[key].append(value)
        else:
            self._add_keys(values.keys(), 1)
            for key, value in values.items():
                columns[key].append(value)
        self.times.append(mono_ns)

    def extend(self, times: Sequence[int], columns: Mapping[str, Sequence[Scalar]]) -> None:
        """Add many readings given as columns, each as long as times (the caller checks)."""
        own = self.columns
        if columns.keys() != own.keys():
            self._add_keys(columns.keys(), len(times))
        for key, column in columns.items():
            own[key].extend(column)
        self.times.extend(times)

    def _add_keys(self, keys: Collection[str], count: int) -> None:
        """Start columns for new keys (None so far); pad keys missing from the next count."""
        held = len(self.times)
        own = self.columns
        for key in own.keys() - keys:
            own[key].extend([None] * count)
        for key in keys:
            if key not in own:
                own[key] = [None] * held

    def part(self, start: int, stop: int) -> tuple[list[int], dict[str, list[Scalar]]]:
        """(times, columns) of readings start..stop (the whole lists when that is all of them)."""
        if start == 0 and stop >= len(self.times):
            return self.times, self.columns
        return self.times[start:stop], {k: c[start:stop] for k, c in self.columns.items()}


class SampleBatch:
    """Several devices' readings gathered on the caller's loop between two hand-overs."""

    def __init__(self) -> None:
        """An empty batch."""
        self._devices: dict[str, SampleColumns] = {}
        self.count = 0

    def add(self, device_id: str, mono_ns: int, values: Mapping[str, Scalar]) -> None:
        """Gather one reading of device_id."""
        columns = self._devices.get(device_id)
        if columns is None:
            columns = self._devices[device_id] = SampleColumns()
        columns.append(mono_ns, values)
        self.count += 1

    def take(self) -> dict[str, SampleColumns]:
        """Everything gathered so far, by device; the batch starts empty again."""
        devices, self._devices, self.count = self._devices, {}, 0
        return devices
