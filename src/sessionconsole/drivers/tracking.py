"""Command tracking shared by every driver: requested → acknowledged → confirmed by telemetry.

A driver records each command when it queues it, marks it acknowledged when the device has
taken it (a Modbus write response, an ES-2 ACK, a CX-3 reply) and confirmed when a later
reading shows its effect (the setpoint read back, the state reached). A command that the
device refuses, that gets no acknowledgement, or whose effect never shows within its
deadline ends in `refused`, `timed_out` or `unconfirmed`; one lost with the link ends
`lost`. Pure bookkeeping with the time passed in: no I/O, no clock of its own.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

CommandState = Literal[
    "requested", "acknowledged", "confirmed", "refused", "timed_out", "unconfirmed", "lost"
]
OPEN_STATES = frozenset({"requested", "acknowledged"})
ACK_TIMEOUT_S = 1.0  # no acknowledgement within this: timed_out
CONFIRM_TIMEOUT_S = 2.0  # acknowledged, but no reading showed the effect within this
HISTORY = 128

Confirm = Callable[[Any], bool]
"""Given a reading, whether it shows the command's effect."""


@dataclass(slots=True)
class CommandRecord:
    """One command and how far it got; `confirm` is None when acknowledgement is the end."""

    id: int
    op: str
    args: dict[str, Any]
    requested_mono_s: float
    confirm: Confirm | None = None
    state: CommandState = "requested"
    acknowledged_mono_s: float | None = None
    confirmed_mono_s: float | None = None
    error: str | None = None
    detail: str | None = None

    @property
    def open(self) -> bool:
        """Still waiting for an acknowledgement or a confirmation."""
        return self.state in OPEN_STATES


class CommandTracker:
    """The recent commands of one driver, oldest first, with ids unique to this tracker."""

    def __init__(
        self,
        first_id: int = 1,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
    ) -> None:
        self.records: OrderedDict[int, CommandRecord] = OrderedDict()
        self.ack_timeout_s = ack_timeout_s
        self.confirm_timeout_s = confirm_timeout_s
        self._ids = itertools.count(first_id)

    def values(self) -> Iterator[CommandRecord]:
        """The records, oldest first (so `driver.commands.values()` reads naturally)."""
        return iter(list(self.records.values()))

    def get(self, command_id: int) -> CommandRecord | None:
        """The record of `command_id`, if still remembered."""
        return self.records.get(command_id)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def request(
        self,
        op: str,
        args: dict[str, Any],
        now: float,
        confirm: Confirm | None = None,
        command_id: int | None = None,
    ) -> CommandRecord:
        """Record a new command (with the wire id if the protocol has one)."""
        record = CommandRecord(
            next(self._ids) if command_id is None else command_id, op, args, now, confirm
        )
        self.records[record.id] = record
        while len(self.records) > HISTORY:
            self.records.popitem(last=False)
        return record

    def acknowledge(self, record: CommandRecord, now: float) -> None:
        """The device took it; without a confirmation test that is the end."""
        if record.state != "requested":
            return
        record.acknowledged_mono_s = now
        record.state = "acknowledged" if record.confirm is not None else "confirmed"
        if record.confirm is None:
            record.confirmed_mono_s = now

    def refuse(self, record: CommandRecord, error: str, detail: str | None = None) -> None:
        """The device said no."""
        if record.open:
            record.state, record.error, record.detail = "refused", error, detail

    def observe(self, reading: Any, now: float) -> None:
        """Confirm every acknowledged command whose effect `reading` shows."""
        for record in self.records.values():
            confirm = record.confirm
            if record.state == "acknowledged" and confirm is not None and confirm(reading):
                record.state, record.confirmed_mono_s = "confirmed", now

    def expire(self, now: float) -> list[CommandRecord]:
        """Time out what waited too long; return the records that just ended that way."""
        ended = []
        for record in self.records.values():
            if record.state == "requested" and now - record.requested_mono_s > self.ack_timeout_s:
                record.state = "timed_out"
                ended.append(record)
            elif record.state == "acknowledged":
                assert record.acknowledged_mono_s is not None
                if now - record.acknowledged_mono_s > self.confirm_timeout_s:
                    record.state = "unconfirmed"
                    ended.append(record)
        return ended

    def supersede(self, op: str, detail: str) -> None:
        """A stop came first: open `op` commands, queued or taken, will never show."""
        for record in self.records.values():
            if record.op == op:
                self.refuse(record, "SUPERSEDED", detail)

    def expire_unconfirmed(self, now: float, device_id: str) -> list[str]:
        """Time out what waited too long (`expire`); return a report line for each command
        the device took but no reading showed (for drivers whose acks cannot time out)."""
        return [
            f"{device_id}: {record.op} was acknowledged but no reading showed it "
            f"within {self.confirm_timeout_s:.1f} s"
            for record in self.expire(now)
            if record.state == "unconfirmed"
        ]

    def lose_open(self) -> None:
        """The link went down: nothing still open will be acknowledged or replayed."""
        for record in self.records.values():
            if record.open:
                record.state = "lost"


class SetpointWatch:
    """Setpoints this console wrote, against what readings show: each difference counts once.

    `wrote` on an acknowledgement, `check` with every reading (it returns the differences
    new since the last check), `forget` at a device reboot (boot values were not written).
    """

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.written: dict[str, float] = {}
        self.mismatches = 0
        self._seen: dict[str, float] = {}

    def wrote(self, key: str, value: float) -> None:
        """The device took this setpoint from the console."""
        self.written[key] = value

    def forget(self) -> None:
        """The device rebooted: nothing it holds was written by this console."""
        self.written.clear()

    def check(self, held: dict[str, float]) -> list[tuple[str, float, float]]:
        """(key, held, wrote) for each setpoint newly found different from what was written."""
        new = []
        for key, wrote in self.written.items():
            value = held[key]
            if abs(value - wrote) <= self.tolerance:
                self._seen.pop(key, None)
            elif self._seen.get(key) != value:
                self._seen[key] = value
                self.mismatches += 1
                new.append((key, value, wrote))
        return new
