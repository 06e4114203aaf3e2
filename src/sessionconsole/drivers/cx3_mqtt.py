"""CX-3 combination-unit driver over MQTT (aiomqtt), following ICD CX-3 v2.

One I/O task owns the broker connection (clean session, reconnect with backoff, resubscribe).
Within a connection a reader dispatches status, telemetry, replies and events, and a writer
publishes in order of urgency: a pending stop, the watchdog setting after the device came
online, queued commands, then a heartbeat if the core asked. A stop stays pending until the
device answered ok to the newest stop id; it is published again with a new id after every
reconnect, when the device comes back online, and after each unanswered retry period. Other
commands asked for while the broker or the device was away are dropped, never replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from sessionconsole.drivers.base import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    DriverLifecycle,
)
from sessionconsole.drivers.errors import DeviceUnreachable, WrongDevice
from sessionconsole.drivers.mqtt_options import client_for
from sessionconsole.drivers.tracking import CommandTracker, Confirm, SetpointWatch
from sessionconsole.model.combination import Cx3Profile, Cx3Reading
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import StimulationSettings
from sessionconsole.protocols import cx3

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 1.0  # a command unanswered this long counts as timed out
STOP_RETRY_S = 0.5  # an unanswered stop is published again (new id) this often
SERVE_TICK_S = 0.05
COMMAND_HISTORY = 128


def _confirm(op: cx3.Op, args: dict[str, cx3.ArgValue]) -> Confirm | None:
    """How telemetry shows that an acknowledged command took effect (None: the reply ends it)."""
    output = args.get("output")
    us_part = output in ("us", "both")
    stim_part = output in ("stim", "both")
    if op == "set_intensity":
        value = float(args["intensity_w_cm2"])
        return lambda r: abs(r.ultrasound.intensity_setpoint_w_cm2 - value) < 0.005
    if op == "set_amplitude":
        value = float(args["ma"])
        return lambda r: abs(r.stimulation.amplitude_setpoint_ma - value) < 0.05
    if op == "start":
        return lambda r: (
            (not us_part or r.ultrasound.state in ("RUNNING", "SUSPENDED", "DONE"))
            and (not stim_part or r.stimulation.running)
        )
    if op == "stop":
        return lambda r: not r.ultrasound.running and not r.stimulation.running
    return None


@dataclass(frozen=True, slots=True)
class _Queued:
    """A command waiting for the writer."""

    op: cx3.Op
    args: dict[str, cx3.ArgValue]


class Cx3MqttDriver(DriverLifecycle):
    """Drives one CX-3 through a broker; see the module docstring for the I/O discipline."""

    def __init__(
        self,
        device_id: str,
        profile: Cx3Profile,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(device_id, on_error)
        self.profile = profile
        self.clock = clock
        self.topics = cx3.Topics.of(profile.link.root, profile.serial)
        self.latest: Cx3Reading | None = None
        self.status: cx3.Status | None = None
        self.device_online = False
        self.boot_changes = 0
        self.events: deque[tuple[float, cx3.Event]] = deque(maxlen=256)
        self.commands = CommandTracker(ack_timeout_s=REPLY_TIMEOUT_S)
        self._setpoints = SetpointWatch(tolerance=0.005)  # keys: telemetry setpoint names
        self.bad_payloads = 0
        self.foreign_replies = 0
        self.heartbeats_sent = 0
        self.stops_acknowledged = 0
        self._ids = cx3.RequestIds()
        self._boot: int | None = None
        self._stop_wanted = True  # the first command once the unit is reached is a stop
        self._stop_id: int | None = None  # the newest published stop; only its ok clears
        self._sent_since_stop = True  # a command was published after the newest stop
        self._stop_sent_mono_s = 0.0
        self._hold_stop_for_reading = False  # connect_and_stop reads the state first
        self._watchdog_due = False
        self._heartbeat_counter = 0
        self._queue: deque[_Queued] = deque()
        self._arrived = asyncio.Event()  # set on every inbound message

    # ---- requests from the core loop (never block) ----

    def request_stop(self) -> None:
        """Stop both outputs at once, ahead of anything queued.

        Kept pending, across lost links and reconnects, until the device answered ok.
        """
        self._stop_wanted = True
        if self._sent_since_stop:
            # A command went out after the stop in flight (maybe a start): publish a fresh one.
            # Otherwise the one in flight stands: a stop asked for every tick (a lock-out)
            # must not replace it with a new id each time, or its ok would never count.
            self._stop_id = None
        self._stop_taken.clear()
        self._heartbeat_pending = False  # a heartbeat asked for before the trip must not follow
        self._queue = deque(q for q in self._queue if q.op != "start")
        self._wake.set()

    @property
    def stop_pending(self) -> bool:
        """A stop was asked for and the device has not yet acknowledged it."""
        return self._stop_wanted

    def request_configure_us(self, settings: UltrasoundSettings) -> None:
        """Configure the stopped ultrasound output (frequency, intensity, duty, time)."""
        self._put("configure_us", cx3.configure_us_args(settings))

    def request_configure_stim(
        self, settings: StimulationSettings, electrode: cx3.Electrode = "PADS"
    ) -> None:
        """Configure the stopped stimulation channel; `US_HEAD` is combination mode."""
        self._put("configure_stim", cx3.configure_stim_args(settings, electrode))

    def request_intensity(self, intensity_w_cm2: float) -> None:
        """A new ultrasound intensity setpoint (the device ramps ≤ 0.5 W/cm² per s)."""
        self._put("set_intensity", {"intensity_w_cm2": float(intensity_w_cm2)})

    def request_amplitude(self, amplitude_ma: float) -> None:
        """A new stimulation peak amplitude (a multiple of 0.5 mA; the device ramps)."""
        self._put("set_amplitude", {"ma": float(amplitude_ma)})

    def request_start(self, output: cx3.Output) -> None:
        """Start "us", "stim" or "both" (both or neither)."""
        self._put("start", {"output": output})

    def request_reset_fault(self, output: cx3.Output) -> None:
        """Clear latched faults of an output (only after an operator's acknowledgement)."""
        self._put("reset_fault", {"output": output})

    def request_watchdog(self, timeout_ms: int) -> None:
        """Set the device watchdog (the driver sets the profile's value on every connect)."""
        self._put("set_watchdog", {"timeout_ms": timeout_ms})

    def _put(self, op: cx3.Op, args: dict[str, cx3.ArgValue]) -> None:
        self._queue.append(_Queued(op, args))
        self._wake.set()

    # ---- lifecycle ----

    async def _release(self) -> None:
        """Close the transport (called by close())."""
        self.connected = False

    async def connect_and_stop(self, timeout_s: float = 3.0) -> tuple[Cx3Reading, Cx3Reading]:
        """At controller start: connect, read the state, stop both outputs, read again.

        Waits for the retained status (device online) and one telemetry message, then sends
        the stop and waits for its ok. Returns the readings before and after the stop. On
        failure the I/O task keeps running and the stop stays pending, so it is the first
        command the unit gets once it is reached. Raises DeviceUnreachable or WrongDevice.
        """
        self._hold_stop_for_reading = True
        self.request_stop()
        self.start()
        try:
            async with asyncio.timeout(timeout_s):
                await self._until(lambda: self.device_online and self.latest is not None)
        except TimeoutError as exc:
            raise DeviceUnreachable(self._unreached("no online status and telemetry")) from exc
        finally:
            self._hold_stop_for_reading = False
            self._wake.set()
        before = self.latest
        assert before is not None
        try:
            async with asyncio.timeout(timeout_s):
                await self.wait_stop_taken()
                acked = self.clock()
                await self._until(
                    lambda: self.latest is not None and self.latest.received_mono_s > acked
                )
        except TimeoutError as exc:
            raise DeviceUnreachable(self._unreached("the stop was not acknowledged")) from exc
        after = self.latest
        assert after is not None
        self._check_identity(before)
        return before, after

    async def identify(self, timeout_s: float = 3.0) -> Cx3Reading:
        """For `devices probe`: read the retained status and one telemetry message; publish nothing.

        No command, no heartbeat, no watchdog: the unit may be in use by a console elsewhere.
        Raises a DriverError naming what was missing (no status retained: wrong serial or root;
        status offline: the unit's last will; no telemetry) or what the broker said.
        """
        link = self.profile.link
        client = client_for(link, "probe", self.device_id)
        try:
            async with client:
                await client.subscribe(self.topics.status, qos=1)
                await client.subscribe(self.topics.telemetry, qos=0)
                async with asyncio.timeout(timeout_s):
                    async for message in client.messages:
                        self._dispatch(str(message.topic), _payload_bytes(message.payload))
                        if self.status is not None and not self.status.online:
                            break
                        if self.status is not None and self.latest is not None:
                            break
        except TimeoutError as exc:
            missing = "no retained status" if self.status is None else "no telemetry"
            hint = (
                "check the serial and topic root in the profile"
                if self.status is None
                else "the unit is online but silent"
            )
            raise DeviceUnreachable(
                f"{self.device_id}: {missing} under {self.topics.base}/ on broker "
                f"{link.host}:{link.port} within {timeout_s:.1f} s; {hint}"
            ) from exc
        except aiomqtt.MqttError as exc:
            raise DeviceUnreachable(
                f"{self.device_id}: broker {link.host}:{link.port} refused the connection: {exc}"
            ) from exc
        if self.status is not None and not self.status.online:
            raise DeviceUnreachable(
                f"{self.device_id}: {self.profile.serial} is offline: {self.topics.status} holds "
                "its last will (unit off, or it lost the broker)"
            )
        assert self.latest is not None
        self._check_identity(self.latest)
        return self.latest

    def _unreached(self, what: str) -> str:
        link = self.profile.link
        return (
            f"{self.device_id}: {what} from {self.profile.serial} under {self.topics.base}/ "
            f"on broker {link.host}:{link.port} (connected: {self.connected})"
        )

    def _check_identity(self, reading: Cx3Reading) -> None:
        status = self.status
        if status is not None and status.model != cx3.MODEL:
            raise WrongDevice(
                f"{self.device_id}: {self.topics.status} says model {status.model!r}, "
                f"not {cx3.MODEL}"
            )
        us = reading.ultrasound
        for name, reported, profiled in (
            ("ERA", us.era_cm2, self.profile.era_cm2),
            ("BNR", us.bnr, self.profile.bnr),
        ):
            if abs(reported - profiled) > 0.05:
                raise WrongDevice(
                    f"{self.device_id}: the head of {self.profile.serial} reports {name} "
                    f"{reported} but the profile says {profiled}; correct the profile"
                )

    async def _until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, re-checking after every inbound message."""
        while not predicate():
            self._arrived.clear()
            await self._arrived.wait()

    # ---- the I/O task ----

    async def _run(self) -> None:
        backoff = BACKOFF_INITIAL_S
        link = self.profile.link
        while not self._closing:
            try:
                await self._session()
                backoff = BACKOFF_INITIAL_S
            except aiomqtt.MqttError as exc:
                was_connected = self.connected
                self._lost_link()
                self._report(
                    f"{self.device_id}: broker {link.host}:{link.port} "
                    f"{'connection lost' if was_connected else 'unreachable'}: {exc}"
                )
                if was_connected:
                    backoff = BACKOFF_INITIAL_S
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _release_after_failure(self) -> None:
        """The session ended with the failure: forget it as a lost link is forgotten."""
        self._lost_link()
        await self._release()

    def _lost_link(self) -> None:
        """Nothing but a stop survives a lost link: never replay a start."""
        self.connected = False
        self.device_online = False
        self._stop_id = None
        self._queue.clear()
        self._heartbeat_pending = False
        self.commands.lose_open()

    async def _session(self) -> None:
        link = self.profile.link
        client = client_for(link, "console", self.device_id)
        async with client:
            for topic, qos in (
                (self.topics.status, 1),
                (self.topics.reply, 1),
                (self.topics.event, 1),
                (self.topics.telemetry, 0),
            ):
                await client.subscribe(topic, qos=qos)
            # Asked for while the link was down: judged on stale state, the unit may have
            # rebooted. Only a pending stop survives.
            self._queue.clear()
            self._heartbeat_pending = False
            self.connected = True
            self.last_error = None
            log.info("%s: connected to broker %s:%d", self.device_id, link.host, link.port)
            reader = asyncio.create_task(self._read(client), name=f"reader-{self.device_id}")
            writer = asyncio.create_task(self._serve(client), name=f"writer-{self.device_id}")
            try:
                done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # re-raise the MqttError that ended the connection
            finally:
                for task in (reader, writer):
                    task.cancel()
                await asyncio.gather(reader, writer, return_exceptions=True)

    async def _serve(self, client: aiomqtt.Client) -> None:
        while not self._closing:
            now = self.clock()
            self._expire_commands(now)
            stop_due = self._stop_id is None or now - self._stop_sent_mono_s >= STOP_RETRY_S
            if self._stop_wanted and stop_due and not self._hold_stop_for_reading:
                self._stop_id = await self._publish(client, "stop", {"output": "both"})
                self._stop_sent_mono_s = now
                self._sent_since_stop = False
                continue
            if self._watchdog_due:
                self._watchdog_due = False
                await self._publish(
                    client, "set_watchdog", {"timeout_ms": self.profile.watchdog_ms}
                )
                continue
            if self._queue:
                queued = self._queue.popleft()
                self._sent_since_stop = True
                await self._publish(client, queued.op, queued.args)
                continue
            if self._heartbeat_pending:
                self._heartbeat_pending = False
                self._heartbeat_counter += 1
                payload = cx3.encode_heartbeat(self._heartbeat_counter)
                await client.publish(self.topics.heartbeat, payload, qos=0)
                self.heartbeats_sent += 1
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SERVE_TICK_S):
                    await self._wake.wait()

    async def _publish(
        self, client: aiomqtt.Client, op: cx3.Op, args: dict[str, cx3.ArgValue]
    ) -> int:
        command = cx3.Command(id=self._ids.next(), op=op, args=args)
        self.commands.request(op, dict(args), self.clock(), _confirm(op, args), command.id)
        await client.publish(self.topics.cmd, command.encode(), qos=1)
        return command.id

    def _expire_commands(self, now: float) -> None:
        for record in self.commands.expire(now):
            if record.op == "stop" and record.state == "timed_out":
                continue  # an unanswered stop is simply published again
            if record.state == "timed_out":
                self._report(
                    f"{self.device_id}: {record.op} (id {record.id}) got no reply from "
                    f"{self.profile.serial} within {REPLY_TIMEOUT_S:.1f} s"
                )
            else:
                self._report(
                    f"{self.device_id}: {record.op} (id {record.id}) was acknowledged but no "
                    f"telemetry showed it within {self.commands.confirm_timeout_s:.1f} s"
                )

    # ---- inbound ----

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._dispatch(str(message.topic), _payload_bytes(message.payload))

    def _dispatch(self, topic: str, payload: bytes) -> None:
        now = self.clock()
        try:
            if topic == self.topics.telemetry:
                self.latest = cx3.reading_from(cx3.parse_telemetry(payload), now)
                self.commands.observe(self.latest, now)
                self._compare_setpoints(self.latest)
            elif topic == self.topics.reply:
                self._on_reply(cx3.parse_reply(payload), now)
            elif topic == self.topics.status:
                self._on_status(cx3.parse_status(payload))
            elif topic == self.topics.event:
                self.events.append((now, cx3.parse_event(payload)))
        except cx3.Cx3PayloadError as exc:
            self.bad_payloads += 1
            log.warning("%s: unusable message from %s: %s", self.device_id, self.topics.base, exc)
        self._arrived.set()

    def _on_reply(self, reply: cx3.Reply, now: float) -> None:
        record = self.commands.get(reply.id) if reply.id is not None else None
        if record is None:
            if reply.ok:
                self.foreign_replies += 1  # another console's, or one we have forgotten
            else:
                self._report(
                    f"{self.device_id}: {self.profile.serial} refused a command "
                    f"(id {reply.id}): {reply.error}: {reply.detail}"
                )
            return
        if reply.ok:
            self.commands.acknowledge(record, now)
            self._remember_written(record.op, record.args)
            if record.id == self._stop_id:
                self._stop_wanted = False
                self._stop_id = None
                self.stops_acknowledged += 1
                self._stop_taken.set()
            return
        self.commands.refuse(record, reply.error or "REFUSED", reply.detail)
        self._report(
            f"{self.device_id}: {record.op} refused by {self.profile.serial}: "
            f"{reply.error}: {reply.detail}"
        )

    @property
    def setpoint_mismatches(self) -> int:
        """Setpoints found held that this console did not write (each value counted once)."""
        return self._setpoints.mismatches

    def _remember_written(self, op: str, args: dict[str, object]) -> None:
        """The setpoints the device accepted from this console (compared with telemetry)."""
        value = args.get("intensity_w_cm2") if op in ("configure_us", "set_intensity") else None
        if isinstance(value, int | float):
            self._setpoints.wrote("intensity_w_cm2", float(value))
        amplitude = args.get("ma") if op == "set_amplitude" else None
        if isinstance(amplitude, int | float):
            self._setpoints.wrote("ma", float(amplitude))

    def _compare_setpoints(self, reading: Cx3Reading) -> None:
        """Report, once per value, a setpoint the unit holds that this console did not write."""
        held = {
            "intensity_w_cm2": reading.ultrasound.intensity_setpoint_w_cm2,
            "ma": reading.stimulation.amplitude_setpoint_ma,
        }
        for key, value, wrote in self._setpoints.check(held):
            what = "intensity" if key == "intensity_w_cm2" else "amplitude"
            unit = "W/cm²" if key == "intensity_w_cm2" else "mA"
            self._report(
                f"{self.device_id}: {self.profile.serial} holds {what} {value:g} {unit}, "
                f"but the console wrote {wrote:g} {unit}"
            )

    def _on_status(self, status: cx3.Status) -> None:
        self.status = status
        was_online, self.device_online = self.device_online, status.online
        if not status.online:
            if was_online:
                # Its last will: the device stopped its outputs; commands in flight are lost.
                self._queue.clear()
                self._heartbeat_pending = False
                self.commands.lose_open()
                self._report(
                    f"{self.device_id}: {self.profile.serial} went offline (last will on "
                    f"{self.topics.status}); the device has stopped its outputs"
                )
            return
        if self._boot is not None and status.boot != self._boot:
            self.boot_changes += 1
            self._setpoints.forget()  # back at boot values, which this console did not write
            self._watchdog_due = True  # lost at boot, even with no offline status between
            self._wake.set()
            self._report(
                f"{self.device_id}: {self.profile.serial} rebooted (boot {self._boot} → "
                f"{status.boot}): its configuration is lost"
            )
        self._boot = status.boot
        if not was_online:
            self._watchdog_due = True  # the device forgets it on reboot
            self._stop_id = None  # a stop published while it was away never arrives
            self._wake.set()


def _payload_bytes(payload: object) -> bytes:
    """An aiomqtt payload as bytes."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
