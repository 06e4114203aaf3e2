"""Keeps one CX-3 unit on a real MQTT broker with aiomqtt: topics, will, link impairments.

aiomqtt does not reconnect by itself, so `run()` loops on `MqttError` with backoff. Each
connection subscribes to `cmd` and `heartbeat`, then publishes the retained status (QoS 1).
Losing the connection, for any reason, stops the unit's outputs at once. Outgoing messages
go through one FIFO publisher task so `delay` keeps their order; while offline or in `drop`
they are discarded (clean session: nothing is delivered later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from .commands import handle_command
from .link import CX3LinkControl
from .model import CX3Unit

# paho leaves Nagle on: each small reply would wait ~40 ms for a delayed ACK.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
KEEPALIVE_S = 2
OFFLINE = json.dumps({"online": False}).encode()
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.05, 2.0
CLOSE_TIMEOUT_S = 0.5
Clock = Callable[[], float]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Broker:
    """Where the broker listens, from `--broker mqtt://HOST:PORT`."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The broker as `mqtt://host:port`."""
        return f"mqtt://{self.host}:{self.port}"


def parse_broker_url(text: str) -> Broker:
    """Parse `mqtt://HOST[:PORT]` (port 1883 by default); raises ValueError."""
    parts = urlsplit(text)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"expected mqtt://HOST:PORT, got {text!r}")
    return Broker(parts.hostname, parts.port or 1883)


@dataclass(frozen=True)
class Outgoing:
    """One message waiting for the publisher."""

    due: float
    topic: str
    payload: bytes
    qos: int


