"""One running ES-2: model, its byte-stream ports, link impairments and its own ticker.

Requests are answered on the port they came in on; frames the device sends on its own (seq 0)
go to every port. The ticker sleeps until the model's next deadline (watchdog expiry,
telemetry, a 20 ms step while anything moves, else 0.5 s) or until a request wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

from ..link import LinkControl
from ..readyline import hostport
from .commands import respond
from .frames import STAR, START, encode
from .model import ES2Model
from .serial_io import Port, PtyPort, TcpPort

Clock = Callable[[], float]


class ES2Unit:
    """A simulated ES-2 unit served on a pty and/or TCP."""

    def __init__(self, index: int, seed: int, clock: Clock) -> None:
        """Power the unit on (no ports yet)."""
        self.index = index
        self.clock = clock
        self.model = ES2Model(serial=f"ES2-{index + 1:06d}", seed=seed + index, now=clock())
        self.link = LinkControl(rng=random.Random(seed + index))
        self.ports: list[Port] = []
        self.endpoints: dict[str, Any] = {}
        self.wake = asyncio.Event()
        self.ticker: asyncio.Task[None] | None = None

    async def open(self, pty: bool, tcp: tuple[str, int] | None) -> dict[str, Any]:
        """Open the requested endpoints, start ticking; return the READY endpoints."""
        if pty:
            pty_port = PtyPort(self.receive)
            self.ports.append(pty_port)
            self.endpoints["serial_pty"] = pty_port.path
        if tcp is not None:
            tcp_port = TcpPort(self.receive)
            host, port = await tcp_port.start(*tcp)
            self.ports.append(tcp_port)
            self.endpoints["serial_url"] = f"socket://{hostport(host, port)}"
        self.ticker = asyncio.create_task(self._tick_forever())
        return self.endpoints

    def receive(self, port: Port, data: bytes) -> None:
        """Frame received bytes and answer each request (nothing while the link is dropped)."""
        if self.link.dropped:
            return
        contents, dropped = port.reader.feed(data)
        now = self.clock()
        self.model.advance(now)
        self.model.dropped += dropped
        for content in contents:
            seq, reply = respond(self.model, content, now)
            self.send(port, encode(seq, reply))
        self.changed()

    def changed(self) -> None:
        """Send queued unsolicited frames and let the ticker recompute its deadline."""
        for fields in self.model.take_outbox():
            frame = encode(0, fields)
            for port in self.ports:
                self.send(port, frame)
        self.wake.set()

    def send(self, port: Port, frame: bytes) -> None:
        """Send one frame through the link impairments."""
        if self.link.dropped:
            return
        if self.link.should_corrupt():
            frame = self.corrupt(frame)
        delay_s = self.link.delay_s
        if delay_s > 0.0:
            asyncio.get_running_loop().call_later(delay_s, self._deliver, port, frame)
        else:
            port.write(frame)

    def corrupt(self, frame: bytes) -> bytes:
        """Flip one of the low 7 bits of one byte between `$` and `*` (the CRC then fails)."""
        start, star = frame.index(START) + 1, frame.index(STAR)
        position = self.link.rng.randrange(start, star)
        flipped = frame[position] ^ (1 << self.link.rng.randrange(7))
        return frame[:position] + bytes([flipped]) + frame[position + 1 :]

    def _deliver(self, port: Port, frame: bytes) -> None:
        """Send a delayed frame unless the link dropped meanwhile."""
        if not self.link.dropped:
            port.write(frame)

    def reboot(self) -> None:
        """Power-cycle: model state lost, half-received frames forgotten, EVT,BOOT sent."""
        self.model.reboot(self.clock())
        for port in self.ports:
            port.reader.reset()
        self.changed()

    async def _tick_forever(self) -> None:
        """Advance the model at its deadlines and send what it queued."""
        while True:
            self.model.advance(self.clock())
            self.changed()
            self.wake.clear()
            timeout = max(0.0, self.model.next_deadline() - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    def close(self) -> None:
        """Stop ticking and close every port."""
        if self.ticker is not None:
            self.ticker.cancel()
        for port in self.ports:
            port.close()
