"""US-1 simulator over Modbus RTU on its pseudo-terminal (`--rtu-pty`), as a serial client sees it.

Clients open the pty with parity "N": a Linux pty keeps no parity bit, and pyserial's second
reconfigure of a port opened with parity "E" fails there with EINVAL (pyserial issue #196).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import serial
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ModbusPDU

from sessionconsole.testing import SimProcess

HR, IR, DI = 3, 4, 2
START, STOP, PAUSE = 1, 2, 3
IDLE, RUNNING, FAULT = 0, 1, 4
WATCHDOG = 2
ModbusClient = AsyncModbusSerialClient | AsyncModbusTcpClient


def rtu_client(path: str, baudrate: int = 19200, timeout: float = 0.3) -> AsyncModbusSerialClient:
    """An RTU client on the simulator's pty: 19200 baud, 8 bits, 1 stop bit, no retries."""
    return AsyncModbusSerialClient(
        path,
        framer=FramerType.RTU,
        baudrate=baudrate,
        bytesize=8,
        parity="N",
        stopbits=1,
        timeout=timeout,
        retries=0,
    )


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    """A US-1 simulator serving RTU on a pty only."""
    process = SimProcess("us1", ["--rtu-pty"]).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def rtu(sim: SimProcess) -> AsyncIterator[AsyncModbusSerialClient]:
    """A connected RTU client on the simulator's pty."""
    client = rtu_client(sim.endpoints["rtu_pty"])
    assert await client.connect()
    yield client
    client.close()


def exception_code(response: ModbusPDU) -> int:
    """The exception code of an error response (0 if the response is not an error)."""
    return int(response.exception_code) if response.isError() else 0


async def write(client: ModbusClient, address: int, *values: int) -> int:
    """Write with FC 6 (one value) or FC 16; return the exception code (0 = success)."""
    if len(values) == 1:
        return exception_code(await client.write_register(address, values[0], device_id=1))
    return exception_code(await client.write_registers(address, list(values), device_id=1))


async def read(client: ModbusClient, table: int, address: int, count: int = 1) -> list[Any]:
    """Read registers (FC 3/4) or bits (FC 2); fail the test on an exception response."""
    calls: dict[int, Callable[..., Any]] = {
        HR: client.read_holding_registers,
        IR: client.read_input_registers,
        DI: client.read_discrete_inputs,
    }
    response = await calls[table](address, count=count, device_id=1)
    assert not response.isError(), response
    return list(response.bits[:count] if table == DI else response.registers)


def rtu_frame(pdu: bytes, device_id: int = 1) -> bytes:
    """A raw RTU request frame: id, PDU, CRC."""
    frame = bytes([device_id]) + pdu
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


async def test_ready_names_the_pty_and_every_table_is_readable(
    sim: SimProcess, rtu: AsyncModbusSerialClient
) -> None:
    assert sim.endpoints == {"rtu_pty": sim.endpoints["rtu_pty"]}  # no TCP unless asked
    assert sim.endpoints["rtu_pty"].startswith("/dev/pts/")
    assert sim.ready["units"][0]["serial"] == 21_000_001
    assert await read(rtu, HR, 0, 8) == [1000, 0, 100, 100, 300, 1000, 0, 0]
    regs = await read(rtu, IR, 0, 16)
    assert (regs[0], regs[6], regs[7], regs[8], regs[12], regs[13]) == (0, 0, 50, 42, 1, 0x5531)
    assert regs[14] << 16 | regs[15] == 21_000_001
    assert await read(rtu, DI, 0, 4) == [False, True, True, False]
    for table, size in ((HR, 8), (IR, 16), (DI, 4)):
        for address in range(size):
            assert len(await read(rtu, table, address)) == 1


