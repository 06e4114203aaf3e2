"""Modbus adapter: exposes a `US1Model` through a pymodbus 3.16 server (TCP here, RTU in `rtu`).

The context, decoder and link-aware handler below are transport-neutral: `rtu.US1RtuServer`
reuses them unchanged, so both endpoints have exactly the same register semantics.

Register layout: the context reads and writes through a `layout.Layout` (the ICD's map, or
`--layout vendor-b`), so one model can be served under another vendor's map and unit id.

Unit id: the US-1 answers unit id 1 only (vendor-b: 7). The server runs with
`ignore_missing_devices=True` and the context raises `NoSuchIdException` for any other id, so a
request to a wrong id gets no reply at all (the safest reading of the ICD: a wrong id looks
like a silent device, never like a device that answered). Broadcast (id 0) is disabled and
likewise unanswered.

Datastore: `US1Context` subclasses `ModbusServerContext` but deliberately skips its
`__init__`, which only builds the deprecated datastore and logs deprecation warnings. The base
server uses a context as-is when `old_simulator` is true and `simdevices` is empty, then calls
`async_getValues`/`async_setValues`, whose `ExcCodes` results become exception responses.

Function codes: the server's decoder is replaced by `US1Decoder`, which turns every function
code other than 2, 3, 4, 6 and 16 into a request answered with exception 01 (stock pymodbus
would serve e.g. FC 8 or FC 43 itself, or answer unknown codes with function code 0x80).
FC 6 replies echo the request as the Modbus spec says (so writing START to register 7 echoes
1); a later read of register 7 returns 0 because the device acted on the command at once.

Link impairments (`LinkControl`): in `drop` mode received bytes are discarded before framing
(so they are never acted on, not even later) and nothing is sent; `delay` defers each reply;
`corrupt` rewrites the MBAP length of that share of outgoing frames (TCP; RTU flips a bit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.decoders import DecodePDU
from pymodbus.pdu.register_message import WriteSingleRegisterRequest, WriteSingleRegisterResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from ..link import LinkControl
from .layout import ICD, Layout
from .model import US1Model

SUPPORTED_FUNCTION_CODES = frozenset({2, 3, 4, 6, 16})
READ_TABLE_OF = {2: 2, 3: 3, 4: 4, 6: 3, 16: 3}  # FC 6/16 read back the holding table

Clock = Callable[[], float]


class US1Context(ModbusServerContext):
    """Routes pymodbus datastore calls for the layout's unit id to the model; others stay silent."""

    def __init__(self, model: US1Model, clock: Clock, layout: Layout = ICD) -> None:
        """Bind to `model`; no super().__init__ (it only builds deprecated stores and warns)."""
        self.old_simulator = True
        self.simdevices: list[Any] = []
        self.model = model
        self.clock = clock
        self.layout = layout

    def check_device(self, device_id: int) -> None:
        """Raise NoSuchIdException for any other id, so the server sends nothing."""
        if device_id != self.layout.device_id:
            raise NoSuchIdException(f"device_id {device_id} is not this US-1")

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        """Read registers or bits from the model."""
        self.check_device(device_id)
        table = READ_TABLE_OF.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        result = self.layout.read(self.model, table, address, count, self.clock())
        if not isinstance(result, list):
            return ExcCodes(int(result))
        if table == 2:
            return [bool(bit) for bit in result]
        return result

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        """Write holding registers through the model's all-or-nothing validation."""
        self.check_device(device_id)
        if func_code not in (6, 16):
            return ExcCodes.ILLEGAL_FUNCTION
        refused = self.layout.write(self.model, address, [int(v) for v in values], self.clock())
        return None if refused is None else ExcCodes(int(refused))

    def device_ids(self) -> list[int]:
        """The only unit id served."""
        return [self.layout.device_id]


class RefusedRequest(ModbusPDU):
    """A request the US-1 does not implement: answered with an exception (its own id only)."""

    def __init__(self, function_code: int, exception_code: ExcCodes) -> None:
        """Remember which function code to refuse and with which exception."""
        super().__init__()
        self.function_code = function_code
        self.refusal = exception_code

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """Answer with the exception, or raise so an unknown id gets no reply."""
        if not isinstance(context, US1Context) or device_id not in context.device_ids():
            raise NoSuchIdException(f"device_id {device_id} is not this US-1")
        return ExceptionResponse(self.function_code, self.refusal)


