"""The US-1 driver against the simulator over Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient

from sessionconsole.drivers.errors import WrongDevice
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.model.profile import ModbusTcpLink, UltrasoundProfileLimits, Us1Profile
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.testing import SimProcess
from tests.support import core_heartbeats, wait_for

SETTINGS = UltrasoundSettings(frequency_khz=3000, intensity_w_cm2=0.8, duty_pct=20, time_s=120)


def profile(port: int, era_cm2: float = 5.0, watchdog_ms: int = 400) -> Us1Profile:
    return Us1Profile(
        kind="us1",
        name="driver test",
        era_cm2=era_cm2,
        bnr=4.2,
        watchdog_ms=watchdog_ms,
        heartbeat_interval_ms=100,
        link=ModbusTcpLink(kind="modbus_tcp", host="127.0.0.1", port=port, request_timeout_ms=100),
        limits=UltrasoundProfileLimits(max_intensity_w_cm2=2.0, max_time_s=900),
    )


async def test_identify_configure_start_telemetry_and_stop(sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", profile(sim.modbus_tcp[1]))
    _, first = await driver.connect_and_stop()
    assert first.state == "IDLE" and driver.identity is not None
    assert driver.identity.model_code == 0x5531 and driver.identity.era_cm2 == 5.0
    assert first.watchdog_ms == 400  # written on connect
    driver.start()
    async with core_heartbeats(driver):
        driver.request_configure(SETTINGS)
        await wait_for(lambda: driver.latest and driver.latest.frequency_khz == 3000)
        r = driver.latest
        assert r is not None
        assert (r.intensity_setpoint_w_cm2, r.duty_pct, r.time_s) == (0.8, 20, 120)
        driver.request_start()
        await wait_for(lambda: driver.latest and driver.latest.state == "RUNNING")
        # Telemetry at >= 20 Hz: count distinct readings over one second.
        seen: set[float] = set()
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            if driver.latest is not None:
                seen.add(driver.latest.received_mono_s)
            await asyncio.sleep(0.005)
        assert len(seen) >= 20
        driver.request_stop()
        await wait_for(lambda: driver.latest and not driver.latest.running)
        assert sim.request({"op": "state"})["state"] == "IDLE"
    await driver.close()


async def test_heartbeats_go_out_only_when_requested(sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", profile(sim.modbus_tcp[1]))
    await driver.connect_and_stop()
    driver.start()
    try:
        await asyncio.sleep(0.5)
        assert sim.request({"op": "state"})["counters"]["heartbeat_writes"] == 0
        for _ in range(3):
            driver.request_heartbeat()
            await asyncio.sleep(0.05)
        await wait_for(lambda: sim.request({"op": "state"})["counters"]["heartbeat_writes"] == 3)
    finally:
        await driver.close()


async def test_reconnects_after_reboot_and_after_a_dropped_link(sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", profile(sim.modbus_tcp[1]))
    await driver.connect_and_stop()
    driver.start()
    try:
        boot = driver.latest.boot_count if driver.latest else 0
        assert sim.request({"op": "reboot"})["ok"]
        await wait_for(lambda: driver.latest and driver.latest.boot_count == boot + 1, 5)
        assert driver.connected
        sim.request({"op": "link", "mode": "drop"})
        await wait_for(lambda: not driver.connected, 3)
        assert driver.last_error is not None
        stale_from = driver.latest.received_mono_s if driver.latest else 0.0
        sim.request({"op": "link", "mode": "ok"})
        await wait_for(lambda: driver.connected and driver.latest.received_mono_s > stale_from, 5)
    finally:
        await driver.close()


async def test_queued_start_is_not_replayed_after_a_lost_link(sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", profile(sim.modbus_tcp[1]))
    await driver.connect_and_stop()
    driver.request_configure(SETTINGS)
    driver.start()
    try:
        await wait_for(lambda: driver.latest and driver.latest.frequency_khz == 3000)
        sim.request({"op": "link", "mode": "drop"})
        await wait_for(lambda: not driver.connected, 3)
        driver.request_start()  # queued while the link is down
        await asyncio.sleep(0.3)
        sim.request({"op": "link", "mode": "ok"})
        await wait_for(lambda: driver.connected, 5)
        await asyncio.sleep(0.3)
        assert sim.request({"op": "state"})["state"] == "IDLE"
    finally:
        await driver.close()


async def test_stop_goes_out_even_after_the_link_comes_back(sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", profile(sim.modbus_tcp[1], watchdog_ms=5000))
    await driver.connect_and_stop()
    driver.request_configure(SETTINGS)
    driver.request_start()
    driver.start()
    async with core_heartbeats(driver):
        await wait_for(lambda: sim.request({"op": "state"})["state"] == "RUNNING")
        sim.request({"op": "link", "mode": "drop"})
        driver.request_stop()
        await asyncio.sleep(0.15)
        sim.request({"op": "link", "mode": "ok"})
        # Watchdog 5 s: only the driver's stop, sent once the link is back, makes it IDLE.
        await wait_for(lambda: sim.request({"op": "state"})["state"] == "IDLE", 5)
    await driver.close()


async def test_profile_that_disagrees_with_the_head_is_refused(sim: SimProcess) -> None:
    driver = Us1ModbusDriver("us1", profile(sim.modbus_tcp[1], era_cm2=4.0))
    with pytest.raises(WrongDevice, match=r"reports ERA 5\.0 but the profile says 4\.0"):
        await driver.connect_and_stop()
    await driver.close()


async def test_unreachable_port_is_a_clear_error(unused_tcp_port: int) -> None:
    from sessionconsole.drivers.errors import DeviceUnreachable

    driver = Us1ModbusDriver("us1", profile(unused_tcp_port))
    with pytest.raises(
        DeviceUnreachable, match=rf"no Modbus TCP connection to 127\.0\.0\.1:{unused_tcp_port}"
    ):
        await driver.connect_and_stop(timeout_s=0.3)
    await driver.close()


async def test_commands_tracked_from_request_to_confirmation(sim: SimProcess) -> None:
    # Issue #4: every command is tracked requested -> acknowledged -> confirmed by telemetry.
    driver = Us1ModbusDriver("us1", profile(sim.modbus_tcp[1]))
    await driver.connect_and_stop()
    driver.start()
    try:
        async with core_heartbeats(driver):
            driver.request_configure(SETTINGS)
            driver.request_start()
            await wait_for(
                lambda: (
                    [r.state for r in driver.commands.values()][-2:] == ["confirmed", "confirmed"]
                )
            )
            configure, start = list(driver.commands.values())[-2:]
            assert (configure.op, start.op) == ("configure", "start")
            assert configure.acknowledged_mono_s is not None
            assert configure.confirmed_mono_s is not None
            assert configure.requested_mono_s <= configure.acknowledged_mono_s
            assert configure.acknowledged_mono_s <= configure.confirmed_mono_s
            driver.request_configure(SETTINGS)  # the ICD refuses setpoints 0, 2-4 while active
            await wait_for(lambda: list(driver.commands.values())[-1].state == "refused")
            refused = list(driver.commands.values())[-1]
            assert refused.error == "REJECTED" and "exception 06" in (refused.detail or "")
            driver.request_stop()
            await wait_for(lambda: list(driver.commands.values())[-1].state == "confirmed")
            assert list(driver.commands.values())[-1].op == "stop"
    finally:
        await driver.close()


async def test_a_setpoint_the_console_did_not_write_is_reported(sim: SimProcess) -> None:
    # Issue #4: the driver reads back setpoints and reports any the device holds that the
    # console did not write (here another Modbus master changes the intensity).
    errors: list[str] = []
    driver = Us1ModbusDriver(
        "us1", profile(sim.modbus_tcp[1]), on_error=lambda _d, m: errors.append(m)
    )
    await driver.connect_and_stop()
    driver.start()
    other = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_tcp[1], timeout=0.5, retries=0)
    try:
        driver.request_configure(SETTINGS)
        await wait_for(lambda: driver.latest and driver.latest.frequency_khz == 3000)
        await asyncio.sleep(0.2)
        assert driver.setpoint_mismatches == 0, errors
        assert await other.connect()
        assert not (await other.write_register(1, 150, device_id=1)).isError()
        await wait_for(lambda: driver.setpoint_mismatches == 1)
        assert any(
            "holds intensity (0.01 W/cm²) 150, but the console wrote 80" in e for e in errors
        )
        await asyncio.sleep(0.3)
        assert driver.setpoint_mismatches == 1  # reported once, not every poll
    finally:
        other.close()
        await driver.close()
