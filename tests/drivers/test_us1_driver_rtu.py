"""The US-1 driver over Modbus RTU, against the simulator's pseudo-terminal (`--rtu-pty`).

The pty keeps no parity bit, so these profiles say parity "N" (8N1); a real line is 8E1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from sessionconsole.drivers.errors import DeviceUnreachable
from sessionconsole.drivers.modbus_transport import NoReply
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.model.profile import ModbusRtuLink, UltrasoundProfileLimits, Us1Profile
from sessionconsole.testing import SimProcess
from tests.drivers.test_us1_driver import SETTINGS
from tests.support import core_heartbeats, wait_for


@pytest.fixture
def rtu_sim() -> Iterator[SimProcess]:
    """A US-1 simulator serving RTU on a pty only."""
    process = SimProcess("us1", ["--rtu-pty"]).start()
    try:
        yield process
    finally:
        process.stop()


def rtu_profile(
    path: str,
    watchdog_ms: int = 400,
    device_id: int = 1,
    request_timeout_ms: int = 100,
    telemetry_hz: float = 25.0,
) -> Us1Profile:
    """A US-1 profile on the simulator's pty: 19200 8N1, by default 25 Hz and a 100 ms
    request timeout (the bundled `us1-rtu.toml` has 10 Hz and 250 ms)."""
    return Us1Profile(
        kind="us1",
        name="RTU driver test",
        era_cm2=5.0,
        bnr=4.2,
        watchdog_ms=watchdog_ms,
        heartbeat_interval_ms=100,
        link=ModbusRtuLink(
            kind="modbus_rtu",
            port=path,
            parity="N",
            device_id=device_id,
            request_timeout_ms=request_timeout_ms,
            telemetry_hz=telemetry_hz,
        ),
        limits=UltrasoundProfileLimits(max_intensity_w_cm2=2.0, max_time_s=900),
    )


def state(sim: SimProcess) -> str:
    """The simulated unit's state name."""
    return str(sim.request({"op": "state"})["state"])


def fresher(driver: Us1ModbusDriver, than_s: float) -> bool:
    """Whether the driver holds a reading received after `than_s`."""
    return driver.latest is not None and driver.latest.received_mono_s > than_s


async def readings_in_one_second(driver: Us1ModbusDriver) -> int:
    """How many distinct readings the driver produced over one second."""
    seen: set[float] = set()
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        if driver.latest is not None:
            seen.add(driver.latest.received_mono_s)
        await asyncio.sleep(0.005)
    return len(seen)


def test_rtu_profile_defaults_follow_the_icd_and_pty_needs_parity_n() -> None:
    link = ModbusRtuLink(kind="modbus_rtu", port="/dev/ttyUSB0")
    assert (link.baudrate, link.parity, link.stopbits, link.bytesize) == (19200, "E", 1, 8)
    assert link.bits_per_char == 11
    assert rtu_profile("/dev/pts/3").link.kind == "modbus_rtu"


@pytest.mark.parametrize(
    ("baudrate", "parity", "hz", "wire_ms", "stale_s"),
    [
        (19200, "E", 10.0, 62.4, 0.463),  # ICD line: 3 x 100 ms + 62.4 + 100
        (9600, "E", 10.0, 124.9, 0.600),  # the line cannot poll at 10 Hz: cycles of 124.9 ms
        (19200, "N", 25.0, 56.8, 0.328),  # the simulator's pty settings
        (115200, "E", 25.0, 18.9, 0.239),
    ],
)
def test_stale_limit_counts_the_wire_time_of_a_poll(
    baudrate: int, parity: str, hz: float, wire_ms: float, stale_s: float
) -> None:
    link = ModbusRtuLink.model_validate(
        {
            "kind": "modbus_rtu",
            "port": "/dev/x",
            "baudrate": baudrate,
            "parity": parity,
            "telemetry_hz": hz,
        }
    )
    assert link.poll_wire_ms == pytest.approx(wire_ms, abs=0.05)
    assert link.stale_limit_s == pytest.approx(stale_s)


