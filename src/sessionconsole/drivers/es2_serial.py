"""ES-2 stimulator driver over a serial port or a pyserial URL.

A serial port (a device path) is read by a thread of its own (drivers/serial_thread.py: a tty
in the event loop's selector can stall the loop); a `socket://` URL goes through
pyserial-asyncio-fast on the loop, as a socket has no such problem.

Two tasks share one link: a reader that decodes every frame (replies resolve the one
outstanding request; TEL and EVT frames update the latest readings and the event log), and a
writer that sends one request at a time, repeating it after 50 ms of silence at most twice
(ICD). A pending stop goes first, then queued writes, then a heartbeat if the core asked, then
the STAT poll that reads targets back. Heartbeats are sent only when asked.

Every command is tracked in `commands` (drivers/tracking.py): acknowledged by ACK, refused by
NAK, confirmed when a reading shows it (the target read back, the channel running, stopped or
clear of faults; a CFG has nothing to read back, so its ACK ends it). A target amplitude the
device holds that the console did not write is reported once (`setpoint_mismatches`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import serial
import serial_asyncio_fast

from sessionconsole.drivers.base import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    CLOSE_TIMEOUT_S,
    DriverLifecycle,
)
from sessionconsole.drivers.errors import DeviceRejected, DeviceUnreachable, WrongDevice
from sessionconsole.drivers.serial_thread import SerialThreadLink
from sessionconsole.drivers.tracking import CommandRecord, CommandTracker, Confirm
from sessionconsole.model.stimulation import (
    RUNNING_STIM_STATES,
    Es2Profile,
    StimChannelReading,
    StimulationSettings,
)
from sessionconsole.protocols import es2

log = logging.getLogger(__name__)

STAT_PERIOD_S = 0.2
CHANNELS = (1, 2)


@dataclass(frozen=True, slots=True)
class _Request:
    """One queued request."""

    label: str
    verb: str
    args: tuple[str | int | float, ...]
    record: CommandRecord | None = field(default=None, compare=False)


RUNNING_STATES = RUNNING_STIM_STATES


def _confirm(request: _Request) -> Confirm | None:
    """How a reading of the request's channel shows that it took effect (None: ACK is all)."""
    if request.verb == "AMP":
        target = float(request.args[1])
        return lambda r: r.target_ma is not None and abs(r.target_ma - target) < 1e-6
    if request.verb == "RUN":
        return lambda r: r.state in RUNNING_STATES
    if request.verb == "STOP":
        return lambda r: r.state not in RUNNING_STATES
    if request.verb == "RST":
        return lambda r: not r.faults
    return None