def payload_bytes(payload: object) -> bytes:
    """An aiomqtt payload as bytes."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


class MqttUnitLink:
    """One unit's broker connection, kept up until `close()`."""

    def __init__(
        self, unit: CX3Unit, broker: Broker, root: str, link: CX3LinkControl, clock: Clock
    ) -> None:
        """Serve `unit` under `<root>/<serial>/` on `broker`; `link` holds impairments."""
        self.unit, self.broker, self.link, self.clock = unit, broker, link, clock
        self.base = f"{root}/{unit.serial}"
        self.online = False
        self.connected_once = asyncio.Event()
        self.counters = {"connects": 0, "sent": 0, "discarded_out": 0, "discarded_in": 0}
        self._client: aiomqtt.Client | None = None
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._mode_changed = asyncio.Event()
        self._closing = asyncio.Event()

    def topic(self, name: str) -> str:
        """`<root>/<serial>/<name>`."""
        return f"{self.base}/{name}"

    # ---- outgoing -----------------------------------------------------------------------
    def send(self, subtopic: str, message: dict[str, Any], qos: int) -> None:
        """Queue a message for publishing, or discard it while offline or dropped."""
        if not self.online or self.link.dropped:
            self.counters["discarded_out"] += 1
            return
        payload = json.dumps(message).encode()
        if self.link.should_corrupt():
            payload = payload[: len(payload) // 2]  # a strict prefix of an object: never JSON
        due = self.clock() + self.link.delay_s
        self._queue.put_nowait(Outgoing(due, self.topic(subtopic), payload, qos))

    def flush_events(self) -> None:
        """Publish the unit's queued events (QoS 1)."""
        for event in self.unit.take_events():
            self.send("event", event, 1)

    def send_telemetry(self, now: float) -> None:
        """Publish one telemetry message (QoS 0) if online."""
        if self.online:
            self.send("telemetry", self.unit.telemetry(now), 0)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        """Publish queued messages in order, each no earlier than its due time."""
        while True:
            item = await self._queue.get()
            wait = item.due - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.link.dropped:
                continue
            await client.publish(item.topic, item.payload, qos=item.qos)
            self.counters["sent"] += 1

    # ---- incoming -----------------------------------------------------------------------
    async def _read_loop(self, client: aiomqtt.Client) -> None:
        """Act on commands and heartbeats until the connection breaks."""
        async for message in client.messages:
            if self.link.dropped:
                self.counters["discarded_in"] += 1
                continue
            payload = payload_bytes(message.payload)
            now = self.clock()
            try:
                if message.topic.matches(self.topic("cmd")):
                    self.send("reply", handle_command(self.unit, payload, now), 1)
                    self.flush_events()
                elif message.topic.matches(self.topic("heartbeat")):
                    self.unit.heartbeat(payload, now)
            except Exception:  # a simulator bug must not end the connection
                log.exception("%s: message on %s failed: %r", self.base, message.topic, payload)

    # ---- connection ---------------------------------------------------------------------
    async def run(self) -> None:
        """Stay connected (reconnecting with backoff) until `close()`."""
        backoff = BACKOFF_MIN_S
        while not self._closing.is_set():
            if self.link.disconnected:
                self._mode_changed.clear()
                await self._wait_any(self._mode_changed, self._closing)
                continue
            try:
                await self._session()
                backoff = BACKOFF_MIN_S
            except aiomqtt.MqttError as exc:
                log.warning("%s: broker connection: %s", self.base, exc)
                self._mode_changed.clear()
                await self._wait_any(self._mode_changed, self._closing, within=backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)

    async def _session(self) -> None:
        """One connection: subscribe, announce, serve until it breaks or we close."""
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=f"cx3-sim-{self.base}",
            clean_session=True,
            keepalive=KEEPALIVE_S,
            will=aiomqtt.Will(self.topic("status"), OFFLINE, qos=1, retain=True),
            timeout=2.0,
            socket_options=NO_DELAY,
        )
        served = False
        try:
            async with client:
                self._client, served = client, True
                await self._serve(client)
        finally:
            was_online = self.online
            self._client = None
            self.online = False
            if served and was_online:
                self.unit.connection_lost(self.clock())

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Subscribe, publish the retained status (and BOOT once per boot), then serve."""
        await client.subscribe(self.topic("cmd"), qos=1)
        await client.subscribe(self.topic("heartbeat"), qos=0)
        status = json.dumps(self.unit.status()).encode()
        await client.publish(self.topic("status"), status, qos=1, retain=True)
        self.counters["connects"] += 1
        self._queue = asyncio.Queue()
        self.online = True
        if not self.unit.boot_announced:
            self.unit.boot_announced = True
            self.send("event", {"event": "BOOT", "output": None, "t_ms": self.unit.t_ms()}, 1)
        self.connected_once.set()
        log.info("%s: connected to %s (boot %d)", self.base, self.broker.url, self.unit.boot)
        tasks = [
            asyncio.create_task(self._publish_loop(client)),
            asyncio.create_task(self._read_loop(client)),
        ]
        closing = asyncio.create_task(self._closing.wait())
        try:
            await asyncio.wait([*tasks, closing], return_when=asyncio.FIRST_COMPLETED)
            if closing.done():
                self.online = False
                with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
                    await asyncio.wait_for(
                        client.publish(self.topic("status"), OFFLINE, qos=1, retain=True),
                        CLOSE_TIMEOUT_S,
                    )
            for task in tasks:
                if task.done():
                    task.result()  # re-raise the MqttError that ended the connection
        finally:
            for pending in (*tasks, closing):
                pending.cancel()
            await asyncio.gather(*tasks, closing, return_exceptions=True)

    def mode_changed(self) -> None:
        """The test port changed the link mode: drop or restore the connection."""
        if self.link.disconnected:
            self.abort()
        self._mode_changed.set()

    def abort(self) -> None:
        """Break the connection without DISCONNECT, so the broker publishes the last will.

        The outputs stop first: the ICD stops them "at once" on losing the broker, and a
        watcher that sees the will must never find them still running.
        """
        if self.online:
            self.online = False
            self.unit.connection_lost(self.clock())
        client = self._client
        if client is None:
            return
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """SIGTERM: publish retained `{"online": false}`, then disconnect cleanly."""
        self._closing.set()

    @staticmethod
    async def _wait_any(*events: asyncio.Event, within: float | None = None) -> None:
        """Wait until any of `events` is set (or the timeout passes)."""
        waiters = [asyncio.create_task(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
