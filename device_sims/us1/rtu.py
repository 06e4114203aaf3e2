"""Modbus RTU (19200 baud, unit id 1) on a pseudo-terminal the simulator itself owns.

Why the master fd of `os.openpty()` and not a `socat` pty pair: both give clients a path, but
socat is one more process per endpoint, to start, to wait for (its paths come as `PTY is ...`
lines on its stderr) and to end with us even when we are SIGKILLed (PR_SET_PDEATHSIG; a socat
killed hard leaves its `link=` files behind); every byte takes one more hop; and the client's
termios would sit on socat's pty, out of our sight. Serving the master fd ourselves needs none
of that: the pty lives exactly as long as this process, 32 units cost 32 fd pairs instead of 32
processes, READY waits for no child, and the unit sees the client's line settings. pymodbus's
`ModbusSerialServer` opens its port by path (pyserial), which the master side lacks, so this
server keeps pymodbus's RTU framer and request handling and our shared context, decoder and
handler, and only swaps how the "serial port" is created (`call_create`) for a transport over
the master fd.

Line settings: the ICD's 19200 8E1 cannot all exist on a pty (see `ptyport`): Linux keeps no
parity bit there, so clients open the path with parity "N"; 8 data bits are the only kind a
pty has. Bytes a client sends at another baud rate or with 2 stop bits are ignored, as a real
UART would see only garbage.

Link modes: `drop` and `delay` come from the shared `LinkAwareHandler`; `corrupt` flips one
bit of that share of outgoing frames, so the client sees a CRC error.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer

from ..link import LinkControl
from .modbus import LinkAwareHandler, US1Context, US1Decoder
from .ptyport import PtyLine, PtyPair, PtyTransport

RTU_LINE = PtyLine(baudrate=19200, stopbits=1)  # ICD: 19200 8E1; a pty keeps only these two
log = logging.getLogger(__name__)


class RtuHandler(LinkAwareHandler):
    """The shared link-aware handler, plus the line-settings check of a real UART."""

    def datagram_received(self, data: bytes, addr: tuple[Any, ...] | None) -> None:
        """Ignore bytes sent with the wrong line settings, else handle them as usual."""
        server: US1RtuServer = self.server
        if not server.line_ok():
            return
        super().datagram_received(data, addr)


class US1RtuServer(ModbusSerialServer):
    """Modbus RTU server for one US-1 on a fresh pty; clients open `path`."""

    def __init__(self, context: US1Context, link: LinkControl) -> None:
        """Create the pty now (so `path` is known); `start()` begins serving it."""
        self.pty = PtyPair(RTU_LINE)
        super().__init__(
            context,
            framer=FramerType.RTU,
            port=self.pty.path,
            baudrate=RTU_LINE.baudrate,
            stopbits=RTU_LINE.stopbits,
            ignore_missing_devices=True,
            trace_packet=self._trace_packet,
        )
        self.link = link
        self.decoder = US1Decoder(True)
        self.call_create = self._attach_pty
        self._wrong_line: PtyLine | None = None

    @property
    def path(self) -> str:
        """The pty path a client opens like a serial port."""
        return self.pty.path

    async def _attach_pty(self) -> tuple[PtyTransport, RtuHandler]:
        """Stand-in for pymodbus's serial `create_serial_connection`: one handler on the pty."""
        handler = cast(RtuHandler, self.handle_new_connection())
        return PtyTransport(self.loop, self.pty, handler), handler

    def callback_new_connection(self) -> RtuHandler:
        """Serve the pty with the RTU handler."""
        return RtuHandler(  # type: ignore[no-untyped-call]
            self, self.trace_packet, self.trace_pdu, self.trace_connect
        )

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Flip one bit in a share of outgoing frames in `corrupt` mode."""
        return self.link.flip_bit(data) if sending else data

    def line_ok(self) -> bool:
        """Whether the client set 19200 baud and 1 stop bit (log each new mismatch once)."""
        line = self.pty.line()
        if line == RTU_LINE:
            self._wrong_line = None
            return True
        if line != self._wrong_line:
            log.warning("RTU %s: client line is %s, unit expects %s", self.path, line, RTU_LINE)
            self._wrong_line = line
        return False

    async def start(self) -> str:
        """Start serving the pty; return its path."""
        await self.serve_forever(background=True)
        return self.path

    def forget_pending(self) -> None:
        """Drop half-received requests and delayed replies (a power cycle)."""
        for handler in list(self.active_connections.values()):
            if isinstance(handler, LinkAwareHandler):
                handler.forget_pending()
