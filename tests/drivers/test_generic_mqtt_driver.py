"""The generic MQTT driver, run on `cx3-generic.toml`, against the CX-3 simulator on mosquitto."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Callable
from typing import Any

import aiomqtt
import pytest

from sessionconsole.drivers.base import DeviceDriver
from sessionconsole.drivers.errors import DeviceUnreachable, WrongDevice
from sessionconsole.drivers.generic_mqtt import GenericMqttDriver
from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.paths import config_dir
from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for, unique_serial
from sessionconsole.testing.mqtt import Mosquitto
from tests.drivers.test_cx3_driver import US, eventually, sim_state, us_state
from tests.support import core_heartbeats, wait_for

PROFILE_FILE = config_dir() / "profiles" / "cx3-generic.toml"
Edit = Callable[[dict[str, Any]], None]


def profile(
    broker: Mosquitto, sim: SimProcess, watchdog_ms: int = 1000, edit: Edit | None = None
) -> GenericMqttProfile:
    """The bundled CX-3 generic profile, pointed at `broker` and the simulator's serial."""
    with PROFILE_FILE.open("rb") as fh:
        data = tomllib.load(fh)
    data["serial"] = str(sim.endpoints["mqtt"]["root"]).split("/", 1)[1]
    data["watchdog_ms"] = watchdog_ms
    data["link"].update(port=broker.port, keepalive_s=2)
    if edit is not None:
        edit(data)
    return GenericMqttProfile.model_validate(data)


class Errors(list[str]):
    """Collects a driver's error reports."""

    def __call__(self, _device: str, message: str) -> None:
        self.append(message)


def make(
    broker: Mosquitto, sim: SimProcess, watchdog_ms: int = 1000, edit: Edit | None = None
) -> tuple[GenericMqttDriver, Errors]:
    errors = Errors()
    driver = GenericMqttDriver("gx", profile(broker, sim, watchdog_ms, edit), on_error=errors)
    return driver, errors


def states(driver: GenericMqttDriver) -> list[tuple[str, str]]:
    return [(r.op, r.state) for r in driver.commands.values()]


def unstarted(broker: Mosquitto) -> SimProcess:
    """A simulator that is never started: only its serial is used."""
    sim = cx3_sim_for(broker)
    sim.ready = {"endpoints": {"mqtt": {"root": f"cx3/{unique_serial()}"}}}
    return sim


async def test_conforms_and_starts_with_a_stop_pending(mosquitto_broker: Mosquitto) -> None:
    driver, _ = make(mosquitto_broker, unstarted(mosquitto_broker))
    assert isinstance(driver, DeviceDriver)
    assert driver.stop_pending and not driver.connected
    assert driver.topics["command"].endswith("/cmd")
    await driver.close()


