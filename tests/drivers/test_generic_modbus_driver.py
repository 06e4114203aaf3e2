"""The generic Modbus driver against the US-1 simulator: the ICD map and the vendor-b layout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from sessionconsole.drivers.errors import WrongDevice
from sessionconsole.drivers.generic_modbus import GenericModbusDriver
from sessionconsole.drivers.modbus_transport import NoReply
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.testing import SimProcess
from tests.drivers.generic_profiles import bundled
from tests.drivers.test_us1_driver import SETTINGS
from tests.drivers.test_us1_driver import profile as us1_profile
from tests.support import core_heartbeats, wait_for


@pytest.fixture
def vendor_b() -> Iterator[SimProcess]:
    """The US-1 simulator serving the vendor-b register layout (unit id 7)."""
    with SimProcess("us1", ["--layout", "vendor-b"]) as process:
        yield process


def endpoint(sim: SimProcess) -> str:
    return str(sim.endpoints["modbus_tcp"])


@pytest.mark.parametrize("layout", ["icd", "vendor-b"])
async def test_configure_start_track_and_stop(
    layout: str, sim: SimProcess, vendor_b: SimProcess
) -> None:
    unit, file = (
        (sim, "us1-generic.toml") if layout == "icd" else (vendor_b, "vendor-b-ultrasound.toml")
    )
    driver = GenericModbusDriver("g", bundled(file, endpoint(unit)))
    try:
        _, first = await driver.connect_and_stop()
        assert first.state == "IDLE" and first.watchdog_ms == 400  # written on connect
        assert driver.identity is not None and driver.identity.serial == 21000001
        driver.start()
        async with core_heartbeats(driver):
            driver.request_configure(SETTINGS)
            driver.request_start()
            await wait_for(lambda: driver.latest and driver.latest.intensity_measured_w_cm2 > 0.3)
            r = driver.latest
            assert r is not None and (r.frequency_khz, r.duty_pct, r.time_s) == (3000, 20, 120)
            assert r.intensity_setpoint_w_cm2 == 0.8 and r.state == "RUNNING" and r.output_active
            state = unit.request({"op": "state"})
            assert state["holding"][:3] == [3000, 80, 20]  # the same unit, whatever the map
            driver.request_stop()
            await wait_for(lambda: driver.latest and not driver.latest.output_active)
        await wait_for(lambda: all(c.state == "confirmed" for c in driver.commands.values()))
        assert [c.op for c in driver.commands.values()] == ["stop", "configure", "start", "stop"]
    finally:
        await driver.close()


async def test_a_setpoint_outside_the_map_is_refused_without_a_write(sim: SimProcess) -> None:
    driver = GenericModbusDriver("g", bundled("us1-generic.toml", endpoint(sim)))
    try:
        await driver.connect_and_stop()
        driver.request_intensity(3.5)
        (record,) = [c for c in driver.commands.values() if c.op == "intensity"]
        assert record.state == "refused"
        assert record.detail == "intensity_setpoint: 3.5 W/cm² is outside 0..3"
        assert driver.last_error == "g: intensity not sent: " + record.detail
        assert not driver._writes  # nothing reaches the wire
    finally:
        await driver.close()


async def test_a_refused_write_is_tracked_with_the_exception(sim: SimProcess) -> None:
    driver = GenericModbusDriver("g", bundled("us1-generic.toml", endpoint(sim), watchdog_ms=5000))
    try:
        await driver.connect_and_stop()
        driver.start()
        driver.request_configure(SETTINGS)
        driver.request_start()
        await wait_for(lambda: driver.latest and driver.latest.state == "RUNNING")
        driver.request_configure(SETTINGS)  # frequency cannot change while running: exception 06
        await wait_for(lambda: any(c.state == "refused" for c in driver.commands.values()))
        refused = [c for c in driver.commands.values() if c.state == "refused"]
        assert [(c.op, c.error) for c in refused] == [("configure", "exception 06")]
        assert driver.connected  # a refusal does not drop the link
    finally:
        await driver.close()


async def test_the_wrong_unit_is_refused_by_its_identity(vendor_b: SimProcess) -> None:
    profile = bundled("vendor-b-ultrasound.toml", endpoint(vendor_b))
    profile = profile.model_copy(
        update={"identity": profile.identity.model_copy(update={"expected": 0x5531})}  # type: ignore[union-attr]
    )
    driver = GenericModbusDriver("g", profile)
    try:
        with pytest.raises(
            WrongDevice, match=r"model_code 0x5642 at 127\.0\.0\.1:\d+, expected 0x5531"
        ):
            await driver.connect_and_stop(timeout_s=0.5)
    finally:
        await driver.close()


async def test_era_in_the_profile_must_match_the_head(sim: SimProcess) -> None:
    driver = GenericModbusDriver("g", bundled("us1-generic.toml", endpoint(sim), era_cm2=4.0))
    try:
        with pytest.raises(WrongDevice, match="reports ERA 5 but the profile says 4"):
            await driver.connect_and_stop(timeout_s=0.5)
    finally:
        await driver.close()


async def test_vendor_b_answers_only_its_unit_id(vendor_b: SimProcess) -> None:
    profile = bundled("vendor-b-ultrasound.toml", endpoint(vendor_b))
    link = profile.link.model_copy(update={"device_id": 1})
    driver = GenericModbusDriver("g", profile.model_copy(update={"link": link}))
    try:
        with pytest.raises(NoReply, match="no reply from unit id 1 at"):
            await driver.connect_and_stop(timeout_s=0.3)
    finally:
        await driver.close()


async def test_a_setpoint_another_master_wrote_is_reported(sim: SimProcess) -> None:
    # Issue #4 / SETPOINT_NOT_WRITTEN for units described by a profile: the generic driver
    # compares what it wrote with every poll and reports, once per value, what it did not.
    errors: list[str] = []
    driver = GenericModbusDriver(
        "g", bundled("us1-generic.toml", endpoint(sim)), on_error=lambda _d, m: errors.append(m)
    )
    other = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_tcp[1], timeout=0.5, retries=0)
    try:
        await driver.connect_and_stop()
        driver.start()
        driver.request_configure(SETTINGS)
        await wait_for(lambda: driver.latest and driver.latest.intensity_setpoint_w_cm2 == 0.8)
        await asyncio.sleep(0.2)
        assert driver.setpoint_mismatches == 0, errors
        assert await other.connect()
        assert not (await other.write_register(1, 150, device_id=1)).isError()
        await wait_for(lambda: driver.setpoint_mismatches == 1)
        assert any(
            "holds intensity_setpoint_w_cm2 1.5, but the console wrote 0.8" in e for e in errors
        )
        await asyncio.sleep(0.3)
        assert driver.setpoint_mismatches == 1  # once per value, not every poll
    finally:
        other.close()
        await driver.close()


@contextlib.asynccontextmanager
async def configured(
    kind: str, sim: SimProcess
) -> AsyncIterator[tuple[GenericModbusDriver | Us1ModbusDriver, list[str]]]:
    """The generic driver on the ICD map, or the dedicated US-1 driver, connected, fed
    heartbeats and configured; yields it with the errors it reported."""
    errors: list[str] = []
    report = lambda _d, m: errors.append(m)  # noqa: E731
    driver: GenericModbusDriver | Us1ModbusDriver
    if kind == "generic":
        profile = bundled("us1-generic.toml", endpoint(sim), watchdog_ms=5000)
        driver = GenericModbusDriver("m", profile, on_error=report)
    else:
        us1 = us1_profile(sim.modbus_tcp[1], watchdog_ms=5000)
        driver = Us1ModbusDriver("m", us1, on_error=report)
    try:
        await driver.connect_and_stop()
        driver.start()
        async with core_heartbeats(driver):
            driver.request_configure(SETTINGS)
            await wait_for(lambda: driver.latest and driver.latest.intensity_setpoint_w_cm2 == 0.8)
            yield driver, errors
    finally:
        await driver.close()


@pytest.mark.parametrize("kind", ["generic", "us1"])
async def test_a_stop_the_readings_never_show_is_reported(kind: str, sim: SimProcess) -> None:
    # Issue #4: commands are tracked with timeouts, and the end of one is heard. A stuck relay
    # takes the stop but the output stays on: the stop ends `unconfirmed` and is reported.
    async with configured(kind, sim) as (driver, errors):
        driver.request_start()
        await wait_for(lambda: driver.latest and driver.latest.output_active)
        await sim.arequest({"op": "inject", "fault": "ignore_stop"})
        driver.request_stop()
        await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
        await wait_for(lambda: ("stop", "unconfirmed") in states(driver), 4)
        assert any("stop was acknowledged but no reading showed it" in e for e in errors)
        await sim.arequest({"op": "clear"})


@pytest.mark.parametrize("kind", ["generic", "us1"])
async def test_a_start_stopped_before_it_showed_is_superseded_not_reported(
    kind: str, sim: SimProcess
) -> None:
    async with configured(kind, sim) as (driver, errors):
        driver.request_start()
        driver.request_stop()  # in the same turn: the start never shows
        await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
        await wait_for(lambda: ("stop", "confirmed") in states(driver)[1:], 3)
        await asyncio.sleep(2.5)  # past the confirmation deadline
        assert ("start", "refused") in states(driver)
        assert [c.error for c in driver.commands.values() if c.op == "start"] == ["SUPERSEDED"]
        assert not any("no reading showed it" in e for e in errors), errors


def states(driver: GenericModbusDriver | Us1ModbusDriver) -> list[tuple[str, str]]:
    return [(c.op, c.state) for c in driver.commands.values()]
