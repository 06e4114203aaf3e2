"""`--count N`: N independent US-1 units in one simulator process, one test port for all."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from sessionconsole.testing import SimProcess, split_hostport

START = 1
IDLE, RUNNING, FAULT = 0, 1, 4
SERIAL_0 = 21_000_001


@pytest.fixture
def sim3() -> Iterator[SimProcess]:
    """A simulator running three US-1 units over TCP."""
    process = SimProcess("us1", ["--count", "3"]).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def clients(sim3: SimProcess) -> AsyncIterator[list[AsyncModbusTcpClient]]:
    """One connected Modbus TCP client per unit, in unit order."""
    connected = []
    for unit in sim3.ready["units"]:
        host, port = split_hostport(unit["endpoints"]["modbus_tcp"])
        client = AsyncModbusTcpClient(host, port=port, timeout=0.3, retries=0)
        assert await client.connect()
        connected.append(client)
    yield connected
    for client in connected:
        client.close()


async def input_registers(client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> list[int]:
    """All 16 input registers of the unit behind `client`."""
    response = await client.read_input_registers(0, count=16, device_id=1)
    assert not response.isError(), response
    return list(response.registers)


async def test_ready_lists_every_unit_with_its_own_endpoint_and_serial(
    sim3: SimProcess, clients: list[AsyncModbusTcpClient]
) -> None:
    units = sim3.ready["units"]
    assert len(units) == 3
    assert sim3.endpoints == units[0]["endpoints"]
    assert len({unit["endpoints"]["modbus_tcp"] for unit in units}) == 3
    for index, (unit, client) in enumerate(zip(units, clients, strict=True)):
        regs = await input_registers(client)
        assert unit["serial"] == regs[14] << 16 | regs[15] == SERIAL_0 + index
        state = sim3.request({"op": "state", "unit": index})
        assert state["unit"] == index and state["input"][14:] == regs[14:]


async def test_units_keep_independent_state(
    sim3: SimProcess, clients: list[AsyncModbusTcpClient]
) -> None:
    start = await clients[1].write_registers(1, [50, 100, 100, 300, 5000, 0, START], device_id=1)
    assert not start.isError()
    assert [(await input_registers(c))[0] for c in clients] == [IDLE, RUNNING, IDLE]
    assert sim3.request({"op": "state"})["state"] == "IDLE"  # no "unit": unit 0
    assert sim3.request({"op": "state", "unit": 1})["state"] == "RUNNING"
    assert sim3.request({"op": "inject", "fault": "head_disconnect", "unit": 2}) == {"ok": True}
    assert sim3.request({"op": "link", "mode": "drop", "unit": 0}) == {"ok": True}
    assert sim3.request({"op": "reboot", "unit": 1}) == {"ok": True, "boot_counter": 2}
    states = [sim3.request({"op": "state", "unit": i}) for i in range(3)]
    assert [s["state"] for s in states] == ["IDLE", "IDLE", "FAULT"]
    assert [s["counters"]["boot_counter"] for s in states] == [1, 2, 1]
    assert [s["link"]["mode"] for s in states] == ["drop", "ok", "ok"]
    assert [s["fault"] for s in states] == ["NONE", "NONE", "HEAD_DISCONNECTED"]
    assert (await input_registers(clients[2]))[0] == FAULT  # unit 0's dropped link: not 2's


@pytest.mark.parametrize("unit", [3, -1, "1", True, 1.5, None])
def test_bad_unit_index_is_refused(sim3: SimProcess, unit: object) -> None:
    reply = sim3.request({"op": "state", "unit": unit})
    assert reply["ok"] is False
    assert "unknown unit" in reply["error"] and "0..2" in reply["error"]


async def test_count_with_tcp_and_rtu_gives_each_unit_both() -> None:
    with SimProcess("us1", ["--count", "2", "--tcp", "127.0.0.1:0", "--rtu-pty"]) as sim:
        endpoints = [unit["endpoints"] for unit in sim.ready["units"]]
        assert all(set(e) == {"modbus_tcp", "rtu_pty"} for e in endpoints)
        assert endpoints[0]["rtu_pty"] != endpoints[1]["rtu_pty"]
        rtu = AsyncModbusSerialClient(
            endpoints[1]["rtu_pty"],
            framer=FramerType.RTU,
            baudrate=19200,
            bytesize=8,
            parity="N",  # a pty keeps no parity bit (see test_us1_rtu)
            stopbits=1,
            timeout=0.3,
            retries=0,
        )
        assert await rtu.connect()
        try:
            regs = await input_registers(rtu)
            assert regs[14] << 16 | regs[15] == SERIAL_0 + 1
        finally:
            rtu.close()


@pytest.mark.parametrize("count", ["0", "-2", "x"])
def test_bad_count_is_a_usage_error(count: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "device_sims", "us1", "--count", count],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2 and result.stdout == b""
    assert b"--count" in result.stderr
