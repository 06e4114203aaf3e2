"""A driver for any MQTT therapy unit described by a `mqtt_generic` profile (aiomqtt).

The same I/O discipline as the dedicated CX-3 driver, with every topic, field and word taken
from the profile through `protocols/mqtt_map.py`. One I/O task owns the broker connection
(clean session, reconnect with backoff, resubscribe). A reader dispatches status, telemetry,
replies and events; a writer publishes in order of urgency: a pending stop, the watchdog
setting after the unit came online or rebooted, queued commands, then a heartbeat if the
core asked. A stop stays pending until the unit answered ok to a stop published after the
newest `request_stop()`; it is published again with a new id after every reconnect, when the
unit comes back, and after each unanswered retry period, so no repeat cache can answer it.
Other commands asked for while the broker or the unit was away are dropped, never replayed.
Each command is tracked (`drivers/tracking.py`): requested, acknowledged by its reply,
confirmed when telemetry shows its effect.
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
from sessionconsole.drivers.tracking import CommandRecord, CommandTracker, Confirm, SetpointWatch
from sessionconsole.model.combination import Cx3Reading
from sessionconsole.model.mqtt_map import ConsoleOp, Electrode, GenericMqttProfile, Output
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import StimulationSettings
from sessionconsole.protocols import mqtt_map
from sessionconsole.protocols.mqtt_map import ArgValue, MqttMapError

log = logging.getLogger(__name__)

STOP_RETRY_S = 0.5  # an unanswered stop is published again (new id) this often
SERVE_TICK_S = 0.05
SETPOINT_TOLERANCE = 0.005  # W/cm² or mA: a setpoint read back within this is the one sent
# A stop is confirmed when no state runs and the measured outputs are at most these: a stuck
# relay keeps emitting under an IDLE state, and only the measured values show it.
STOPPED_INTENSITY_W_CM2 = 0.05
STOPPED_AMPLITUDE_MA = 0.5
IDENTITY_TOLERANCE = 0.05  # ERA (cm²) and BNR reported by the head against the profile


def restart_safe_first_id(wall_clock: Callable[[], float] = time.time) -> int:
    """The first command id of a run: wall-clock milliseconds times 1000.

    A unit answers a remembered (id, op, args) from memory without executing it, so a
    restarted console must never reuse an id of its previous run: a new run starts above any
    id the last one reached unless it sent over 1000 commands per millisecond of its life.
    """
    return int(wall_clock() * 1000.0) * 1000


@dataclass(frozen=True, slots=True)
class _Queued:
    """A command waiting for the writer."""

    op: ConsoleOp
    settings: dict[str, ArgValue]
    confirm: Confirm | None


class GenericMqttDriver(DriverLifecycle):
    """Drives one profile-described MQTT unit; see the module docstring for the discipline."""

    def __init__(
        self,
        device_id: str,
        profile: GenericMqttProfile,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str, str], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(device_id, on_error)
        self.profile = profile
        self.clock = clock
        self.messages = mqtt_map.MessageMap(profile)
        self.topics = {
            name: profile.topic(name)
            for name in ("status", "telemetry", "command", "reply", "event", "heartbeat")
            if getattr(profile.topics, name) is not None
        }
        self.latest: Cx3Reading | None = None
        self.status: mqtt_map.Status | None = None
        self.device_online = False
        self.boot_changes = 0
        self.events: deque[tuple[float, mqtt_map.Event]] = deque(maxlen=256)
        self.commands = CommandTracker(first_id=restart_safe_first_id(wall_clock))
        self.bad_payloads = 0
        self.foreign_replies = 0
        self.heartbeats_sent = 0
        self.stops_acknowledged = 0
        self._boot: int | None = None
        self._stop_wanted = True  # the first command once the unit is reached is a stop
        self._stop_ids: set[int] = set()  # stops published since the newest request_stop()
        self._sent_since_stop = True  # a command was published after the newest stop
        self._setpoints = SetpointWatch(tolerance=SETPOINT_TOLERANCE)
        self._stop_sent_mono_s: float | None = None  # None: publish one now
        self._stop_requested_mono_s = clock()
        self._hold_stop_for_reading = False  # connect_and_stop reads the state first
        self._watchdog_due = False
        self._heartbeat_counter = 0
        self._queue: deque[_Queued] = deque()
        self._arrived = asyncio.Event()  # set on every inbound message

    # ---- requests from the core loop (never block) ----

    def request_stop(self) -> None:
        """Stop every output at once, ahead of anything queued.

        Kept pending, across lost links and reconnects, until the unit answered ok.
        """
        self._stop_wanted = True
        if self._sent_since_stop:
            # A command went out after the stops in flight (maybe a start): send a new one.
            # Otherwise they stand: a stop asked for every tick (a lock-out) must not
            # discard their oks.
            self._stop_ids.clear()
            self._stop_sent_mono_s = None
        self._stop_requested_mono_s = self.clock()
        self._stop_taken.clear()
        self._heartbeat_pending = False  # a heartbeat asked for before the trip must not follow
        self._queue = deque(q for q in self._queue if q.op != "start")
        self._wake.set()

    @property
    def stop_pending(self) -> bool:
        """A stop was asked for and the unit has not yet acknowledged it."""
        return self._stop_wanted

    def request_configure_us(self, settings: UltrasoundSettings) -> None:
        """Configure the stopped ultrasound output; confirmed when its setpoint reads back."""
        wanted = settings.intensity_w_cm2
        self._put(
            "configure_us",
            mqtt_map.configure_us_settings(settings),
            lambda r: abs(r.ultrasound.intensity_setpoint_w_cm2 - wanted) <= SETPOINT_TOLERANCE,
        )

    def request_configure_stim(
        self, settings: StimulationSettings, electrode: Electrode = "PADS"
    ) -> None:
        """Configure the stopped stimulation channel; `US_HEAD` is combination mode."""
        mode = settings.mode
        self._put(
            "configure_stim",
            mqtt_map.configure_stim_settings(settings, electrode),
            lambda r: r.stimulation.mode == mode,
        )

    def request_intensity(self, intensity_w_cm2: float) -> None:
        """A new ultrasound intensity setpoint (the unit ramps)."""
        wanted = float(intensity_w_cm2)
        self._put(
            "set_intensity",
            {"intensity_w_cm2": wanted},
            lambda r: abs(r.ultrasound.intensity_setpoint_w_cm2 - wanted) <= SETPOINT_TOLERANCE,
        )

    def request_amplitude(self, amplitude_ma: float) -> None:
        """A new stimulation peak amplitude (the unit ramps)."""
        wanted = float(amplitude_ma)
        self._put(
            "set_amplitude",
            {"amplitude_ma": wanted},
            lambda r: abs(r.stimulation.amplitude_setpoint_ma - wanted) <= SETPOINT_TOLERANCE,
        )

    def request_start(self, output: Output) -> None:
        """Start "us", "stim" or "both"; confirmed when telemetry shows it running."""
        self._put("start", mqtt_map.output_settings(output), _runs(output))

    def request_reset_fault(self, output: Output) -> None:
        """Clear latched faults of an output (only after an operator's acknowledgement)."""
        self._put("reset_fault", mqtt_map.output_settings(output), _not_faulted(output))

    def request_watchdog(self, timeout_ms: int) -> None:
        """Set the unit's watchdog (the driver sets the profile's value on every connect)."""
        self._put("set_watchdog", {"timeout_ms": timeout_ms}, None)

    def _put(self, op: ConsoleOp, settings: dict[str, ArgValue], confirm: Confirm | None) -> None:
        if self.profile.commands.op(op) is None:
            # Called from the controller's tick: never raise. Recorded as refused, reported.
            reason = f"profile {self.profile.name!r} maps no {op}"
            record = self.commands.request(op, dict(settings), self.clock())
            self.commands.refuse(record, "not_mapped", reason)
            self._report(f"{self.device_id}: {op} not sent: {reason}")
            return
        self._queue.append(_Queued(op, settings, confirm))
        self._wake.set()

    # ---- lifecycle ----

    async def _release(self) -> None:
        """Close the transport (called by close())."""
        self.connected = False

    async def connect_and_stop(self, timeout_s: float = 3.0) -> tuple[Cx3Reading, Cx3Reading]:
        """At controller start: connect, read the state, stop every output, read again.

        Waits for an online status and one telemetry message, then sends the stop and waits
        for its ok and a later reading. Returns the readings before and after the stop. On
        failure the I/O task keeps running and the stop stays pending, so it is the first
        command the unit gets once reached. Raises DeviceUnreachable or WrongDevice.
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

        No command, heartbeat or watchdog: the unit may be in use by a console elsewhere.
        Raises DeviceUnreachable naming what was missing, or WrongDevice.
        """
        link = self.profile.link
        client = client_for(link, "probe", self.device_id)
        where = f"on broker {link.host}:{link.port}"
        try:
            async with client:
                await client.subscribe(self.topics["status"], qos=self.profile.qos.status)
                await client.subscribe(self.topics["telemetry"], qos=self.profile.qos.telemetry)
                async with asyncio.timeout(timeout_s):
                    async for message in client.messages:
                        self._dispatch(str(message.topic), _payload_bytes(message.payload))
                        status = self.status
                        if status is not None and (not status.online or self.latest is not None):
                            break
        except TimeoutError as exc:
            missing = "no retained status" if self.status is None else "no telemetry"
            hint = (
                "check the serial and topic templates in the profile"
                if self.status is None
                else "the unit is online but silent"
            )
            raise DeviceUnreachable(
                f"{self.device_id}: {missing} on {self.topics['status']} {where} within "
                f"{timeout_s:.1f} s; {hint}"
            ) from exc
        except aiomqtt.MqttError as exc:
            raise DeviceUnreachable(
                f"{self.device_id}: broker {link.host}:{link.port} refused the connection: {exc}"
            ) from exc
        if self.status is not None and not self.status.online:
            raise DeviceUnreachable(
                f"{self.device_id}: {self.profile.serial} is offline: {self.topics['status']} "
                "holds its last will (unit off, or it lost the broker)"
            )
        assert self.latest is not None
        self._check_identity(self.latest)
        return self.latest

    def _unreached(self, what: str) -> str:
        link = self.profile.link
        return (
            f"{self.device_id}: {what} from {self.profile.serial} ({self.topics['status']}) "
            f"on broker {link.host}:{link.port} (connected: {self.connected})"
        )

    def _check_identity(self, reading: Cx3Reading) -> None:
        expected = self.profile.status.model_value
        status = self.status
        if expected is not None and status is not None and status.model != expected:
            raise WrongDevice(
                f"{self.device_id}: {self.topics['status']} says model {status.model!r}, "
                f"not {expected!r} as profile {self.profile.name!r} says"
            )
        us = reading.ultrasound
        for name, reported, profiled in (
            ("ERA", us.era_cm2, self.profile.era_cm2),
            ("BNR", us.bnr, self.profile.bnr),
        ):
            if abs(reported - profiled) > IDENTITY_TOLERANCE:
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
        self._stop_sent_mono_s = None
        self._drop_pending()

    def _drop_pending(self) -> None:
        """Forget queued commands and heartbeats; commands in flight will never be answered."""
        self._queue.clear()
        self._heartbeat_pending = False
        self.commands.lose_open()

    async def _session(self) -> None:
        link = self.profile.link
        client = client_for(link, "console", self.device_id)
        qos = self.profile.qos
        async with client:
            for name in ("status", "reply", "event", "telemetry"):
                if name in self.topics:
                    await client.subscribe(self.topics[name], qos=getattr(qos, name))
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
            sent = self._stop_sent_mono_s
            stop_due = sent is None or now - sent >= STOP_RETRY_S
            if self._stop_wanted and stop_due and not self._hold_stop_for_reading:
                record = await self._publish(
                    client, "stop", mqtt_map.output_settings("both"), _runs_nothing
                )
                self._stop_ids.add(record.id)
                self._stop_sent_mono_s = now
                self._sent_since_stop = False
                continue
            if self._watchdog_due:
                self._watchdog_due = False
                settings: dict[str, ArgValue] = {"timeout_ms": self.profile.watchdog_ms}
                await self._publish(client, "set_watchdog", settings, None)
                continue
            if self._queue:
                queued = self._queue.popleft()
                self._sent_since_stop = True
                await self._publish(client, queued.op, queued.settings, queued.confirm)
                continue
            if self._heartbeat_pending:
                self._heartbeat_pending = False
                self._heartbeat_counter += 1
                payload = self.messages.encode_heartbeat(self._heartbeat_counter)
                await client.publish(
                    self.topics["heartbeat"], payload, qos=self.profile.qos.heartbeat
                )
                self.heartbeats_sent += 1
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SERVE_TICK_S):
                    await self._wake.wait()

    async def _publish(
        self,
        client: aiomqtt.Client,
        op: ConsoleOp,
        settings: dict[str, ArgValue],
        confirm: Confirm | None,
    ) -> CommandRecord:
        record = self.commands.request(op, dict(settings), self.clock(), confirm)
        try:
            payload = self.messages.encode_command(record.id, op, settings)
        except MqttMapError as exc:  # a setting the profile cannot express: never sent
            self.commands.refuse(record, "UNMAPPED", str(exc))
            self._report(f"{self.device_id}: {op} not sent: {exc}")
            return record
        await client.publish(self.topics["command"], payload, qos=self.profile.qos.command)
        return record

    def _expire_commands(self, now: float) -> None:
        for record in self.commands.expire(now):
            if record.state == "timed_out" and record.op != "stop":
                # (an unanswered stop is simply published again)
                self._report(
                    f"{self.device_id}: {record.op} (id {record.id}) got no reply from "
                    f"{self.profile.serial} within {self.commands.ack_timeout_s:.1f} s"
                )
            elif record.state == "unconfirmed" and self._unconfirmed_matters(record):
                self._report(
                    f"{self.device_id}: {record.op} (id {record.id}) was acknowledged by "
                    f"{self.profile.serial} but its telemetry never showed it within "
                    f"{self.commands.confirm_timeout_s:.1f} s"
                )
            else:
                log.info("%s: %s (id %d) %s", self.device_id, record.op, record.id, record.state)

    def _unconfirmed_matters(self, record: CommandRecord) -> bool:
        """A stop whose effect never shows is reported; so is a start no later stop explains."""
        if record.op == "stop":
            return True
        return record.op == "start" and record.requested_mono_s > self._stop_requested_mono_s

    # ---- inbound ----

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._dispatch(str(message.topic), _payload_bytes(message.payload))

    def _dispatch(self, topic: str, payload: bytes) -> None:
        now = self.clock()
        topics = self.topics
        try:
            if topic == topics["telemetry"]:
                reading = self.messages.parse_telemetry(payload, now)
                self.latest = reading
                self.commands.observe(reading, now)
                self._compare_setpoints(reading)
            elif topic == topics["reply"]:
                self._on_reply(self.messages.parse_reply(payload), now)
            elif topic == topics["status"]:
                self._on_status(self.messages.parse_status(payload))
            elif topic == topics.get("event"):
                self._on_event(self.messages.parse_event(payload), now)
        except MqttMapError as exc:
            self.bad_payloads += 1
            log.warning("%s: unusable message on %s: %s", self.device_id, topic, exc)
        self._arrived.set()

    def _on_reply(self, reply: mqtt_map.Reply, now: float) -> None:
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
            if self._stop_wanted and record.id in self._stop_ids:
                self._stop_wanted = False
                self._stop_ids.clear()
                self._stop_sent_mono_s = None  # the next stop goes at once, not at a retry time
                self.stops_acknowledged += 1
                self._stop_taken.set()
            return
        self.commands.refuse(record, reply.error or "refused", reply.detail)
        self._report(
            f"{self.device_id}: {record.op} refused by {self.profile.serial}: "
            f"{reply.error}: {reply.detail}"
        )

    def _on_status(self, status: mqtt_map.Status) -> None:
        self.status = status
        was_online, self.device_online = self.device_online, status.online
        if not status.online:
            if was_online:
                # Its last will: the unit stopped its outputs; commands in flight are lost.
                self._drop_pending()
                self._report(
                    f"{self.device_id}: {self.profile.serial} went offline (last will on "
                    f"{self.topics['status']}); the unit has stopped its outputs"
                )
            return
        if status.boot is not None:
            if self._boot is not None and status.boot != self._boot:
                self._rebooted(f"boot {self._boot} → {status.boot}")
            self._boot = status.boot
        if not was_online:
            self._came_back()

    def _on_event(self, event: mqtt_map.Event, now: float) -> None:
        self.events.append((now, event))
        if event.event == "BOOT" and self.profile.boot.status_field is None:
            self._rebooted("boot event")
            self._came_back()

    def _rebooted(self, how: str) -> None:
        self.boot_changes += 1
        self._setpoints.forget()  # back at boot values, which this console did not write
        self._drop_pending()
        self._came_back()  # also when no offline status came between: the watchdog is lost
        self._report(
            f"{self.device_id}: {self.profile.serial} rebooted ({how}): its configuration is lost"
        )

    @property
    def setpoint_mismatches(self) -> int:
        """Setpoints found held that this console did not write (each value counted once)."""
        return self._setpoints.mismatches

    def _remember_written(self, op: str, args: dict[str, object]) -> None:
        """The setpoints the unit accepted from this console (compared with telemetry)."""
        intensity = args.get("intensity_w_cm2") if op in ("configure_us", "set_intensity") else None
        if isinstance(intensity, int | float):
            self._setpoints.wrote("intensity_w_cm2", float(intensity))
        amplitude = args.get("amplitude_ma") if op == "set_amplitude" else None
        if isinstance(amplitude, int | float):
            self._setpoints.wrote("amplitude_ma", float(amplitude))

    def _compare_setpoints(self, reading: Cx3Reading) -> None:
        """Report, once per value, a setpoint the unit holds that this console did not write."""
        held = {
            "intensity_w_cm2": reading.ultrasound.intensity_setpoint_w_cm2,
            "amplitude_ma": reading.stimulation.amplitude_setpoint_ma,
        }
        for key, value, wrote in self._setpoints.check(held):
            self._report(
                f"{self.device_id}: {self.profile.serial} holds {key} {value:g}, "
                f"but the console wrote {wrote:g}"
            )

    def _came_back(self) -> None:
        """The unit is (again) online: set its watchdog, and resend a pending stop now."""
        self._watchdog_due = True  # the unit forgets it on reboot
        self._stop_sent_mono_s = None  # a stop published while it was away never arrives
        self._wake.set()


def _runs(output: Output) -> Confirm:
    def shows(reading: Cx3Reading) -> bool:
        us, stim = reading.ultrasound.running, reading.stimulation.running
        return {"us": us, "stim": stim, "both": us and stim}[output]

    return shows


def _runs_nothing(reading: Cx3Reading) -> bool:
    return (
        not reading.running
        and reading.ultrasound.intensity_measured_w_cm2 <= STOPPED_INTENSITY_W_CM2
        and reading.stimulation.amplitude_measured_ma <= STOPPED_AMPLITUDE_MA
    )


def _not_faulted(output: Output) -> Confirm:
    def shows(reading: Cx3Reading) -> bool:
        us = reading.ultrasound.state != "FAULT"
        stim = reading.stimulation.state != "FAULT"
        return {"us": us, "stim": stim, "both": us and stim}[output]

    return shows


def _payload_bytes(payload: object) -> bytes:
    """An aiomqtt payload as bytes."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
