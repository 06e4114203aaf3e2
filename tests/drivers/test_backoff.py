"""Reconnects back off: a unit that takes the connection and drops it at once is not hammered.

A loopback server accepts each connection and closes it; whatever the driver then tries
(an identity read, an MQTT CONNECT, an `ID?` frame) fails, and the driver must wait longer
before each new attempt (0.1 s doubling to 2 s, `drivers/base.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.es2_serial import Es2SerialDriver
from sessionconsole.drivers.generic_modbus import GenericModbusDriver
from sessionconsole.drivers.generic_mqtt import GenericMqttDriver
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.model.combination import Cx3Profile, Cx3ProfileLimits, MqttLink
from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import read_toml
from tests.drivers import test_es2_driver, test_us1_driver
from tests.drivers.generic_profiles import bundled

ATTEMPTS = 6  # the gaps between them: about 0.1, 0.2, 0.4, 0.8, 1.6 s plus the failing


def cx3_profile(port: int) -> Cx3Profile:
    return Cx3Profile(
        kind="cx3",
        name="backoff test",
        serial="CX3-0001",
        era_cm2=5.0,
        bnr=4.2,
        watchdog_ms=1000,
        heartbeat_interval_ms=100,
        link=MqttLink(kind="mqtt", host="127.0.0.1", port=port, keepalive_s=2),
        limits=Cx3ProfileLimits(max_intensity_w_cm2=2.0, max_time_s=900, max_amplitude_ma=40.0),
    )


def generic_mqtt_profile(port: int) -> GenericMqttProfile:
    data = read_toml(config_dir() / "profiles" / "cx3-generic.toml")
    data["link"]["port"] = port
    return GenericMqttProfile.model_validate(data)


def make_driver(kind: str, port: int) -> Any:
    if kind == "us1":
        return Us1ModbusDriver("d", test_us1_driver.profile(port))
    if kind == "generic-modbus":
        return GenericModbusDriver("d", bundled("us1-generic.toml", f"127.0.0.1:{port}"))
    if kind == "es2-socket":
        return Es2SerialDriver("d", test_es2_driver.profile(f"socket://127.0.0.1:{port}"))
    if kind == "cx3":
        return Cx3MqttDriver("d", cx3_profile(port))
    return GenericMqttDriver("d", generic_mqtt_profile(port))


@pytest.mark.parametrize("kind", ["us1", "generic-modbus", "es2-socket", "cx3", "generic-mqtt"])
async def test_reconnect_attempts_back_off(kind: str) -> None:
    accepted: list[float] = []
    enough = asyncio.Event()

    async def accept_and_drop(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        writer.close()
        if len(accepted) >= ATTEMPTS:
            enough.set()

    server = await asyncio.start_server(accept_and_drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    driver = make_driver(kind, port)
    try:
        driver.start()
        async with asyncio.timeout(15.0):  # a liveness bound only
            await enough.wait()
    finally:
        await driver.close()
        server.close()
    assert len(accepted) >= ATTEMPTS, accepted
    gaps = [b - a for a, b in itertools.pairwise(accepted[:ATTEMPTS])]
    # Each gap is the failing attempt (about 0 for a dropped Modbus or ES-2 link, about 2 s
    # for an MQTT CONNECT left unanswered) plus the wait. The waits double from 0.1 s, so
    # the gaps grow by 0.3 s from the first to the third and by 1.2 s more to the fifth; a
    # fixed retry would keep them level. Half of each growth is required (noisy machine).
    assert gaps[2] - gaps[0] > 0.15, gaps
    assert gaps[4] - gaps[2] > 0.6, gaps
    assert driver.last_error, "the failed attempts were not reported"