class EchoingWriteSingleRegisterRequest(WriteSingleRegisterRequest):
    """FC 6 whose reply echoes the request, as the Modbus spec requires.

    Stock pymodbus answers FC 6 with a read-back, which for the command register would be 0
    (the device already acted on it); a later FC 3 read still shows 0.
    """

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """Write through the context; reply with the request's address and value."""
        refused = await context.async_setValues(device_id, 6, self.address, self.registers)
        if refused:
            return ExceptionResponse(self.function_code, refused)
        return WriteSingleRegisterResponse(address=self.address, registers=list(self.registers))


class US1Decoder(DecodePDU):
    """Server-side decoder knowing only FC 2, 3, 4, 6 and 16."""

    def decode(self, frame: bytes) -> ModbusPDU | None:
        """Decode a supported request; anything else becomes a RefusedRequest."""
        function_code = int(frame[0])
        if function_code not in SUPPORTED_FUNCTION_CODES:
            return RefusedRequest(function_code & 0x7F, ExcCodes.ILLEGAL_FUNCTION)
        pdu = super().decode(frame)
        if isinstance(pdu, WriteSingleRegisterRequest):
            echoing = EchoingWriteSingleRegisterRequest()
            echoing.address, echoing.registers = pdu.address, pdu.registers
            pdu = echoing
        if pdu is None:
            return RefusedRequest(function_code, ExcCodes.ILLEGAL_VALUE)
        return pdu


class LinkAwareHandler(ServerRequestHandler):
    """Per-connection handler applying the link mode on receive and send."""

    epoch = 0  # bumped by forget_pending(): delayed replies of an older epoch are never sent

    def datagram_received(self, data: bytes, addr: tuple[Any, ...] | None) -> None:
        """Discard incoming bytes while the link is dropped, else process them."""
        if self.server.link.dropped:
            return
        super().datagram_received(data, addr)

    def server_send(self, pdu: ModbusPDU | None, addr: tuple[Any, ...] | None) -> None:
        """Send a reply now, later (delay) or never (drop)."""
        link: LinkControl = self.server.link
        if link.dropped:
            return
        if link.delay_s > 0:
            self.loop.call_later(link.delay_s, self._send_if_up, pdu, addr, self.epoch)
        else:
            super().server_send(pdu, addr)  # type: ignore[no-untyped-call]

    def _send_if_up(self, pdu: ModbusPDU | None, addr: tuple[Any, ...] | None, epoch: int) -> None:
        """Send a delayed reply unless the link dropped, the connection closed or a reboot came."""
        if epoch == self.epoch and not self.server.link.dropped and self.transport:
            super().server_send(pdu, addr)  # type: ignore[no-untyped-call]

    def forget_pending(self) -> None:
        """Drop half-received requests and delayed replies (a power cycle loses them)."""
        self.epoch += 1
        self.recv_buffer = b""


class US1ModbusServer(ModbusTcpServer):
    """Modbus TCP server for one US-1 with link impairments and a restricted decoder."""

    def __init__(self, context: US1Context, link: LinkControl, address: tuple[str, int]) -> None:
        """Create (not yet listening) on `address`; port 0 picks a free port."""
        super().__init__(
            context,
            address=address,
            ignore_missing_devices=True,
            trace_packet=self._trace_packet,
        )
        self.link = link
        self.decoder = US1Decoder(True)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Corrupt a share of outgoing frames (bad MBAP length) in `corrupt` mode."""
        if sending and len(data) >= 6 and self.link.should_corrupt():
            length = int.from_bytes(data[4:6], "big")
            return data[:4] + ((length + 3) & 0xFFFF).to_bytes(2, "big") + data[6:]
        return data

    def callback_new_connection(self) -> LinkAwareHandler:
        """Serve each connection with the link-aware handler."""
        return LinkAwareHandler(  # type: ignore[no-untyped-call]
            self, self.trace_packet, self.trace_pdu, self.trace_connect
        )

    async def start(self) -> tuple[str, int]:
        """Start listening in the background; return the bound (host, port)."""
        await self.serve_forever(background=True)
        server = cast(asyncio.Server, self.transport)
        host, port = server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def drop_connections(self) -> None:
        """Close every client connection (a power cycle loses all TCP state)."""
        for connection in list(self.active_connections.values()):
            connection.close()
