"""A Modbus ultrasound unit driven from its register-map profile (`kind = "modbus_generic"`).

The same public surface and I/O discipline as `us1_modbus.Us1ModbusDriver`, so the controller
and the driver contract suite use either: one I/O task; a pending stop goes first and stays
pending across a lost link; then the watchdog after a reboot, queued writes, a heartbeat only
when the core asked, and the poll. After a reconnect or a reboot nothing but the stop is
replayed. Where the US-1 driver has the ICD in code, this one has the profile's map and the
pure codec `protocols/modbus_map.py`.

Every command is tracked in `commands` (drivers/tracking.py): acknowledged by the write
response, confirmed by a poll (a setpoint read back, the state RUNNING after start, the output
off after stop, no FAULT after reset). Heartbeats and watchdog writes are upkeep, not commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
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
    make_client,
    no_link_text,
    read_refused_text,
)
from sessionconsole.drivers.tracking import CommandRecord, CommandTracker
from sessionconsole.model.modbus_map import ModbusGenericProfile
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.telemetry import UltrasoundReading
from sessionconsole.protocols import modbus_map as codec

log = logging.getLogger(__name__)

ERA_BNR_TOLERANCE = 0.05
READ_METHODS = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
}


@dataclass(frozen=True, slots=True)
class Identity:
    """What the unit says it is (0 where the map has no such register)."""

    model_code: int
    serial: int
    era_cm2: float
    bnr: float


@dataclass(frozen=True, slots=True)
class _Write:
    """One queued write of holding registers, and the command it carries out (if tracked)."""

    label: str
    address: int
    values: tuple[int, ...]
    record: CommandRecord | None = None


class GenericModbusDriver(DriverLifecycle):
    """Drives one Modbus ultrasound unit described by a register map; see the module docstring."""

    def __init__(
        self,
        device_id: str,
        profile: ModbusGenericProfile,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(device_id, on_error)
        self.profile = profile
        self.clock = clock
        self.latest: UltrasoundReading | None = None
        self.identity: Identity | None = None
        self.commands = CommandTracker()
        self.stops_sent = 0
        self._stop_pending = True  # the first write once the unit is reached is a stop
        self._stop_needs_poll = False  # a stop went out and no poll has followed yet
        self.setpoint_mismatches = 0
        self._expected: dict[int, dict[str, codec.Physical]] = {}  # command id -> setpoints
        self._written: dict[str, codec.Physical] = {}  # reading field -> the value we wrote
        self._mismatch_seen: dict[str, codec.Physical] = {}
        self._stop_record: CommandRecord | None = None
        self._heartbeat_counter = 0
        self._watchdog_due = False
        self._writes: deque[_Write] = deque()
        self._client: ModbusClient | None = None
        self._plan = codec.plan_poll(profile.registers)
        self._command = profile.by_role("command")
        self._heartbeat = profile.by_role("heartbeat")
        self._watchdog = profile.by_role("watchdog")
        self._poll_period_s = 1.0 / profile.link.telemetry_hz
        self._hard_timeout_s = 3 * profile.link.request_timeout_ms / 1000.0 + 0.5

    # ---- requests from the core loop (never block) ----

    def request_stop(self) -> None:
        """Stop the output as soon as possible, ahead of anything queued.

        Kept pending across a lost link and reconnects until the device has taken it.
        """
        self._track_stop()
        self._stop_pending = True
        self._stop_taken.clear()
        self._heartbeat_pending = False  # a heartbeat asked for before the trip must not follow
        self.commands.supersede("start", "a stop came first")
        self._writes = deque(w for w in self._writes if w.label != "start")
        self._wake.set()

    def _track_stop(self) -> CommandRecord:
        """The open stop command, or a new one: repeated requests share one record."""
        if self._stop_record is None or not self._stop_record.open:
            self._stop_record = self.commands.request(
                "stop", {}, self.clock(), confirm=lambda r: not r.output_active
            )
        return self._stop_record

    @property
    def stop_pending(self) -> bool:
        """A stop was asked for and the device has not yet taken it."""
        return self._stop_pending

    def request_configure(self, settings: UltrasoundSettings) -> None:
        """Write frequency, intensity, duty and time (one write per contiguous block)."""
        try:
            words = codec.settings_words(self.profile, settings)
        except codec.MapCodecError as exc:
            self._refuse_now("configure", settings.model_dump(), str(exc))
            return
        expected = {reg.target: codec.decode(reg, w) for reg, w in words}
        record = self.commands.request(
            "configure",
            settings.model_dump(),
            self.clock(),
            confirm=lambda r: all(_same(getattr(r, f), v) for f, v in expected.items() if f),
        )
        self._expected[record.id] = {f: v for f, v in expected.items() if f}
        blocks = codec.write_blocks(words)
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1  # the last block's response acknowledges the command
            self._queue(_Write("configure", block.address, block.values, record if last else None))

    def request_intensity(self, intensity_w_cm2: float) -> None:
        """Write a new intensity setpoint; the device ramps to it."""
        reg = self.profile.by_field("intensity_setpoint_w_cm2")
        assert reg is not None
        args = {"intensity_w_cm2": intensity_w_cm2}
        try:
            words = codec.encode(reg, intensity_w_cm2)
        except codec.MapCodecError as exc:
            self._refuse_now("intensity", args, str(exc))
            return
        expected = codec.decode(reg, words)
        record = self.commands.request(
            "intensity",
            args,
            self.clock(),
            confirm=lambda r: _same(r.intensity_setpoint_w_cm2, expected),
        )
        self._expected[record.id] = {"intensity_setpoint_w_cm2": expected}
        self._queue(_Write("intensity", reg.address, tuple(words), record))

    def request_start(self) -> None:
        """Start the output; confirmed when the unit reports RUNNING."""
        self._command_write("start", lambda r: r.state == "RUNNING")

    def request_reset_fault(self) -> None:
        """Reset the device's latched fault (the kernel sends it only after an acknowledgement)."""
        self._command_write("reset_fault", lambda r: r.state != "FAULT")

    def _command_write(self, op: str, confirm: Callable[[UltrasoundReading], bool]) -> None:
        try:
            words = codec.encode_code(self._command, op)
        except codec.MapCodecError as exc:
            self._refuse_now(op, {}, str(exc))
            return
        record = self.commands.request(op, {}, self.clock(), confirm=confirm)
        self._queue(_Write(op, self._command.address, tuple(words), record))

    def _refuse_now(self, op: str, args: dict[str, Any], reason: str) -> None:
        """A command the profile cannot express: recorded as refused, reported, never sent."""
        record = self.commands.request(op, args, self.clock())
        self.commands.refuse(record, "not_encodable", reason)
        self._report(f"{self.device_id}: {op} not sent: {reason}")

    def _queue(self, write: _Write) -> None:
        self._writes.append(write)
        self._wake.set()

    # ---- lifecycle ----

    async def _release(self) -> None:
        """Close the transport (called by close())."""
        self._disconnect()

    async def connect_and_stop(
        self, timeout_s: float = 2.0
    ) -> tuple[UltrasoundReading, UltrasoundReading]:
        """At controller start: connect, identify, read, command STOP, read again.

        Returns the readings before and after the stop. On failure the stop stays pending.
        Raises a DriverError when the unit cannot be reached or is not the profiled one.
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
                self._stop_taken_now()
                await self._poll()
                return before, self.latest
            except DeviceUnreachable:
                self._disconnect()
                if self.clock() >= deadline:
                    raise
                await asyncio.sleep(BACKOFF_INITIAL_S)

    async def identify(self) -> UltrasoundReading:
        """Connect, check the unit is the profiled one and poll once, writing nothing.

        For `devices probe`: no watchdog write, no stop, no I/O task, one attempt.
        """
        await self._open()
        await self._check_identity()
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
                    self._drop_writes("the link was down when it was asked for")
                    backoff = BACKOFF_INITIAL_S
                await self._serve()
            except asyncio.CancelledError:
                raise
            except DriverError as exc:
                self._report(str(exc))
                self._disconnect()
                self._drop_writes("the link was lost")  # never replay a start
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _serve(self) -> None:
        next_poll = self.clock()
        while not self._closing:
            for line in self.commands.expire_unconfirmed(self.clock(), self.device_id):
                self._report(line)
            if self._stop_pending and not self._stop_needs_poll:
                # Cleared only once the device has taken it: a stop lost to a dead link is
                # sent again as soon as the link is back. A stop asked for again (a lock-out
                # re-sends one every tick) waits for one poll after the last, so telemetry
                # keeps flowing on a slow line.
                await self._write_checked(self._stop_write())
                self._stop_taken_now()  # answered: a refusal is reported (the ICD has none)
                self._stop_needs_poll = True
                continue
            if self._watchdog_due:
                self._watchdog_due = False
                await self._write_checked(self._watchdog_write())
                continue
            if self._writes:
                await self._write_checked(self._writes.popleft())
                continue
            if self._heartbeat_pending:
                self._heartbeat_pending = False
                # 15 bits: fits every integer type a heartbeat register may have
                self._heartbeat_counter = (self._heartbeat_counter + 1) & 0x7FFF
                words = codec.raw_to_words(self._heartbeat.type, "big", self._heartbeat_counter)
                await self._write_checked(_Write("heartbeat", self._heartbeat.address, (*words,)))
                continue
            now = self.clock()
            if now >= next_poll:
                await self._poll()
                self._stop_needs_poll = False
                next_poll = max(next_poll + self._poll_period_s, self.clock())
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_poll - now):
                    await self._wake.wait()

    def _stop_write(self) -> _Write:
        words = codec.encode_code(self._command, "stop")
        return _Write("stop", self._command.address, tuple(words), self._track_stop())

    def _watchdog_write(self) -> _Write:
        words = codec.encode(self._watchdog, float(self.profile.watchdog_ms))
        return _Write("watchdog", self._watchdog.address, tuple(words))

    def _stop_taken_now(self) -> None:
        self._stop_pending = False
        self._stop_taken.set()
        self.stops_sent += 1
        if self._stop_record is not None:
            self.commands.acknowledge(self._stop_record, self.clock())

    def _drop_writes(self, why: str) -> None:
        """Forget queued writes and the heartbeat; their commands end `lost`."""
        for write in self._writes:
            if write.record is not None and write.record.open:
                write.record.state, write.record.detail = "lost", why
        self._writes.clear()
        self._heartbeat_pending = False

    async def _connect(self) -> None:
        self._stop_needs_poll = False  # a pending stop is the first write on a new link
        await self._open()
        await self._check_identity()
        await self._write_block(self._watchdog_write())
        self._watchdog_due = False
        self.connected = True
        self.last_error = None
        assert self.identity is not None
        log.info(
            "%s: connected to %s serial %d", self.device_id, self.profile.name, self.identity.serial
        )

    async def _open(self) -> None:
        """Open a fresh client on the profile's transport (TCP socket or RTU serial line)."""
        self._disconnect()
        client = make_client(self.profile.link)
        self._client = client
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
        """Poll once; raise WrongDevice unless identity, ERA and BNR match the profile."""
        values = await self._poll_values()
        check = self.profile.identity
        if check is not None:
            reg = self.profile.register(check.register_name)
            found = values.get(reg.target or reg.name)
            if found != check.expected:
                shown = f"0x{int(found):04X}" if isinstance(found, float | int) else repr(found)
                raise WrongDevice(
                    f"{self.device_id}: {check.register_name} {shown} at {self.endpoint}, "
                    f"expected 0x{check.expected:04X} ({self.profile.name})"
                )
        reading = self._reading(values)
        for name, reported, profiled in (
            ("ERA", values.get("era_cm2"), self.profile.era_cm2),
            ("BNR", values.get("bnr"), self.profile.bnr),
        ):
            if (
                isinstance(reported, float)
                and profiled is not None
                and abs(reported - profiled) > ERA_BNR_TOLERANCE
            ):
                raise WrongDevice(
                    f"{self.device_id}: the head reports {name} {reported:g} but the profile "
                    f"says {profiled:g}; the device is the truth, correct the profile"
                )
        self.identity = Identity(
            _int(values.get("model_code")),
            _int(values.get("serial_number")),
            reading.era_cm2,
            reading.bnr,
        )
        if self.latest is not None and reading.boot_count != self.latest.boot_count:
            # Rebooted while the link was down (TCP): back at boot values the console did not
            # write. Without this the first poll compares them with the last session's writes.
            self._written.clear()
        self.latest = reading

    def _disconnect(self) -> None:
        # Open commands die with the link, except the stop: it stays pending and goes first.
        for record in self.commands.values():
            if record.open and record is not self._stop_record:
                record.state, record.detail = "lost", "the link was lost"
        self.connected = False
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _poll(self) -> None:
        previous = self.latest
        self.latest = self._reading(await self._poll_values())
        self.commands.observe(self.latest, self.clock())
        if previous is None or self.latest.boot_count == previous.boot_count:
            self._compare_setpoints(self.latest)
        else:
            self._written.clear()  # back at boot values, which the console did not write
        if previous is not None and self.latest.boot_count != previous.boot_count:
            # A reboot without a lost link (RTU): the unit is back at its boot watchdog and
            # writes queued before it were judged on the old state; never replay a start.
            self._watchdog_due = True
            self._drop_writes("the unit rebooted")

    def _compare_setpoints(self, reading: UltrasoundReading) -> None:
        """Report, once per value, a setpoint the unit holds that the console did not write."""
        for field, wrote in self._written.items():
            held = getattr(reading, field, None)
            if _same(held, wrote):
                self._mismatch_seen.pop(field, None)
            elif self._mismatch_seen.get(field) != held:
                self._mismatch_seen[field] = held
                self.setpoint_mismatches += 1
                self._report(
                    f"{self.device_id}: the unit holds {field} {held}, "
                    f"but the console wrote {wrote}"
                )

    async def _poll_values(self) -> dict[str, codec.Physical]:
        """Read every block of the poll plan and decode it."""
        values: dict[str, codec.Physical] = {}
        for read in self._plan:
            data = await self._read(read)
            try:
                values.update(codec.decode_block(read, data))
            except codec.MapCodecError as exc:
                raise DeviceUnreachable(f"{self.device_id}: {exc}") from exc
        return values

    def _reading(self, values: dict[str, codec.Physical]) -> UltrasoundReading:
        try:
            return codec.build_reading(self.profile, values, self.clock())
        except codec.MapCodecError as exc:
            raise DeviceUnreachable(f"{self.device_id}: {exc}") from exc

    async def _read(self, read: codec.PollRead) -> list[int] | list[bool]:
        client = self._require_client()
        method = getattr(client, READ_METHODS[read.table])
        response = await self._call(
            method, read.address, count=read.count, device_id=self.profile.link.device_id
        )
        if response.isError():
            what = f"{read.table} read of {read.count} from {read.address}"
            raise DeviceUnreachable(f"{self.device_id}: {read_refused_text(what, response)}")
        if read.table in ("coil", "discrete"):
            return [bool(b) for b in response.bits[: read.count]]
        return list(response.registers[: read.count])

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
            text = MODBUS_EXCEPTIONS.get(code, "unknown")
            if write.record is not None:
                self.commands.refuse(write.record, f"exception {code:02d}", text)
            raise DeviceRejected(
                f"{self.device_id}: {write.label} refused by the device: exception "
                f"{code:02d} ({text})"
            )
        if write.record is not None and write.label != "stop":
            self.commands.acknowledge(write.record, self.clock())
            self._written.update(self._expected.pop(write.record.id, {}))

    async def _write_checked(self, write: _Write) -> bool:
        """A write whose refusal is reported but does not drop the link; whether it was taken."""
        try:
            await self._write_block(write)
        except DeviceRejected as exc:
            self._report(str(exc))
            return False
        return True

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


def _same(read: object, expected: codec.Physical) -> bool:
    """A setpoint read back equals what was written (to float rounding)."""
    if isinstance(read, int | float) and isinstance(expected, int | float):
        return abs(read - expected) <= 1e-6 * max(1.0, abs(expected))
    return read == expected


def _int(value: codec.Physical) -> int:
    """An identity value as an integer (0 when the map has no such register)."""
    return round(value) if isinstance(value, int | float) else 0