async def test_exceptions_01_02_03_06(rtu: AsyncModbusSerialClient) -> None:
    assert exception_code(await rtu.read_coils(0, count=1, device_id=1)) == 1
    assert exception_code(await rtu.write_coil(0, True, device_id=1)) == 1
    assert exception_code(await rtu.diag_read_bus_message_count(device_id=1)) == 1
    assert exception_code(await rtu.read_holding_registers(8, count=1, device_id=1)) == 2
    assert exception_code(await rtu.read_input_registers(15, count=2, device_id=1)) == 2
    assert exception_code(await rtu.read_discrete_inputs(4, count=1, device_id=1)) == 2
    assert await write(rtu, 8, 1) == 2
    for address, value in [(0, 2000), (1, 301), (2, 30), (5, 99), (7, 6)]:
        assert await write(rtu, address, value) == 3, (address, value)
    assert await write(rtu, 7, PAUSE) == 6  # not allowed in IDLE
    assert await write(rtu, 1, 50, 100, 100, 300, 1000, 0, START) == 0
    assert await write(rtu, 0, 3000) == 6  # busy while RUNNING
    assert await read(rtu, HR, 0, 2) == [1000, 50]


async def test_fc16_all_or_nothing_start_and_stop(rtu: AsyncModbusSerialClient) -> None:
    assert await write(rtu, 0, 3000, 150, 30) == 3
    assert await read(rtu, HR, 0, 3) == [1000, 0, 100]
    assert await write(rtu, 0, 3000, 150, 50, 100, 300, 5000, 0, START) == 0
    assert await read(rtu, HR, 0, 8) == [3000, 150, 50, 100, 300, 5000, 0, 0]
    assert (await read(rtu, IR, 0))[0] == RUNNING
    await asyncio.sleep(0.3)
    assert (await read(rtu, IR, 2))[0] > 0
    assert await write(rtu, 7, STOP) == 0
    assert await read(rtu, IR, 0, 3) == [IDLE, 0, 0]
    assert (await read(rtu, DI, 3))[0] is False


async def test_watchdog_never_before_timeout_and_within_250_ms_after(
    sim: SimProcess, rtu: AsyncModbusSerialClient
) -> None:
    assert await write(rtu, 1, 50, 100, 100, 300, 300, 0, START) == 0
    for beat in range(10):  # 1 s of heartbeats every 100 ms keeps it running
        await asyncio.sleep(0.1)
        assert await write(rtu, 6, beat) == 0
        assert (await read(rtu, IR, 0))[0] == RUNNING
    t0 = time.monotonic()
    assert await write(rtu, 6, 99) == 0
    t1 = time.monotonic()
    while True:
        state = (await read(rtu, IR, 0))[0]
        received = time.monotonic()
        if state != RUNNING:
            break
        assert received - t1 < 0.6, "no watchdog fault"
        await asyncio.sleep(0.005)
    assert received - t0 >= 0.300, "watchdog fired before its 300 ms timeout"
    assert received - t0 <= 0.300 + 0.250, received - t0
    assert state == FAULT and (await read(rtu, IR, 6))[0] == WATCHDOG
    watchdog = sim.request({"op": "state"})["watchdog"]  # the device's own clock
    interval = watchdog["trip_t_ms"] - watchdog["last_feed_t_ms"]
    assert 300 - 1e-3 <= interval <= 300 + 250, interval


async def test_other_unit_ids_get_no_reply(rtu: AsyncModbusSerialClient) -> None:
    for device_id in (2, 0, 247):  # 0 = broadcast: not enabled, so neither acted on nor answered
        with pytest.raises(ModbusIOException):
            await rtu.write_register(1, 77, device_id=device_id)
    assert await read(rtu, HR, 0, 2) == [1000, 0]


def test_corrupt_flips_one_bit_so_the_crc_fails(sim: SimProcess) -> None:
    request = rtu_frame(bytes([3, 0, 0, 0, 1]))
    with serial.Serial(sim.endpoints["rtu_pty"], baudrate=19200, timeout=0.5) as port:
        port.write(request)
        healthy = port.read(7)
        assert healthy[:5] == bytes([1, 3, 2, 0x03, 0xE8])
        assert FramerRTU.check_CRC(healthy[:5], int.from_bytes(healthy[5:], "big"))
        assert sim.request({"op": "link", "mode": "corrupt", "rate": 1.0}) == {"ok": True}
        for _ in range(3):
            port.write(request)
            corrupted = port.read(7)
            assert len(corrupted) == 7
            flipped = sum(bin(a ^ b).count("1") for a, b in zip(healthy, corrupted, strict=True))
            assert flipped == 1
            assert not FramerRTU.check_CRC(corrupted[:5], int.from_bytes(corrupted[5:], "big"))
        port.timeout = 0.05
        assert port.read(1) == b""  # same length: a flipped bit, nothing added


