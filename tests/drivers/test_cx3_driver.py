"""The CX-3 driver against the CX-3 simulator on a real mosquitto broker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt

from sessionconsole.drivers.base import DeviceDriver
from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.errors import DeviceUnreachable
from sessionconsole.drivers.tracking import CommandRecord
from sessionconsole.model.combination import Cx3Profile, Cx3ProfileLimits, MqttLink
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for, unique_serial
from sessionconsole.testing.mqtt import Mosquitto
from tests.support import core_heartbeats, wait_for

US = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=100, time_s=300)


def profile(broker: Mosquitto, sim: SimProcess, watchdog_ms: int = 1000) -> Cx3Profile:
    serial = str(sim.endpoints["mqtt"]["root"]).split("/", 1)[1]
    return Cx3Profile(
        kind="cx3",
        name="driver test",
        serial=serial,
        era_cm2=5.0,
        bnr=4.2,
        watchdog_ms=watchdog_ms,
        heartbeat_interval_ms=100,
        link=MqttLink(kind="mqtt", host="127.0.0.1", port=broker.port, keepalive_s=2),
        limits=Cx3ProfileLimits(max_intensity_w_cm2=2.0, max_time_s=900, max_amplitude_ma=40.0),
    )


async def sim_state(sim: SimProcess) -> dict[str, Any]:
    return await sim.arequest({"op": "state"})


async def us_state(sim: SimProcess) -> str:
    return str((await sim_state(sim))["us"]["state"])


def all_acknowledged(driver: Cx3MqttDriver) -> bool:
    return all(r.state in ("acknowledged", "confirmed") for r in driver.commands.values())


async def eventually(predicate: Any, timeout_s: float = 3.0) -> None:
    """Like wait_for, for an async predicate."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_conforms_and_starts_with_a_stop_pending(mosquitto_broker: Mosquitto) -> None:
    sim = cx3_sim_for(mosquitto_broker)  # not started: only its serial is used
    sim.ready = {"endpoints": {"mqtt": {"root": f"cx3/{unique_serial()}"}}}
    driver = Cx3MqttDriver("cx3", profile(mosquitto_broker, sim))
    assert isinstance(driver, DeviceDriver)
    assert driver.stop_pending
    await driver.close()