class Es2SerialDriver(DriverLifecycle):
    """Drives one ES-2; see the module docstring for the I/O discipline."""

    def __init__(
        self,
        device_id: str,
        profile: Es2Profile,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(device_id, on_error)
        self.profile = profile
        self.clock = clock
        self.latest: dict[int, StimChannelReading] = {}
        self.identity: es2.Identity | None = None
        self.events: deque[tuple[float, es2.Event]] = deque(maxlen=256)
        self.boot_events = 0
        self.stale_replies = 0
        self.decoder = es2.FrameDecoder()
        self._seq = es2.SeqCounter()
        self._stop_channels: set[int] = {0}  # the first write once reached: stop everything
        self._reconfigure_due = False  # EVT,BOOT: the unit forgot its watchdog and stream rate
        self._queue: deque[_Request] = deque()
        self._pending: tuple[int, asyncio.Future[es2.Message]] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | SerialThreadLink | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reader_failure: Exception | None = None  # raised by the I/O task's next pass
        self.commands = CommandTracker()
        self.setpoint_mismatches = 0
        self._written_ma: dict[int, float] = {}  # channel -> the target amplitude we wrote
        self._mismatch_seen: dict[int, float] = {}

    # ---- requests from the core loop (never block) ----

    def request_stop(self, channel: int = 0) -> None:
        """Stop a channel (0 = every channel) as soon as possible, ahead of anything queued.

        Kept pending across a lost link and reconnects until the device acknowledged it.
        """
        self._stop_channels.add(channel)
        self._stop_taken.clear()
        self._heartbeat_pending = False
        stopped = CHANNELS if channel == 0 else (channel,)
        for r in self._queue:
            if r.verb == "RUN" and int(r.args[0]) in stopped and r.record is not None:
                self.commands.refuse(r.record, "SUPERSEDED", "a stop came first")
        self._queue = deque(
            r for r in self._queue if not (r.verb == "RUN" and int(r.args[0]) in stopped)
        )
        self._wake.set()

    @property
    def stop_pending(self) -> bool:
        """A stop was asked for and the device has not yet acknowledged it."""
        return bool(self._stop_channels)

    def request_configure(self, channel: int, settings: StimulationSettings) -> None:
        """Configure a stopped channel."""
        s = settings
        args = (channel, s.mode, s.freq_hz, s.pw_us, s.on_s, s.off_s, s.ramp_s)
        self._put(_Request("configure", "CFG", args))

    def request_amplitude(self, channel: int, amplitude_ma: float) -> None:
        """Set the target peak amplitude (a multiple of 0.5 mA; the device ramps to it)."""
        self._put(_Request("amplitude", "AMP", (channel, amplitude_ma)))

    def request_run(self, channel: int) -> None:
        """Start a channel's output."""
        self._put(_Request("run", "RUN", (channel,)))

    def request_reset_fault(self, channel: int) -> None:
        """Clear a channel's latched faults (only after an operator's acknowledgement)."""
        self._put(_Request("reset_fault", "RST", (channel,)))

    def _put(self, request: _Request) -> None:
        self._queue.append(self._tracked(request))
        self._wake.set()

    def _tracked(self, request: _Request) -> _Request:
        """The request with a new command record (channel 0: every channel's reading)."""
        confirm = _confirm(request)
        channel = int(request.args[0])
        check: Confirm | None = None
        if confirm is not None:
            rule = confirm

            def check(readings: dict[int, StimChannelReading]) -> bool:
                chosen = CHANNELS if channel == 0 else (channel,)
                return all(ch in readings and rule(readings[ch]) for ch in chosen)

        args = {"channel": channel, "fields": [str(a) for a in request.args[1:]]}
        record = self.commands.request(request.label, args, self.clock(), check)
        return _Request(request.label, request.verb, request.args, record)

    # ---- lifecycle ----

    async def _release(self) -> None:
        """Close the transport (called by close())."""
        await self._disconnect()

    async def connect_and_stop(self, timeout_s: float = 2.0) -> dict[int, StimChannelReading]:
        """At controller start: connect, identify, STOP every channel, read their state."""
        deadline = self.clock() + timeout_s
        while True:
            try:
                await self._connect()
                await self._poll_status()
                before = dict(self.latest)
                await self._send_stop(0)
                self._stop_channels.clear()
                self._stop_taken.set()
                await self._poll_status()
                return before
            except DeviceUnreachable:
                await self._disconnect()
                if self.clock() >= deadline:
                    raise
                await asyncio.sleep(BACKOFF_INITIAL_S)

    # ---- I/O ----

    async def _run(self) -> None:
        backoff = BACKOFF_INITIAL_S
        while not self._closing:
            try:
                if not self.connected:
                    await self._connect()
                    # Writes asked for while the link was down were judged on stale
                    # telemetry (the unit may have rebooted): only a pending stop survives.
                    self._drop_queue()
                    self._heartbeat_pending = False
                    backoff = BACKOFF_INITIAL_S
                await self._serve()
            except asyncio.CancelledError:
                raise
            except (DeviceUnreachable, WrongDevice) as exc:
                failure = self._take_reader_failure()
                if failure is not None:  # not a lost link: the supervisor reports it, once
                    raise failure from exc
                self._report(str(exc))
                await self._disconnect()
                self._drop_queue()  # nothing but a stop survives a lost link
                self._heartbeat_pending = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _serve(self) -> None:
        next_stat = self.clock()
        while not self._closing:
            failure = self._take_reader_failure()
            if failure is not None:
                raise failure
            if self._stop_channels:
                channel = min(self._stop_channels)  # 0 (every channel) first
                await self._send_stop(channel)
                self._stop_channels.discard(channel)  # only once the device acknowledged
                if channel == 0:
                    self._stop_channels.clear()  # STOP,0 covered every channel
                if not self._stop_channels:
                    self._stop_taken.set()
                continue
            if self._reconfigure_due:
                try:
                    await self._configure_link()
                except DeviceRejected as exc:  # reported; the link stays up
                    self._report(str(exc))
                continue
            if self._queue:
                await self._send_checked(self._queue.popleft())
                continue
            if self._heartbeat_pending:
                self._heartbeat_pending = False
                await self._send(_Request("heartbeat", "HB", ()))
                continue
            now = self.clock()
            if now >= next_stat:
                await self._poll_status()
                next_stat = max(next_stat + STAT_PERIOD_S, self.clock())
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_stat - now):
                    await self._wake.wait()

    def _take_reader_failure(self) -> Exception | None:
        """The reader task's unexpected failure, once (None when it had none)."""
        failure, self._reader_failure = self._reader_failure, None
        return failure

    async def _connect(self) -> None:
        await self._disconnect()
        self._reader_failure = None  # a fresh reader; connect_and_stop retries past the old one
        port = self.profile.link.port
        try:
            if "://" in port:  # a pyserial URL (socket://): no tty, the loop reads it
                self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(
                    url=port, baudrate=self.profile.link.baudrate
                )
            else:
                link = await SerialThreadLink.open(port, self.profile.link.baudrate)
                self._reader, self._writer = link.reader, link
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceUnreachable(f"{self.device_id}: cannot open {port}: {exc}") from exc
        self.decoder = es2.FrameDecoder()
        self._reader_task = asyncio.create_task(self._read(), name=f"reader-{self.device_id}")
        reply = await self._send(_Request("identify", "ID?", ()))
        if not isinstance(reply, es2.Identity):
            raise WrongDevice(f"{self.device_id}: {port} answered ID? with {reply}, not an ES-2")
        if reply.model != "ES-2":
            raise WrongDevice(
                f"{self.device_id}: {port} answers as model {reply.model} (serial "
                f"{reply.serial}), not as an ES-2; check the port in the profile"
            )
        self.identity = reply
        await self._configure_link()
        self.connected = True
        self.last_error = None
        log.info("%s: connected to ES-2 %s on %s", self.device_id, reply.serial, port)

    async def _configure_link(self) -> None:
        """Set the profile's watchdog and telemetry rate (on connect and after EVT,BOOT)."""
        self._reconfigure_due = False
        await self._send_expect_ack(_Request("watchdog", "WDG", (self.profile.watchdog_ms,)))
        await self._send_expect_ack(_Request("stream", "STREAM", (self.profile.link.telemetry_hz,)))

    async def _disconnect(self) -> None:
        self.connected = False
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.wait({self._reader_task}, timeout=CLOSE_TIMEOUT_S)
            self._reader_task = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            if isinstance(writer, SerialThreadLink):
                await writer.wait_closed()  # before the port is opened again
        self._fail_pending(DeviceUnreachable(f"{self.device_id}: link closed"))

    async def _read(self) -> None:
        reader = self._reader
        assert reader is not None
        try:
            while data := await reader.read(256):
                for frame in self.decoder.feed(data):
                    self._dispatch(frame)
        except (OSError, serial.SerialException) as exc:
            log.warning("%s: read failed: %s", self.device_id, exc)
        except Exception as exc:  # a bug or a surprise: the I/O task raises it (supervised)
            log.error("%s: handling a frame from the unit failed", self.device_id, exc_info=exc)
            self._reader_failure = exc
            # The request waiting for a reply fails as a lost link would, so connect_and_stop
            # (not supervised) retries; the I/O task takes the failure itself.
            self._fail_pending(DeviceUnreachable(f"{self.device_id}: reading replies failed"))
            self._wake.set()
            return
        self._fail_pending(DeviceUnreachable(f"{self.device_id}: the port closed"))

    def _dispatch(self, frame: es2.Frame) -> None:
        try:
            message = es2.parse_reply(frame)
        except es2.Es2ReplyError as exc:
            message = None
            problem: Exception = exc
        if frame.seq == 0:
            if message is None:
                log.warning("%s: unusable unsolicited frame: %s", self.device_id, problem)
            else:
                self._unsolicited(message)
            return
        pending = self._pending
        if pending is None or pending[0] != frame.seq or pending[1].done():
            self.stale_replies += 1  # a late reply to a repeated request
            return
        if message is None:
            pending[1].set_exception(DeviceUnreachable(f"{self.device_id}: {problem}"))
        else:
            pending[1].set_result(message)

    def _unsolicited(self, message: es2.Message) -> None:
        now = self.clock()
        if isinstance(message, es2.ChannelStatus):
            previous = self.latest.get(message.channel)
            target = previous.target_ma if previous is not None else None
            self.latest[message.channel] = _reading(message, now, target)
        elif isinstance(message, es2.Event):
            self.events.append((now, message))
            if message.name == "BOOT":
                self.boot_events += 1
                # All configuration is lost (ICD): set watchdog and stream rate again, and
                # drop requests judged on the old state; never replay a start.
                self._reconfigure_due = True
                self._drop_queue()
                self._written_ma.clear()  # back at boot values, which the console did not write
                self._wake.set()

    async def _poll_status(self) -> None:
        for channel in CHANNELS:
            reply = await self._send(_Request("status", "STAT?", (channel,)))
            if isinstance(reply, es2.ChannelStatus):
                self.latest[channel] = _reading(reply, self.clock(), reply.target_ma)
                self._compare_target(channel, reply.target_ma)
        now = self.clock()
        self.commands.observe(self.latest, now)
        for line in self.commands.expire_unconfirmed(now, self.device_id):
            self._report(line)

    def _compare_target(self, channel: int, held_ma: float | None) -> None:
        """Report, once per value, a target amplitude the console did not write."""
        wrote = self._written_ma.get(channel)
        if held_ma is None or wrote is None or abs(held_ma - wrote) < 1e-6:
            self._mismatch_seen.pop(channel, None)
            return
        if self._mismatch_seen.get(channel) != held_ma:
            self._mismatch_seen[channel] = held_ma
            self.setpoint_mismatches += 1
            self._report(
                f"{self.device_id}: channel {channel} holds target {held_ma:g} mA, "
                f"but the console wrote {wrote:g} mA"
            )

    def _drop_queue(self) -> None:
        """Forget queued requests (link lost or unit rebooted); their records end `lost`."""
        self._queue.clear()
        for record in self.commands.values():
            if record.open and record.op != "stop":
                record.state = "lost"

    async def _send(self, request: _Request) -> es2.Message:
        """One request: send, wait 50 ms, repeat the same frame at most twice (ICD)."""
        writer = self._writer
        if writer is None:
            raise DeviceUnreachable(f"{self.device_id}: not connected")
        seq = self._seq.next()
        frame = es2.encode(seq, request.verb, *request.args)
        loop = asyncio.get_running_loop()
        for _ in range(es2.MAX_SENDS):
            future: asyncio.Future[es2.Message] = loop.create_future()
            self._pending = (seq, future)
            try:
                writer.write(frame)
                async with asyncio.timeout(es2.REPLY_TIMEOUT_S):
                    return await future
            except TimeoutError:
                continue
            except OSError as exc:
                raise DeviceUnreachable(f"{self.device_id}: write failed: {exc}") from exc
            finally:
                self._pending = None
        raise DeviceUnreachable(
            f"{self.device_id}: no reply to {request.verb} after {es2.MAX_SENDS} sends"
        )

    async def _send_expect_ack(self, request: _Request) -> None:
        reply = await self._send(request)
        if isinstance(reply, es2.Nak):
            if request.record is not None:
                self.commands.refuse(request.record, reply.code, f"NAK,{reply.code}")
            raise DeviceRejected(f"{self.device_id}: {request.label} refused: NAK,{reply.code}")
        if request.record is not None:
            self.commands.acknowledge(request.record, self.clock())
        if request.verb == "AMP":
            self._written_ma[int(request.args[0])] = float(request.args[1])

    async def _send_stop(self, channel: int) -> None:
        """STOP (the ICD: ACK in every state). Any reply counts as taken; a NAK is reported."""
        request = self._tracked(_Request("stop", "STOP", (channel,)))
        reply = await self._send(request)
        assert request.record is not None
        if isinstance(reply, es2.Nak):
            self.commands.refuse(request.record, reply.code, f"NAK,{reply.code}")
            self._report(f"{self.device_id}: STOP,{channel} answered NAK,{reply.code}")
        else:
            self.commands.acknowledge(request.record, self.clock())

    async def _send_checked(self, request: _Request) -> None:
        """A write whose NAK is reported but does not drop the link."""
        try:
            await self._send_expect_ack(request)
        except DeviceRejected as exc:
            self._report(str(exc))

    def _fail_pending(self, exc: Exception) -> None:
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(exc)


def _reading(status: es2.ChannelStatus, now: float, target: float | None) -> StimChannelReading:
    return StimChannelReading(
        channel=status.channel,
        received_mono_s=now,
        state=status.state,
        target_ma=target,
        measured_ma=status.measured_ma,
        impedance_ohm=status.impedance_ohm,
        faults=status.faults,
    )
