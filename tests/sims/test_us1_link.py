"""US-1 link modes as a raw client sees them on each transport, and seeded corruption.

SIMULATORS.md: `delay` delays every reply; `corrupt` flips a bit in that share of outgoing
frames on serial transports (RTU) and replaces that share of outgoing messages with malformed
ones on TCP ("bad length ... never with well-formed wrong values"); physics and the random
parts repeat with `--seed`. Raw sockets and a raw serial port, so nothing between the test
and the wire hides a late or malformed frame.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
import serial
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU

from sessionconsole.testing import SimProcess
from tests.sims.test_us1_rtu import rtu_frame

READ_HR_0_2 = bytes([3, 0, 0, 0, 2])  # FC 3, address 0, count 2
HEALTHY_PDU = bytes([3, 4, 0x03, 0xE8, 0, 0])  # 1000 kHz, intensity 0 after boot
TCP_REPLY_LEN = 7 + len(HEALTHY_PDU)  # MBAP header (7 with unit id) + PDU
RTU_REPLY_LEN = 1 + len(HEALTHY_PDU) + 2  # unit id + PDU + CRC


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    """One US-1 unit on Modbus TCP and RTU."""
    process = SimProcess("us1", ["--tcp", "127.0.0.1:0", "--rtu-pty"]).start()
    try:
        yield process
    finally:
        process.stop()


class RawTcp:
    """A Modbus TCP client that writes and reads raw MBAP frames."""

    def __init__(self, hostport: tuple[str, int]) -> None:
        """Connect."""
        self.sock = socket.create_connection(hostport, timeout=3.0)
        self.tid = 0

    def send(self, pdu: bytes, unit_id: int = 1) -> int:
        """Send one request; return its transaction id."""
        self.tid += 1
        self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit_id) + pdu)
        return self.tid

    def receive(self, size: int) -> bytes:
        """Exactly `size` bytes (the test knows the reply's true length)."""
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, f"connection closed after {data!r}"
            data += chunk
        return data

    def nothing_more(self, wait_s: float = 0.1) -> bool:
        """Whether no further byte arrives within `wait_s`."""
        self.sock.settimeout(wait_s)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(3.0)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def is_healthy(frame: bytes, tid: int) -> bool:
    """Whether `frame` is the well-formed reply to request `tid` (MBAP length = what follows)."""
    return frame == struct.pack(">HHHB", tid, 0, 1 + len(HEALTHY_PDU), 1) + HEALTHY_PDU


def test_tcp_corrupt_sends_a_bad_mbap_length_never_a_wrong_value(sim: SimProcess) -> None:
    client = RawTcp(sim.modbus_tcp)
    try:
        tid = client.send(READ_HR_0_2)
        assert is_healthy(client.receive(TCP_REPLY_LEN), tid)
        assert sim.request({"op": "link", "mode": "corrupt", "rate": 1.0}) == {"ok": True}
        for _ in range(5):
            tid = client.send(READ_HR_0_2)
            frame = client.receive(TCP_REPLY_LEN)
            declared = struct.unpack(">H", frame[4:6])[0]
            assert declared != len(frame) - 6, frame  # the MBAP length lies about the frame
            # ... and nothing else changed: same transaction, protocol, unit id and values
            assert frame[:4] == struct.pack(">HH", tid, 0) and frame[6:] == bytes([1]) + (
                HEALTHY_PDU
            )
            assert client.nothing_more()  # the frame itself is the true length: no filler
        assert sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
        tid = client.send(READ_HR_0_2)
        assert is_healthy(client.receive(TCP_REPLY_LEN), tid)
    finally:
        client.close()


async def test_tcp_corrupt_fails_a_modbus_client(sim: SimProcess) -> None:
    host, port = sim.modbus_tcp
    client = AsyncModbusTcpClient(host, port=port, timeout=0.3, retries=0)
    assert await client.connect()
    try:
        assert sim.request({"op": "link", "mode": "corrupt", "rate": 1.0}) == {"ok": True}
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(0, count=2, device_id=1)
    finally:
        client.close()


@pytest.mark.parametrize("delay_ms", [150, 600])
def test_tcp_delay_reply_no_sooner_than_the_delay(sim: SimProcess, delay_ms: int) -> None:
    client = RawTcp(sim.modbus_tcp)
    try:
        assert sim.request({"op": "link", "mode": "delay", "ms": delay_ms}) == {"ok": True}
        for _ in range(3):
            tid = client.send(READ_HR_0_2)
            sent = time.monotonic()
            frame = client.receive(TCP_REPLY_LEN)
            waited = time.monotonic() - sent
            assert is_healthy(frame, tid)  # delayed, not altered
            assert delay_ms / 1000 <= waited < delay_ms / 1000 + 2.0, waited
        assert sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
    finally:
        client.close()


@pytest.mark.parametrize("delay_ms", [150, 600])
def test_rtu_delay_reply_no_sooner_than_the_delay(sim: SimProcess, delay_ms: int) -> None:
    request = rtu_frame(READ_HR_0_2)
    with serial.Serial(sim.endpoints["rtu_pty"], baudrate=19200, timeout=3.0) as port:
        assert sim.request({"op": "link", "mode": "delay", "ms": delay_ms}) == {"ok": True}
        for _ in range(3):
            port.write(request)
            port.flush()
            sent = time.monotonic()
            frame = port.read(RTU_REPLY_LEN)
            waited = time.monotonic() - sent
            assert frame[:-2] == bytes([1]) + HEALTHY_PDU, frame  # delayed, not altered
            assert FramerRTU.check_CRC(frame[:-2], int.from_bytes(frame[-2:], "big"))
            assert delay_ms / 1000 <= waited < delay_ms / 1000 + 2.0, waited


# ---- seeded corruption ---------------------------------------------------------------------
FRAMES = 40  # at rate 0.5 two independent patterns agree with probability 2**-40


def corrupt_patterns(seed: int, count: int = 1) -> list[list[bool]]:
    """One process: for each unit, which of FRAMES replies came corrupted at rate 0.5."""
    args = ["--seed", str(seed), "--count", str(count)]
    with SimProcess("us1", args) as sim:
        patterns = []
        for unit, entry in enumerate(sim.ready["units"]):
            host, _, port = entry["endpoints"]["modbus_tcp"].rpartition(":")
            request = {"op": "link", "mode": "corrupt", "rate": 0.5, "unit": unit}
            assert sim.request(request) == {"ok": True}
            client = RawTcp((host, int(port)))
            try:
                pattern = []
                for _ in range(FRAMES):
                    tid = client.send(READ_HR_0_2)
                    pattern.append(not is_healthy(client.receive(TCP_REPLY_LEN), tid))
                patterns.append(pattern)
            finally:
                client.close()
        return patterns


def test_one_seed_corrupts_the_same_frames_per_unit_and_another_seed_others() -> None:
    first, again, other = corrupt_patterns(7, 2), corrupt_patterns(7, 2), corrupt_patterns(8)
    assert first == again  # every unit of a --count process repeats with the seed
    assert first[0] != first[1]  # units have their own draws
    assert other[0] != first[0]  # another seed, other frames
    for pattern in (*first, *other):
        assert 8 <= sum(pattern) <= 32, pattern  # about half, not all or none
