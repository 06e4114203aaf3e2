"""Modbus transport pieces shared by the US-1 and the generic Modbus drivers.

A pymodbus client made for a profile's link (TCP or RTU) without retries or reconnects (the
drivers do both, with backoff), and the words for what went wrong on it.
"""

from __future__ import annotations

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

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