async def test_configure_run_and_stop_each_command_confirmed_by_telemetry(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    driver, errors = make(mosquitto_broker, cx3_sim)
    before, after = await driver.connect_and_stop()
    assert before.ultrasound.state == "IDLE" and after.received_mono_s > before.received_mono_s
    assert driver.status is not None and (driver.status.model, driver.status.boot) == ("CX-3", 1)
    assert (await sim_state(cx3_sim))["watchdog"]["timeout_ms"] == 1000
    async with core_heartbeats(driver):
        driver.request_configure_us(US)
        driver.request_start("us")
        await wait_for(lambda: driver.latest and driver.latest.ultrasound.state == "RUNNING")
        await wait_for(lambda: driver.latest.ultrasound.intensity_measured_w_cm2 > 0.3, 4)
        driver.request_intensity(0.5)
        await wait_for(lambda: ("set_intensity", "confirmed") in states(driver))
        assert ("configure_us", "confirmed") in states(driver)
        assert ("start", "confirmed") in states(driver)
        driver.request_stop()
        await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
        await wait_for(lambda: states(driver)[-1] == ("stop", "confirmed"))
    assert await us_state(cx3_sim) == "IDLE"
    assert ("set_watchdog", "confirmed") in states(driver)  # acknowledged is its end
    assert errors == [] and driver.last_error is None and driver.bad_payloads == 0
    await driver.close()


async def test_stimulation_in_combination_mode(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    from tests.drivers.test_es2_driver import SETTINGS as STIM

    driver, errors = make(mosquitto_broker, cx3_sim)
    await driver.connect_and_stop()
    async with core_heartbeats(driver):
        driver.request_configure_stim(STIM, "PADS")
        driver.request_amplitude(10.0)
        driver.request_start("stim")
        await wait_for(lambda: driver.latest and driver.latest.stimulation.running, 3)
        await wait_for(lambda: ("set_amplitude", "confirmed") in states(driver), 3)
        assert driver.latest.stimulation.mode == STIM.mode
        assert driver.latest.stimulation.electrode == "PADS"
        driver.request_stop()
        await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
    assert errors == []
    await driver.close()


async def test_a_refusal_is_reported_with_its_code(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    driver, errors = make(mosquitto_broker, cx3_sim)
    await driver.connect_and_stop()
    driver.request_watchdog(99)
    driver.request_start("us")  # never configured
    await wait_for(lambda: len(errors) == 2)
    assert errors[0].startswith("gx: set_watchdog refused by CX3-") and ": RANGE: " in errors[0]
    assert ": NOCFG: " in errors[1]
    refused = [(r.op, r.error) for r in driver.commands.values() if r.state == "refused"]
    assert refused == [("set_watchdog", "RANGE"), ("start", "NOCFG")]
    await driver.close()


async def test_an_op_the_profile_lacks_is_refused_before_anything_is_sent(
    mosquitto_broker: Mosquitto,
) -> None:
    def no_stim(data: dict[str, Any]) -> None:
        del data["commands"]["configure_stim"], data["commands"]["set_amplitude"]

    errors: list[str] = []
    driver, _ = make(mosquitto_broker, unstarted(mosquitto_broker), edit=no_stim)
    driver.on_error = lambda _d, message: errors.append(message)
    driver.request_amplitude(5.0)  # called from the controller's tick: must never raise
    [record] = list(driver.commands.values())
    assert (record.op, record.state, record.error) == ("set_amplitude", "refused", "not_mapped")
    assert errors and "maps no set_amplitude" in errors[0]
    assert not driver._queue  # nothing will be published
    await driver.close()


async def test_heartbeats_only_when_asked(mosquitto_broker: Mosquitto, cx3_sim: SimProcess) -> None:
    driver, _ = make(mosquitto_broker, cx3_sim)
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
    assert driver.heartbeats_sent == 3
    await driver.close()


async def test_the_last_will_is_seen_and_the_same_boot_comes_back(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    driver, errors = make(mosquitto_broker, cx3_sim)
    await driver.connect_and_stop()
    async with core_heartbeats(driver):
        driver.request_configure_us(US)
        driver.request_start("us")
        await wait_for(lambda: driver.latest and driver.latest.ultrasound.running)
        assert (await cx3_sim.arequest({"op": "link", "mode": "disconnect"}))["ok"]
        await wait_for(lambda: not driver.device_online, 3)
    assert driver.connected  # the broker is fine; the unit is not
    assert any("went offline (last will" in e for e in errors)
    assert (await sim_state(cx3_sim))["us"]["output_active"] is False
    assert (await cx3_sim.arequest({"op": "link", "mode": "ok"}))["ok"]
    await wait_for(lambda: driver.device_online, 3)
    assert driver.boot_changes == 0
    await driver.close()


async def test_reboot_by_boot_counter(mosquitto_broker: Mosquitto, cx3_sim: SimProcess) -> None:
    driver, errors = make(mosquitto_broker, cx3_sim, watchdog_ms=400)
    await driver.connect_and_stop()
    assert await cx3_sim.arequest({"op": "reboot"}) == {"ok": True, "boot": 2}
    await wait_for(lambda: driver.boot_changes == 1 and driver.device_online, 3)
    assert any("rebooted (boot 1 → 2)" in e for e in errors)
    await wait_for(lambda: any(e.event == "BOOT" for _, e in driver.events), 2)

    async def watchdog_set_again() -> bool:
        return bool((await sim_state(cx3_sim))["watchdog"]["timeout_ms"] == 400)

    await eventually(watchdog_set_again)
    await asyncio.sleep(0.3)
    assert driver.boot_changes == 1  # the BOOT event is not counted twice
    await driver.close()


async def test_reboot_by_boot_event_when_the_status_has_no_counter(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    def event_only(data: dict[str, Any]) -> None:
        del data["boot"]["status_field"]

    driver, errors = make(mosquitto_broker, cx3_sim, watchdog_ms=400, edit=event_only)
    await driver.connect_and_stop()
    assert driver.status is not None and driver.status.boot is None
    await cx3_sim.arequest({"op": "reboot"})
    await wait_for(lambda: driver.boot_changes == 1 and driver.device_online, 3)
    assert any("rebooted (boot event)" in e for e in errors)

    async def watchdog_set_again() -> bool:
        return bool((await sim_state(cx3_sim))["watchdog"]["timeout_ms"] == 400)

    await eventually(watchdog_set_again)
    await driver.close()


async def test_request_ids_unique_across_driver_restarts(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    ids: set[int] = set()
    for _ in range(2):
        driver, _ = make(mosquitto_broker, cx3_sim)
        await driver.connect_and_stop()
        driver.request_watchdog(1000)
        await wait_for(lambda d=driver: all(r.state == "confirmed" for r in d.commands.values()))
        new = set(driver.commands)
        assert new and not new & ids
        ids |= new
        await driver.close()
    assert (await sim_state(cx3_sim))["counters"]["repeats"] == 0


async def test_a_profile_naming_another_model_is_refused(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    def cx4(data: dict[str, Any]) -> None:
        data["status"]["model_value"] = "CX-4"

    driver, _ = make(mosquitto_broker, cx3_sim, edit=cx4)
    with pytest.raises(WrongDevice, match="says model 'CX-3', not 'CX-4'"):
        await driver.connect_and_stop()
    await driver.close()


async def test_unreachable_unit_raises_and_keeps_the_stop_pending(
    mosquitto_broker: Mosquitto,
) -> None:
    driver, _ = make(mosquitto_broker, unstarted(mosquitto_broker))
    with pytest.raises(DeviceUnreachable, match="no online status and telemetry from CX3-"):
        await driver.connect_and_stop(timeout_s=0.5)
    assert driver.stop_pending and driver.connected
    await driver.close()


async def test_a_stop_the_telemetry_never_shows_is_reported(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    driver, errors = make(mosquitto_broker, cx3_sim, watchdog_ms=5000)
    await driver.connect_and_stop()
    async with core_heartbeats(driver):
        driver.request_configure_us(US)
        driver.request_start("us")
        await wait_for(lambda: driver.latest.ultrasound.intensity_measured_w_cm2 > 0.3, 4)
        await cx3_sim.arequest({"op": "inject", "fault": "ignore_stop"})
        driver.request_stop()
        await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
        await wait_for(lambda: ("stop", "unconfirmed") in states(driver), 3)
        assert any("stop (id" in e and "never showed it" in e for e in errors)
        await cx3_sim.arequest({"op": "clear"})
        driver.request_stop()
        await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
    await driver.close()


async def test_broker_loss_reconnects_and_delivers_only_the_stop() -> None:
    with Mosquitto() as broker, cx3_sim_for(broker) as sim:
        driver, errors = make(broker, sim, watchdog_ms=5000)
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
    # SETPOINT_NOT_WRITTEN for units described by an mqtt_generic profile: the driver
    # compares what the unit accepted from it with the setpoints telemetry carries.
    driver, errors = make(mosquitto_broker, cx3_sim, watchdog_ms=5000)
    await driver.connect_and_stop()
    try:
        async with core_heartbeats(driver):
            driver.request_configure_us(US)
            driver.request_start("us")
            await wait_for(lambda: driver.latest and driver.latest.ultrasound.state == "RUNNING")
            await asyncio.sleep(0.3)
            assert driver.setpoint_mismatches == 0
            topic = f"{cx3_sim.endpoints['mqtt']['root']}/cmd"
            command = {"id": 434343, "op": "set_intensity", "args": {"intensity_w_cm2": 1.5}}
            async with aiomqtt.Client("127.0.0.1", mosquitto_broker.port) as other:
                await other.publish(topic, json.dumps(command), qos=1)
            await wait_for(lambda: driver.setpoint_mismatches == 1)
            assert any("holds intensity_w_cm2 1.5, but the console wrote 1" in e for e in errors)
            await asyncio.sleep(0.3)
            assert driver.setpoint_mismatches == 1
    finally:
        driver.request_stop()
        await driver.close()