async def test_connect_and_stop_configure_run_and_stop(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    driver = Cx3MqttDriver("cx3", profile(mosquitto_broker, cx3_sim))
    before, after = await driver.connect_and_stop()
    assert before.ultrasound.state == "IDLE" and after.received_mono_s > before.received_mono_s
    assert driver.status is not None and driver.status.model == "CX-3"
    assert (driver.status.boot, driver.device_online, driver.stop_pending) == (1, True, False)
    assert (await sim_state(cx3_sim))["watchdog"]["timeout_ms"] == 1000
    async with core_heartbeats(driver):
        driver.request_configure_us(US)
        driver.request_start("us")
        await wait_for(lambda: driver.latest and driver.latest.ultrasound.state == "RUNNING")
        await wait_for(lambda: driver.latest.ultrasound.intensity_measured_w_cm2 > 0.3, 4)
        assert driver.latest.ultrasound.intensity_setpoint_w_cm2 == 1.0
        # requested -> acknowledged (reply) -> confirmed (telemetry shows it); a configure
        # has nothing in telemetry to read back, so its reply ends it.
        ops = [(r.op, r.state) for r in driver.commands.values()]
        assert ("configure_us", "confirmed") in ops and ("start", "confirmed") in ops
        driver.request_intensity(1.5)

        def setpoints() -> list[CommandRecord]:
            return [r for r in driver.commands.values() if r.op == "set_intensity"]

        await wait_for(lambda: setpoints() and setpoints()[0].state == "confirmed")
        setpoint = setpoints()[0]
        assert setpoint.confirmed_mono_s is not None
        assert setpoint.acknowledged_mono_s is not None
        assert setpoint.confirmed_mono_s >= setpoint.acknowledged_mono_s
        assert driver.latest.ultrasound.intensity_setpoint_w_cm2 == 1.5
        driver.request_stop()
        assert driver.stop_pending
        await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
        await wait_for(lambda: driver.latest.ultrasound.state == "IDLE")
        stop = [r for r in driver.commands.values() if r.op == "stop"][-1]
        await wait_for(lambda: stop.state == "confirmed")
    assert await us_state(cx3_sim) == "IDLE"
    assert driver.last_error is None
    await driver.close()


async def test_a_refusal_is_reported_with_its_code(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    errors: list[str] = []
    driver = Cx3MqttDriver(
        "cx3", profile(mosquitto_broker, cx3_sim), on_error=lambda _d, m: errors.append(m)
    )
    await driver.connect_and_stop()
    driver.request_watchdog(99)
    driver.request_start("us")  # never configured
    await wait_for(lambda: len(errors) == 2)
    assert errors[0].startswith("cx3: set_watchdog refused by CX3-") and ": RANGE: " in errors[0]
    assert ": NOCFG: " in errors[1]
    refused = [r for r in driver.commands.values() if r.state == "refused"]
    assert [(r.op, r.error) for r in refused] == [("set_watchdog", "RANGE"), ("start", "NOCFG")]
    assert driver.connected
    await driver.close()


async def test_heartbeats_only_when_asked(mosquitto_broker: Mosquitto, cx3_sim: SimProcess) -> None:
    driver = Cx3MqttDriver("cx3", profile(mosquitto_broker, cx3_sim))
    await driver.connect_and_stop()
    base = (await sim_state(cx3_sim))["counters"]["heartbeats"]
    await asyncio.sleep(0.4)
    assert (await sim_state(cx3_sim))["counters"]["heartbeats"] == base
    for _ in range(3):
        driver.request_heartbeat()
        await asyncio.sleep(0.05)

    async def three_more() -> bool:
        return bool((await sim_state(cx3_sim))["counters"]["heartbeats"] == base + 3)

    await eventually(three_more)
    await driver.close()


async def test_link_disconnect_is_seen_as_the_last_will_and_the_device_stops(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    errors: list[str] = []
    driver = Cx3MqttDriver(
        "cx3", profile(mosquitto_broker, cx3_sim), on_error=lambda _d, m: errors.append(m)
    )
    await driver.connect_and_stop()
    async with core_heartbeats(driver):
        driver.request_configure_us(US)
        driver.request_start("us")
        await wait_for(lambda: driver.latest and driver.latest.ultrasound.running)
        assert (await cx3_sim.arequest({"op": "link", "mode": "disconnect"}))["ok"]
        await wait_for(lambda: not driver.device_online, 3)
    assert driver.connected  # the broker is fine; the device is not
    assert any("went offline (last will" in e for e in errors)
    state = await sim_state(cx3_sim)
    assert (state["online"], state["us"]["state"], state["us"]["output_active"]) == (
        False,
        "IDLE",
        False,
    )
    assert (await cx3_sim.arequest({"op": "link", "mode": "ok"}))["ok"]
    await wait_for(lambda: driver.device_online, 3)
    assert driver.boot_changes == 0  # the same boot came back
    await driver.close()


async def test_reboot_is_reported_as_a_boot_change(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    errors: list[str] = []
    driver = Cx3MqttDriver(
        "cx3",
        profile(mosquitto_broker, cx3_sim, watchdog_ms=400),
        on_error=lambda _d, m: errors.append(m),
    )
    await driver.connect_and_stop()
    assert await cx3_sim.arequest({"op": "reboot"}) == {"ok": True, "boot": 2}
    await wait_for(lambda: driver.boot_changes == 1 and driver.device_online, 3)
    assert driver.status is not None and driver.status.boot == 2
    assert any("rebooted (boot 1 → 2)" in e for e in errors)
    await wait_for(lambda: any(e.event == "BOOT" for _, e in driver.events), 2)

    async def watchdog_set_again() -> bool:
        return bool((await sim_state(cx3_sim))["watchdog"]["timeout_ms"] == 400)

    await eventually(watchdog_set_again)  # the device forgot it; the driver sets it again
    await driver.close()


async def test_request_ids_unique_across_driver_restarts(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    ids: set[int] = set()
    for _ in range(2):
        driver = Cx3MqttDriver("cx3", profile(mosquitto_broker, cx3_sim))
        await driver.connect_and_stop()
        driver.request_watchdog(1000)
        await wait_for(lambda d=driver: all_acknowledged(d))
        new = set(driver.commands)
        assert not new & ids
        ids |= new
        await driver.close()
    assert (await sim_state(cx3_sim))["counters"]["repeats"] == 0


async def test_unreachable_device_raises_and_keeps_the_stop_pending(
    mosquitto_broker: Mosquitto,
) -> None:
    sim = cx3_sim_for(mosquitto_broker)
    sim.ready = {"endpoints": {"mqtt": {"root": f"cx3/{unique_serial()}"}}}  # never started
    driver = Cx3MqttDriver("cx3", profile(mosquitto_broker, sim))
    try:
        await driver.connect_and_stop(timeout_s=0.5)
    except DeviceUnreachable as exc:
        assert "no online status and telemetry from CX3-" in str(exc)
    else:
        raise AssertionError("connect_and_stop succeeded without a device")
    assert driver.stop_pending and driver.connected
    await driver.close()


async def test_broker_loss_reconnects_and_delivers_a_stop_asked_for_meanwhile() -> None:
    with Mosquitto() as broker, cx3_sim_for(broker) as sim:
        errors: list[str] = []
        driver = Cx3MqttDriver(
            "cx3", profile(broker, sim, watchdog_ms=5000), on_error=lambda _d, m: errors.append(m)
        )
        await driver.connect_and_stop()
        driver.request_configure_us(US)
        driver.request_start("us")
        await wait_for(lambda: driver.latest and driver.latest.ultrasound.state == "RUNNING")
        broker.kill()
        await wait_for(lambda: not driver.connected, 3)
        assert any("connection lost" in e for e in errors)
        driver.request_stop()
        driver.request_start("us")  # dropped: only the stop survives the lost link
        broker.start()  # same port
        await wait_for(lambda: driver.connected and driver.device_online, 6)
        await asyncio.wait_for(driver.wait_stop_taken(), 3.0)
        await wait_for(lambda: driver.latest.ultrasound.state == "IDLE", 2)
        assert await us_state(sim) == "IDLE"
        assert [r.op for r in driver.commands.values()].count("start") == 1
        await driver.close()


async def test_a_setpoint_another_client_wrote_is_reported(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    # Issue #4: the driver reads setpoints back (telemetry) and reports one it did not write;
    # here a second MQTT client publishes a set_intensity to the same unit.
    errors: list[str] = []
    driver = Cx3MqttDriver(
        "cx3", profile(mosquitto_broker, cx3_sim), on_error=lambda _d, m: errors.append(m)
    )
    await driver.connect_and_stop()
    try:
        async with core_heartbeats(driver):
            driver.request_configure_us(US)
            driver.request_start("us")
            await wait_for(lambda: driver.latest and driver.latest.ultrasound.state == "RUNNING")
            await asyncio.sleep(0.3)
            assert driver.setpoint_mismatches == 0, errors
            topic = f"{cx3_sim.endpoints['mqtt']['root']}/cmd"
            command = {"id": 424242, "op": "set_intensity", "args": {"intensity_w_cm2": 1.5}}
            async with aiomqtt.Client("127.0.0.1", mosquitto_broker.port) as other:
                await other.publish(topic, json.dumps(command), qos=1)
            await wait_for(lambda: driver.setpoint_mismatches == 1)
            assert any(
                "holds intensity 1.5 W/cm², but the console wrote 1 W/cm²" in e for e in errors
            )
            await asyncio.sleep(0.3)
            assert driver.setpoint_mismatches == 1  # once per value, not per message
    finally:
        driver.request_stop()
        await driver.close()
