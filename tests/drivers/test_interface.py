"""Every driver offers the interface the core relies on (drivers/base.py)."""

from __future__ import annotations

import pytest

from sessionconsole.drivers.base import DeviceDriver
from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.es2_serial import Es2SerialDriver
from sessionconsole.drivers.generic_modbus import GenericModbusDriver
from sessionconsole.drivers.generic_mqtt import GenericMqttDriver
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import read_toml
from sessionconsole.model.validation import PROFILE_KINDS


@pytest.mark.parametrize(
    ("driver_class", "profile_file"),
    [
        (Us1ModbusDriver, "us1-tcp.toml"),
        (Us1ModbusDriver, "us1-rtu.toml"),
        (Es2SerialDriver, "es2-serial.toml"),
        (Cx3MqttDriver, "cx3-mqtt.toml"),
        (GenericModbusDriver, "us1-generic.toml"),
        (GenericModbusDriver, "vendor-b-ultrasound.toml"),
        (GenericMqttDriver, "cx3-generic.toml"),
    ],
)
async def test_driver_conforms_and_starts_with_a_stop_pending(
    driver_class: type, profile_file: str
) -> None:
    data = read_toml(config_dir() / "profiles" / profile_file)
    profile = PROFILE_KINDS[data["kind"]].model_validate(data)
    driver = driver_class("dev", profile)
    assert isinstance(driver, DeviceDriver)
    assert driver.stop_pending  # the first write once the unit is reached is a stop
    await driver.close()
