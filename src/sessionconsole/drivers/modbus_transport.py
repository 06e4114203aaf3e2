"""Modbus transport pieces shared by the US-1 and the generic Modbus drivers.

A pymodbus client made for a profile's link (TCP or RTU) without retries or reconnects (the
drivers do both, with backoff), and the words for what went wrong on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException

from sessionconsole.drivers.errors import DeviceUnreachable
from sessionconsole.model.profile import ModbusRtuLink, ModbusTcpLink

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient

MODBUS_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal address",
    3: "value not allowed",
    4: "device failure",
    6: "device busy (not allowed in this state)",
}


class NoReply(DeviceUnreachable):
    """The link is open but the unit did not answer in time (wrong unit id, baud, or dead)."""


def read_refused_text(what: str, response: object) -> str:
    """A refused read in words: the exception's code and name, and what it usually means."""
    code = int(getattr(response, "exception_code", 0))
    text = f"{what} refused with exception {code:02d} ({MODBUS_EXCEPTIONS.get(code, 'unknown')})"
    if code == 2:
        text += "; the unit has no such registers: another device, or the wrong profile"
    return text


def make_client(link: ModbusTcpLink | ModbusRtuLink) -> ModbusClient:
    """A pymodbus client for the link, without retries or reconnects: the driver does both."""
    timeout_s = link.request_timeout_ms / 1000.0
    if isinstance(link, ModbusTcpLink):
        return AsyncModbusTcpClient(
            link.host, port=link.port, timeout=timeout_s, retries=0, reconnect_delay=0
        )
    return AsyncModbusSerialClient(
        link.port,
        framer=FramerType.RTU,
        baudrate=link.baudrate,
        bytesize=link.bytesize,
        parity=link.parity,
        stopbits=link.stopbits,
        timeout=timeout_s,
        retries=0,
        reconnect_delay=0,
    )


def no_link_text(link: ModbusTcpLink | ModbusRtuLink) -> str:
    """Why `connect()` returned False, as precisely as pymodbus lets us know."""
    if isinstance(link, ModbusTcpLink):
        return f"no Modbus TCP connection to {link.host}:{link.port}"
    return f"cannot open Modbus RTU port {link.port} (missing, in use, or no permission)"


def endpoint_text(link: ModbusTcpLink | ModbusRtuLink) -> str:
    """Where the unit is reached, in words: `host:port` or the serial port."""
    return f"{link.host}:{link.port}" if isinstance(link, ModbusTcpLink) else link.port


def no_reply_text(link: ModbusTcpLink | ModbusRtuLink) -> str:
    """The unit stayed silent: which unit id, where, and how long we waited."""
    return (
        f"no reply from unit id {link.device_id} at {endpoint_text(link)} "
        f"(timeout after 1 send of {link.request_timeout_ms} ms)"
    )


async def call(
    device_id: str,
    link: ModbusTcpLink | ModbusRtuLink,
    hard_timeout_s: float,
    request: Callable[[], Awaitable[Any]],
) -> Any:
    """Run one pymodbus request under our own deadline, with errors in the console's words.

    The deadline sits on top of pymodbus's own: a library call that never returns must not
    wedge the driver (seen once in CI-like runs after a link drop). Silence is NoReply; any
    other transport failure DeviceUnreachable.
    """
    try:
        async with asyncio.timeout(hard_timeout_s):
            return await request()
    except (ModbusIOException, TimeoutError) as exc:
        if isinstance(exc, TimeoutError) or "No response received" in str(exc):
            raise NoReply(f"{device_id}: {no_reply_text(link)}") from exc
        raise DeviceUnreachable(f"{device_id}: {type(exc).__name__}: {exc}") from exc
    except (ModbusException, OSError) as exc:
        raise DeviceUnreachable(f"{device_id}: {type(exc).__name__}: {exc}") from exc