def test_link_errors_name_the_field_and_unknown_kinds_are_listed() -> None:
    data = rtu_profile("/dev/x").model_dump()
    data["link"] = {"kind": "modbus_rtu", "port": "/dev/x", "parity": "O"}
    with pytest.raises(ValidationError) as info:
        Us1Profile.model_validate(data)
    assert [e["loc"] for e in info.value.errors()] == [("link", "parity")]
    data["link"] = {"kind": "modbus_udp", "port": "/dev/x"}
    with pytest.raises(ValidationError, match="'modbus_tcp', 'modbus_rtu'"):
        Us1Profile.model_validate(data)


async def test_identify_configure_start_telemetry_and_stop(rtu_sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", rtu_profile(rtu_sim.endpoints["rtu_pty"]))
    _, first = await driver.connect_and_stop()
    assert first.state == "IDLE" and driver.identity is not None
    assert driver.identity.model_code == 0x5531 and driver.identity.serial == 21_000_001
    assert first.watchdog_ms == 400  # written on connect
    driver.start()
    async with core_heartbeats(driver):
        driver.request_configure(SETTINGS)
        await wait_for(lambda: driver.latest and driver.latest.frequency_khz == 3000)
        driver.request_start()
        await wait_for(lambda: driver.latest and driver.latest.state == "RUNNING")
        assert await readings_in_one_second(driver) >= 20
        assert state(rtu_sim) == "RUNNING"  # the heartbeats kept the 400 ms watchdog fed
        driver.request_stop()
        await wait_for(lambda: driver.latest and not driver.latest.running)
        assert state(rtu_sim) == "IDLE"
    await driver.close()


async def test_identify_reads_without_writing(rtu_sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", rtu_profile(rtu_sim.endpoints["rtu_pty"], watchdog_ms=400))
    reading = await driver.identify()
    await driver.close()
    assert reading.state == "IDLE" and reading.watchdog_ms == 1000  # the boot value, untouched
    assert driver.stop_pending  # nothing was sent


async def test_dropped_link_reconnects(rtu_sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", rtu_profile(rtu_sim.endpoints["rtu_pty"]))
    await driver.connect_and_stop()
    driver.start()
    try:
        await wait_for(lambda: driver.connected)
        rtu_sim.request({"op": "link", "mode": "drop"})
        await wait_for(lambda: not driver.connected, 3)
        assert driver.last_error is not None
        stale_from = driver.latest.received_mono_s if driver.latest else 0.0
        rtu_sim.request({"op": "link", "mode": "ok"})
        await wait_for(lambda: driver.connected and fresher(driver, stale_from), 5)
    finally:
        await driver.close()


async def test_one_lost_reply_is_read_again_on_the_same_link(rtu_sim: SimProcess) -> None:
    """A reply lost once (a flipped bit fails the CRC) costs one request timeout, not a
    reconnect: telemetry stays inside the stale limit. Two in a row are a lost link."""
    errors: list[str] = []
    driver = Us1ModbusDriver(
        "us1",
        rtu_profile(rtu_sim.endpoints["rtu_pty"], request_timeout_ms=300),
        on_error=lambda _device, message: errors.append(message),
    )
    await driver.connect_and_stop()
    driver.start()
    try:
        await wait_for(lambda: driver.connected and driver.latest is not None)
        assert driver.links_opened == 1
        # Silent for 50 ms: the poll in flight loses its reply, the next one is answered.
        assert rtu_sim.request({"op": "link", "mode": "drop"})["ok"]
        await asyncio.sleep(0.05)
        assert rtu_sim.request({"op": "link", "mode": "ok"})["ok"]
        await wait_for(lambda: any("reading again" in e for e in errors), 3)
        since = time.monotonic()
        await wait_for(lambda: fresher(driver, since), 3)
        assert driver.links_opened == 1 and driver.connected
        # Silent for longer than two request timeouts: a lost link, reconnected.
        assert rtu_sim.request({"op": "link", "mode": "drop"})["ok"]
        await wait_for(lambda: not driver.connected, 3)
        assert rtu_sim.request({"op": "link", "mode": "ok"})["ok"]
        await wait_for(lambda: driver.connected and driver.links_opened >= 2, 5)
    finally:
        await driver.close()


async def test_corrupt_link_is_reported_and_clear_recovers(rtu_sim: SimProcess) -> None:
    errors: list[str] = []
    driver = Us1ModbusDriver(
        "us1",
        rtu_profile(rtu_sim.endpoints["rtu_pty"]),
        on_error=lambda _device, message: errors.append(message),
    )
    await driver.connect_and_stop()
    driver.start()
    try:
        rtu_sim.request({"op": "link", "mode": "corrupt", "rate": 1.0})
        await wait_for(lambda: errors and not driver.connected, 3)
        assert all(message.startswith("us1: ") for message in errors)
        stale_from = driver.latest.received_mono_s if driver.latest else 0.0
        assert rtu_sim.request({"op": "clear"})["ok"]
        await wait_for(lambda: driver.connected and fresher(driver, stale_from), 5)
        assert driver.last_error is None
    finally:
        await driver.close()


async def test_a_late_reply_after_a_reconnect_does_not_end_the_io_task(
    rtu_sim: SimProcess,
) -> None:
    """RTU has no transaction id: replies delayed past the timeout reach the reconnect's
    identity read (a poll's 8 holding registers for 16 input ones). That is a failed link to
    retry, not an exception that ends the I/O task and leaves the unit unsupervised."""
    errors: list[str] = []
    driver = Us1ModbusDriver(
        "us1",
        # The bundled profile's timing: a 250 ms timeout, so a 400 ms late reply lands in
        # the identity read of the reconnect 100 ms later.
        rtu_profile(rtu_sim.endpoints["rtu_pty"], request_timeout_ms=250, telemetry_hz=10.0),
        on_error=lambda _device, message: errors.append(message),
    )
    await driver.connect_and_stop()
    driver.start()
    try:
        for _ in range(2):  # twice: each round is a chance for a late reply to land badly
            assert rtu_sim.request({"op": "link", "mode": "delay", "ms": 400})["ok"]
            await wait_for(lambda: not driver.connected, 3)
            await asyncio.sleep(0.5)  # reconnects while late replies are still arriving
            stale_from = time.monotonic()
            assert rtu_sim.request({"op": "link", "mode": "ok"})["ok"]
            await wait_for(lambda t=stale_from: driver.connected and fresher(driver, t), 5)
        assert errors  # the lost replies were reported
    finally:
        await driver.close()


async def test_stop_goes_out_once_the_link_returns(rtu_sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", rtu_profile(rtu_sim.endpoints["rtu_pty"], watchdog_ms=5000))
    await driver.connect_and_stop()
    driver.request_configure(SETTINGS)
    driver.request_start()
    driver.start()
    async with core_heartbeats(driver):
        await wait_for(lambda: state(rtu_sim) == "RUNNING")
        rtu_sim.request({"op": "link", "mode": "drop"})
        driver.request_stop()
        await asyncio.sleep(0.15)
        assert driver.stop_pending
        rtu_sim.request({"op": "link", "mode": "ok"})
        # Watchdog 5 s: only the driver's stop, sent once the link is back, makes it IDLE.
        await wait_for(lambda: state(rtu_sim) == "IDLE", 5)
        await asyncio.wait_for(driver.wait_stop_taken(), 1)
    await driver.close()


async def test_wrong_unit_id_gets_no_reply(rtu_sim: SimProcess) -> None:
    path = rtu_sim.endpoints["rtu_pty"]
    driver = Us1ModbusDriver("us1", rtu_profile(path, device_id=2))
    with pytest.raises(NoReply, match=rf"no reply from unit id 2 at {path} \(timeout after 1 send"):
        await driver.identify()
    await driver.close()


async def test_missing_port_is_a_clear_error() -> None:
    driver = Us1ModbusDriver("us1", rtu_profile("/dev/ttyUSB_missing_for_test"))
    with pytest.raises(DeviceUnreachable, match=r"cannot open Modbus RTU port /dev/ttyUSB_missing"):
        await driver.connect_and_stop(timeout_s=0.3)
    await driver.close()
