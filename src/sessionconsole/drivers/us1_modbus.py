"""US-1 ultrasound driver over Modbus TCP or Modbus RTU (pymodbus async clients).

One I/O task owns the connection, so requests never interleave: a pending stop goes first,
then queued writes, then a heartbeat if the core asked for one, then the telemetry poll.
The newest reading sits in `latest` for the core loop to take. The driver sends heartbeats
only when asked (`request_heartbeat`): it has no heartbeat timer of its own.
The transport (TCP socket or RTU serial line) is chosen by the profile's link `kind`; every
other behaviour is the same on both.

Every command is tracked in `commands` (drivers/tracking.py): acknowledged by the Modbus write
response, confirmed when a poll shows its effect (setpoints read back, state reached). The
holding registers the console wrote are compared with every poll; a value the device holds
that the console did not write is reported once (`setpoint_mismatches`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sessionconsole.drivers import modbus_transport
from sessionconsole.drivers.base import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    DriverLifecycle,
)
from sessionconsole.drivers.errors import (
    DeviceRejected,
    DeviceUnreachable,
    DriverError,
    WrongDevice,
)
from sessionconsole.drivers.modbus_transport import (
    MODBUS_EXCEPTIONS,
    ModbusClient,
    NoReply,
    make_client,
    no_link_text,
    read_refused_text,
)
from sessionconsole.drivers.tracking import CommandRecord, CommandTracker, Confirm
from sessionconsole.model.profile import Us1Profile
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.telemetry import UltrasoundReading
from sessionconsole.protocols import us1

log = logging.getLogger(__name__)


# A poll whose reply never came is read again on the same link; only this many in a row are
# a lost link (reconnect). One corrupted RTU reply (the CRC fails, the frame is dropped) then
# costs one request timeout, not a reconnect and an identity read on top of it.
SILENT_POLLS_TO_RECONNECT = 2


@dataclass(frozen=True, slots=True)
class Identity:
    """What the unit says it is."""

    model_code: int
    serial: int
    era_cm2: float
    bnr: float


@dataclass(frozen=True, slots=True)
class _Write:
    """One queued write: a block of holding registers starting at `address`."""

    label: str
    address: int
    values: tuple[int, ...]
    record: CommandRecord | None = field(default=None, compare=False)


SETPOINT_NAMES = {
    us1.HR_FREQUENCY: "frequency (kHz)",
    us1.HR_INTENSITY: "intensity (0.01 W/cm²)",
    us1.HR_DUTY: "duty (%)",
    us1.HR_PRR: "pulse repetition rate (Hz)",
    us1.HR_TIME: "treatment time (s)",
    us1.HR_WATCHDOG: "watchdog (ms)",
}


def _holds(address: int, values: tuple[int, ...]) -> Confirm:
    """Confirmation test: the poll reads the written setpoints back."""
    fields = {
        us1.HR_FREQUENCY: "frequency_khz",
        us1.HR_DUTY: "duty_pct",
        us1.HR_TIME: "time_s",
        us1.HR_WATCHDOG: "watchdog_ms",
    }

    def confirm(reading: UltrasoundReading) -> bool:
        for reg, value in zip(range(address, address + len(values)), values, strict=True):
            if reg == us1.HR_INTENSITY:
                if us1.encode_intensity(reading.intensity_setpoint_w_cm2) != value:
                    return False
            elif reg in fields and getattr(reading, fields[reg]) != value:
                return False
        return True

    return confirm


COMMAND_CONFIRM: dict[str, Confirm] = {
    "start": lambda r: r.state in ("RUNNING", "SUSPENDED", "DONE"),
    "stop": lambda r: not r.output_active,
    "reset_fault": lambda r: r.fault is None,
}


class Us1ModbusDriver(DriverLifecycle):
    """Drives one US-1 over Modbus TCP or RTU; see the module docstring for the I/O discipline."""

    def __init__(
        self,
        device_id: str,
        profile: Us1Profile,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(device_id, on_error)
        self.profile = profile
        self.clock = clock
        self.latest: UltrasoundReading | None = None
        self.identity: Identity | None = None
        self.stops_sent = 0
        self.links_opened = 0  # fresh clients opened (the first connect and every reconnect)
        self._silent_polls = 0  # polls in a row that got no reply
        self._stop_pending = True  # the first write once the unit is reached is a stop
        self._stop_needs_poll = False  # a stop went out and no poll has followed yet
        self._heartbeat_counter = 0
        self._watchdog_due = False  # the unit rebooted and forgot the profile's watchdog
        self._writes: deque[_Write] = deque()
        self.commands = CommandTracker()
        self.setpoint_mismatches = 0
        self._written: dict[int, int] = {}  # holding register -> the value the console wrote
        self._mismatch_seen: dict[int, int] = {}  # reported once per (register, value)
        self._client: ModbusClient | None = None
        self._poll_period_s = 1.0 / profile.link.telemetry_hz
        self._hard_timeout_s = 3 * profile.link.request_timeout_ms / 1000.0 + 0.5

    # ---- requests from the core loop (never block) ----

    def request_stop(self) -> None:
        """Stop the output as soon as possible, ahead of anything queued.

        Kept pending across a lost link and reconnects until the device has taken it.
        """
        self._stop_pending = True
        self._stop_taken.clear()
        self._heartbeat_pending = False  # a heartbeat asked for before the trip must not follow
        self.commands.supersede("start", "a stop came first")
        self._writes = deque(w for w in self._writes if w.label != "start")
        self._wake.set()

    @property
    def stop_pending(self) -> bool:
        """A stop was asked for and the device has not yet taken it."""
        return self._stop_pending

    def request_configure(self, settings: UltrasoundSettings) -> None:
        """Write frequency, intensity, duty and time in one all-or-nothing write."""
        self._queue(_Write("configure", us1.HR_FREQUENCY, tuple(us1.encode_settings(settings))))

    def request_intensity(self, intensity_w_cm2: float) -> None:
        """Write a new intensity setpoint; the device ramps to it."""
        self._queue(_Write("intensity", us1.HR_INTENSITY, (us1.encode_intensity(intensity_w_cm2),)))

    def request_start(self) -> None:
        """Start the output."""
        self._queue(_Write("start", us1.HR_COMMAND, (us1.CMD_START,)))

    def request_reset_fault(self) -> None:
        """Reset the device's latched fault (the kernel sends it only after an acknowledgement)."""
        self._queue(_Write("reset_fault", us1.HR_COMMAND, (us1.CMD_RESET_FAULT,)))

    def _queue(self, write: _Write) -> None:
        record = self.commands.request(
            write.label,
            {"address": write.address, "values": list(write.values)},
            self.clock(),
            COMMAND_CONFIRM.get(write.label) or _holds(write.address, write.values),
        )
        self._writes.append(_Write(write.label, write.address, write.values, record))
        self._wake.set()

    def _stop_write(self) -> _Write:
        """The STOP command write, tracked like any other command."""
        record = self.commands.request(
            "stop",
            {"address": us1.HR_COMMAND, "values": [us1.CMD_STOP]},
            self.clock(),
            COMMAND_CONFIRM["stop"],
        )
        return _Write("stop", us1.HR_COMMAND, (us1.CMD_STOP,), record)

    # ---- lifecycle ----

    async def _release(self) -> None:
        """Close the transport (called by close())."""
        self._disconnect()

    async def connect_and_stop(
        self, timeout_s: float = 2.0
    ) -> tuple[UltrasoundReading, UltrasoundReading]:
        """At controller start: connect, identify, read, command STOP, read again.

        Returns the readings before and after the stop. On failure the stop stays pending,
        so it is the first thing written once the unit is reached. Raises a DriverError when
        the unit cannot be reached or is not the profiled one.
        """
        self._stop_pending = True
        deadline = self.clock() + timeout_s
        while True:
            try:
                await self._connect()
                await self._poll()
                assert self.latest is not None
                before = self.latest
                await self._write_block(self._stop_write())
                self._stop_pending = False
                self._stop_taken.set()
                self.stops_sent += 1
                await self._poll()
                return before, self.latest
            except DeviceUnreachable:
                self._disconnect()
                if self.clock() >= deadline:
                    raise
                await asyncio.sleep(BACKOFF_INITIAL_S)

    async def identify(self) -> UltrasoundReading:
        """Connect, check the unit is the profiled one and poll once, writing nothing.

        For `devices probe`: no watchdog write, no stop, no I/O task, one attempt. Raises a
        DriverError; the caller closes the driver.
        """
        await self._open()
        await self._check_identity()
        await self._poll()
        assert self.latest is not None
        return self.latest

    @property
    def endpoint(self) -> str:
        """Where the unit is reached, in words: `host:port` or the serial port."""
        return modbus_transport.endpoint_text(self.profile.link)

    # ---- the I/O task ----

    async def _run(self) -> None:
        backoff = BACKOFF_INITIAL_S
        while not self._closing:
            try:
                if self._client is None or not self.connected:
                    await self._connect()
                    # Writes asked for while the link was down were judged on stale telemetry
                    # (the unit may have rebooted): only a pending stop survives.
                    self._drop_writes()
                    self._heartbeat_pending = False
                    backoff = BACKOFF_INITIAL_S
                await self._serve()
            except asyncio.CancelledError:
                raise
            except DriverError as exc:
                self._report(str(exc))
                self._disconnect()
                # Nothing but a stop survives a lost link: never replay a start.
                self._drop_writes()
                self._heartbeat_pending = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _serve(self) -> None:
        next_poll = self.clock()
        while not self._closing:
            if self._stop_pending and not self._stop_needs_poll:
                # Cleared only once the device has taken it: a stop lost to a dead link is
                # sent again as soon as the link is back. A stop asked for again (a lock-out
                # re-sends one every tick) waits for one poll after the last, so telemetry
                # keeps flowing on a slow line.
                await self._write_checked(self._stop_write())
                self._stop_pending = False
                self._stop_taken.set()
                self.stops_sent += 1
                self._stop_needs_poll = True
                continue
            if self._watchdog_due:
                self._watchdog_due = False
                await self._write_checked(
                    _Write("watchdog", us1.HR_WATCHDOG, (self.profile.watchdog_ms,))
                )
                continue
            if self._writes:
                await self._write_checked(self._writes.popleft())
                continue
            if self._heartbeat_pending:
                self._heartbeat_pending = False
                self._heartbeat_counter = (self._heartbeat_counter + 1) & 0xFFFF
                await self._write_checked(
                    _Write("heartbeat", us1.HR_HEARTBEAT, (self._heartbeat_counter,))
                )
                continue
            now = self.clock()
            if now >= next_poll:
                try:
                    await self._poll()
                except NoReply as exc:
                    self._silent_polls += 1
                    if self._silent_polls >= SILENT_POLLS_TO_RECONNECT:
                        raise
                    self._report(f"{exc}; reading again before reconnecting")
                    next_poll = self.clock()
                    continue
                self._silent_polls = 0
                self._stop_needs_poll = False
                next_poll = max(next_poll + self._poll_period_s, self.clock())
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_poll - now):
                    await self._wake.wait()

    async def _connect(self) -> None:
        self._stop_needs_poll = False  # a pending stop is the first write on a new link
        await self._open()
        await self._check_identity()
        await self._write_block(_Write("watchdog", us1.HR_WATCHDOG, (self.profile.watchdog_ms,)))
        self._watchdog_due = False
        self.connected = True
        self.last_error = None
        assert self.identity is not None
        log.info("%s: connected to US-1 serial %d", self.device_id, self.identity.serial)

    async def _open(self) -> None:
        """Open a fresh client on the profile's transport (TCP socket or RTU serial line)."""
        self._disconnect()
        client = make_client(self.profile.link)
        self._client = client
        self.links_opened += 1
        self._silent_polls = 0
        try:
            async with asyncio.timeout(self._hard_timeout_s):
                connected = await client.connect()
        except (TimeoutError, OSError) as exc:
            raise DeviceUnreachable(
                f"{self.device_id}: connecting to {self.endpoint} failed: {exc!r}"
            ) from exc
        if not connected:
            raise DeviceUnreachable(f"{self.device_id}: {no_link_text(self.profile.link)}")

    async def _check_identity(self) -> None:
        """Read the identity registers; raise WrongDevice unless they match the profile."""
        inputs = await self._read("input", us1.IR_COUNT)
        try:
            model, serial, era, bnr = us1.decode_identity(inputs)
        except us1.Us1DecodeError as exc:
            # A reply that does not fit (on RTU: a late reply to a request sent before a
            # reconnect) is a failed link, not the end of the I/O task.
            raise DeviceUnreachable(f"{self.device_id}: {exc}") from exc
        if model != us1.MODEL_CODE:
            raise WrongDevice(
                f"{self.device_id}: model code 0x{model:04X} at {self.endpoint}, "
                f"expected 0x{us1.MODEL_CODE:04X} (US-1)"
            )
        for name, reported, profiled in (
            ("ERA", era, self.profile.era_cm2),
            ("BNR", bnr, self.profile.bnr),
        ):
            if abs(reported - profiled) > 0.05:
                raise WrongDevice(
                    f"{self.device_id}: the head reports {name} {reported} but the profile says "
                    f"{profiled}; the device is the truth, correct the profile"
                )
        self.identity = Identity(model, serial, era, bnr)

    def _disconnect(self) -> None:
        self.connected = False
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _poll(self) -> None:
        holding = await self._read("holding", us1.HR_COUNT)
        inputs = await self._read("input", us1.IR_COUNT)
        discrete = await self._read_discrete()
        previous = self.latest
        now = self.clock()
        try:
            self.latest = us1.decode_reading(holding, inputs, discrete, now)
        except us1.Us1DecodeError as exc:
            raise DeviceUnreachable(f"{self.device_id}: {exc}") from exc
        if previous is None or self.latest.boot_count == previous.boot_count:
            self._compare_setpoints(holding)
        self.commands.observe(self.latest, now)
        for line in self.commands.expire_unconfirmed(now, self.device_id):
            self._report(line)
        if previous is not None and self.latest.boot_count != previous.boot_count:
            # A reboot without a lost link (RTU): the unit is back at its boot watchdog and
            # writes queued before it were judged on the old state; never replay a start.
            self._watchdog_due = True
            self._drop_writes()
            self._written.clear()  # the unit is back at its boot values, which we did not write

    async def _read(self, table: str, count: int) -> list[int]:
        client = self._require_client()
        reader = (
            client.read_holding_registers if table == "holding" else client.read_input_registers
        )
        response = await self._call(reader, 0, count=count, device_id=self.profile.link.device_id)
        if response.isError():
            what = f"{table} register read"
            raise DeviceUnreachable(f"{self.device_id}: {read_refused_text(what, response)}")
        return list(response.registers[:count])

    async def _read_discrete(self) -> list[bool]:
        client = self._require_client()
        response = await self._call(
            client.read_discrete_inputs,
            0,
            count=us1.DI_COUNT,
            device_id=self.profile.link.device_id,
        )
        if response.isError():
            what = "discrete input read"
            raise DeviceUnreachable(f"{self.device_id}: {read_refused_text(what, response)}")
        return [bool(b) for b in response.bits[: us1.DI_COUNT]]

    async def _write_block(self, write: _Write) -> None:
        client = self._require_client()
        response = await self._call(
            client.write_registers,
            write.address,
            list(write.values),
            device_id=self.profile.link.device_id,
        )
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise DeviceRejected(
                f"{self.device_id}: {write.label} refused by the device: exception "
                f"{code:02d} ({MODBUS_EXCEPTIONS.get(code, 'unknown')})"
            )
        now = self.clock()
        if write.record is not None:
            self.commands.acknowledge(write.record, now)
        for reg, value in zip(
            range(write.address, write.address + len(write.values)), write.values, strict=True
        ):
            if reg in SETPOINT_NAMES:
                self._written[reg] = value

    async def _write_checked(self, write: _Write) -> None:
        """A write whose refusal is reported but does not drop the link."""
        try:
            await self._write_block(write)
        except DeviceRejected as exc:
            if write.record is not None:
                self.commands.refuse(write.record, "REJECTED", str(exc))
            self._report(str(exc))

    def _drop_writes(self) -> None:
        """Forget queued writes (link lost or unit rebooted); their records end `lost`."""
        self._writes.clear()
        for record in self.commands.values():
            if record.open and record.op != "stop":
                record.state = "lost"

    def _compare_setpoints(self, holding: list[int]) -> None:
        """Report, once per value, a setpoint the device holds that the console did not write."""
        for reg, wrote in self._written.items():
            held = holding[reg]
            if held == wrote:
                self._mismatch_seen.pop(reg, None)
            elif self._mismatch_seen.get(reg) != held:
                self._mismatch_seen[reg] = held
                self.setpoint_mismatches += 1
                self._report(
                    f"{self.device_id}: the device holds {SETPOINT_NAMES[reg]} {held}, "
                    f"but the console wrote {wrote}"
                )

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One pymodbus request under our deadline (modbus_transport.call)."""
        return await modbus_transport.call(
            self.device_id,
            self.profile.link,
            self._hard_timeout_s,
            lambda: method(*args, **kwargs),
        )

    def _require_client(self) -> ModbusClient:
        if self._client is None:
            raise DeviceUnreachable(f"{self.device_id}: not connected")
        return self._client