async def test_corrupt_makes_the_client_fail_and_ok_restores(
    sim: SimProcess, rtu: AsyncModbusSerialClient
) -> None:
    assert sim.request({"op": "link", "mode": "corrupt", "rate": 1.0}) == {"ok": True}
    for _ in range(3):
        with pytest.raises(ModbusIOException):
            await rtu.read_holding_registers(0, count=8, device_id=1)
    assert sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
    assert await read(rtu, HR, 0, 2) == [1000, 0]


async def test_drop_silences_and_delay_defers(
    sim: SimProcess, rtu: AsyncModbusSerialClient
) -> None:
    assert sim.request({"op": "link", "mode": "drop"}) == {"ok": True}
    with pytest.raises(ModbusIOException):
        await rtu.write_register(1, 77, device_id=1)
    assert sim.request({"op": "link", "mode": "delay", "ms": 150}) == {"ok": True}
    t0 = time.monotonic()
    assert await read(rtu, HR, 1) == [0]  # the write sent while dropped was never acted on
    assert time.monotonic() - t0 >= 0.150
    assert sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
    t0 = time.monotonic()
    assert await read(rtu, HR, 0) == [1000]
    assert time.monotonic() - t0 < 0.1


async def test_wrong_baud_rate_gets_no_reply_and_reopening_works(sim: SimProcess) -> None:
    path = sim.endpoints["rtu_pty"]
    wrong = rtu_client(path, baudrate=9600)
    assert await wrong.connect()
    with pytest.raises(ModbusIOException):
        await wrong.read_holding_registers(0, count=1, device_id=1)
    wrong.close()
    for _ in range(3):  # a client may close and reopen the path as often as it likes
        client = rtu_client(path)
        assert await client.connect()
        assert await read(client, HR, 0) == [1000]
        client.close()


async def test_tcp_and_rtu_together_serve_one_unit() -> None:
    with SimProcess("us1", ["--tcp", "127.0.0.1:0", "--rtu-pty"]) as sim:
        assert set(sim.endpoints) == {"modbus_tcp", "rtu_pty"}
        host, port = sim.modbus_tcp
        tcp = AsyncModbusTcpClient(host, port=port, timeout=0.3, retries=0)
        rtu = rtu_client(sim.endpoints["rtu_pty"])
        assert await tcp.connect() and await rtu.connect()
        try:
            assert await write(tcp, 1, 120) == 0
            assert await read(rtu, HR, 1) == [120]
            assert sim.request({"op": "reboot"})["boot_counter"] == 2
            assert await read(rtu, IR, 12) == [2]  # the same pty path after a reboot
            assert await read(rtu, HR, 1) == [0]
        finally:
            tcp.close()
            rtu.close()


def child_pids(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                children.append(int(entry))
    return children


def pty_gone(path: str, created_ns: int) -> bool:
    """Whether the pty at `path` is gone (or the number now belongs to a newer pty)."""
    try:
        return os.stat(path).st_ctime_ns != created_ns
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_ending_the_simulator_leaves_no_process_and_no_pty(signum: int) -> None:
    sim = SimProcess("us1", ["--rtu-pty", "--count", "2"]).start()
    paths = [unit["endpoints"]["rtu_pty"] for unit in sim.ready["units"]]
    created = [os.stat(path).st_ctime_ns for path in paths]
    assert child_pids(sim.pid) == []  # no helper process (no socat) to leave behind
    assert sim.proc is not None
    t0 = time.monotonic()
    sim.proc.send_signal(signum)
    code = sim.proc.wait(timeout=2.0)
    sim.kill()
    assert code == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
    assert time.monotonic() - t0 < 1.0
    deadline = time.monotonic() + 1.0
    while not all(pty_gone(path, ns) for path, ns in zip(paths, created, strict=True)):
        assert time.monotonic() < deadline, f"pty still there: {paths}"
        time.sleep(0.02)
