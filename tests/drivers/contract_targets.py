"""One adapter per driver and transport for the driver contract suite (`test_contract.py`).

An adapter knows how to start its simulator, build the profile (with the builders of the
per-driver tests), make the driver, connect it, start one output, and read — from the
simulator's test port and from the driver's telemetry — whether that output is on. The
contract cases themselves know nothing about a device family.

Per-target notes, where the ICDs make the targets differ:
- Delayed replies (`link delay` 150 ms). The US-1 ICD fixes no reply timeout: it is the
  profile's `request_timeout_ms`, which the contract sets to 400 ms, above the delay, so the
  driver must keep working. The CX-3 ICD fixes none either; the driver waits 1 s for a reply,
  so it keeps working too. The ES-2 ICD fixes the console's wait at 50 ms and at most three
  sends: a reply 150 ms late arrives no earlier than the end of the third silence, so every
  request races the link-loss timeout and within a few requests the link counts as lost
  ("no reply ... after 3 sends", `delay_loses_link`); the driver reconnects after `clear`.
- A dropped link. The serial and Modbus drivers notice through their own requests (no reply:
  `connected` False and `last_error` set). A CX-3 that falls silent leaves the broker link up
  (`connected` stays True, no last will fires), so the driver notices through its command
  tracking: the stop it publishes gets no reply and is marked `timed_out` (it is published
  again, with a new id, every 0.5 s until the device answers).
- Watchdogs. The longest each ICD allows is used where only a stop may explain the output
  going off: US-1 and CX-3 5000 ms, ES-2 2000 ms. The cases also assert that the device's
  watchdog did not trip.
- Generic Modbus targets run the generic driver from a register-map profile: the US-1 map
  (`us1-generic.toml`) against the standard simulator over TCP and RTU, and the vendor-b map
  against `--layout vendor-b` (unit id 7, holding registers only). Same unit, same test port.
- Reboots. Every ICD says the unit forgets its settings at boot, so the reboot case also checks
  that the driver writes the profile's watchdog again (a TCP reconnect does it anyway; the
  US-1 over RTU and the ES-2 keep their link through a reboot and must do it on purpose).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.es2_serial import Es2SerialDriver
from sessionconsole.drivers.generic_modbus import GenericModbusDriver
from sessionconsole.drivers.generic_mqtt import GenericMqttDriver
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for
from sessionconsole.testing.es2 import ES2_ARGS
from sessionconsole.testing.mqtt import Mosquitto
from tests.drivers import (
    generic_profiles,
    test_cx3_driver,
    test_es2_driver,
    test_us1_driver,
    test_us1_driver_rtu,
)
from tests.drivers.test_generic_mqtt_driver import profile as generic_profile

Driver = Us1ModbusDriver | GenericModbusDriver | Es2SerialDriver | Cx3MqttDriver
OnError = Callable[[str, str], None]

TARGET_IDS = (
    "us1-tcp",
    "us1-rtu",
    "generic-us1-tcp",
    "generic-us1-rtu",
    "generic-vendorb-tcp",
    "es2-pty",
    "es2-socket",
    "cx3-mqtt",
    "generic-cx3-mqtt",
)
GENERIC_TARGETS = {  # target -> (profile file, simulator arguments, endpoint)
    "generic-us1-tcp": ("us1-generic.toml", [], "modbus_tcp"),
    "generic-us1-rtu": ("us1-generic.toml", ["--rtu-pty"], "rtu_pty"),
    "generic-vendorb-tcp": ("vendor-b-ultrasound.toml", ["--layout", "vendor-b"], "modbus_tcp"),
}
US1_REQUEST_TIMEOUT_MS = 400  # above the contract's 150 ms delay; the US-1 ICD fixes none


@dataclass
class Target:
    """Base adapter: the simulator of one target and what every family shares."""

    name: str
    sim: SimProcess
    long_watchdog_ms: int = 5000
    delay_loses_link: bool = False
    errors: list[str] = field(default_factory=list)

    def make_driver(self, watchdog_ms: int = 1000) -> Any:
        """A new driver for the simulated unit, reporting errors into `self.errors`."""
        raise NotImplementedError

    async def connect(self, driver: Any) -> bool:
        """`connect_and_stop` and start the I/O task; whether the output was on before."""
        raise NotImplementedError

    def start_output(self, driver: Any) -> None:
        """Configure and start the target's output."""
        raise NotImplementedError

    def sim_output_on(self, state: dict[str, Any]) -> bool:
        """From the test port's `state`: is the output stage driving?"""
        raise NotImplementedError

    def sim_watchdog_tripped(self, state: dict[str, Any]) -> bool:
        """From the test port's `state`: did the device's watchdog stop the output?"""
        raise NotImplementedError

    def heartbeats(self, state: dict[str, Any]) -> int:
        """The simulator's count of heartbeats received."""
        raise NotImplementedError

    def sim_watchdog_ms(self, state: dict[str, Any]) -> int:
        """From the test port's `state`: the device's watchdog timeout."""
        return int(state["watchdog"]["timeout_ms"])

    def measured(self, driver: Any) -> float:
        """The measured output in the driver's newest telemetry (0 when there is none)."""
        raise NotImplementedError

    def reading_time(self, driver: Any) -> float:
        """When the driver received its newest reading (0 when there is none)."""
        raise NotImplementedError

    def boots_seen(self, driver: Any) -> int:
        """How many reboots the driver has reported (boot counter, BOOT events, boot changes)."""
        raise NotImplementedError

    def noticed_silence(self, driver: Any) -> bool:
        """Whether the driver has noticed that the unit stopped answering."""
        return not driver.connected and driver.last_error is not None

    def bad_input_seen(self, driver: Any) -> bool:
        """Whether the driver reported errors or dropped unusable frames."""
        return bool(self.errors)

    # A threshold above a measured output's noise floor: the output is really on.
    on_threshold: float = 0.1

    async def state(self) -> dict[str, Any]:
        """The simulator's full state."""
        return await self.sim.arequest({"op": "state"})

    async def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """One test-port request; fails unless the simulator accepted it."""
        reply = await self.sim.arequest(request)
        assert reply["ok"], reply
        return reply

    async def output_on(self) -> bool:
        """Whether the simulated output stage is driving right now."""
        return self.sim_output_on(await self.state())

    def on_error(self, _device: str, message: str) -> None:
        self.errors.append(message)


@dataclass
class Us1Target(Target):
    """US-1 over Modbus TCP or RTU (on the simulator's pty, 8N1)."""

    rtu: bool = False

    def make_driver(self, watchdog_ms: int = 1000) -> Us1ModbusDriver:
        if self.rtu:
            profile = test_us1_driver_rtu.rtu_profile(
                self.sim.endpoints["rtu_pty"], watchdog_ms=watchdog_ms
            )
        else:
            profile = test_us1_driver.profile(self.sim.modbus_tcp[1], watchdog_ms=watchdog_ms)
        link = profile.link.model_copy(update={"request_timeout_ms": US1_REQUEST_TIMEOUT_MS})
        profile = profile.model_copy(update={"link": link})
        return Us1ModbusDriver("us1", profile, on_error=self.on_error)

    async def connect(self, driver: Us1ModbusDriver) -> bool:
        before, _ = await driver.connect_and_stop()
        driver.start()
        return before.running

    def start_output(self, driver: Us1ModbusDriver) -> None:
        driver.request_configure(test_us1_driver.SETTINGS)
        driver.request_start()

    def sim_output_on(self, state: dict[str, Any]) -> bool:
        return bool(state["physics"]["output_active"])

    def sim_watchdog_tripped(self, state: dict[str, Any]) -> bool:
        return bool(state["fault"] == "WATCHDOG")

    def heartbeats(self, state: dict[str, Any]) -> int:
        return int(state["counters"]["heartbeat_writes"])

    def measured(self, driver: Us1ModbusDriver) -> float:
        return driver.latest.intensity_measured_w_cm2 if driver.latest else 0.0

    def reading_time(self, driver: Us1ModbusDriver) -> float:
        return driver.latest.received_mono_s if driver.latest else 0.0

    def boots_seen(self, driver: Us1ModbusDriver) -> int:
        return driver.latest.boot_count if driver.latest else 0


@dataclass
class GenericModbusTarget(Us1Target):
    """The generic Modbus driver from a bundled register-map profile, on the US-1 simulator."""

    profile_file: str = "us1-generic.toml"
    endpoint: str = "modbus_tcp"

    def make_driver(self, watchdog_ms: int = 1000) -> GenericModbusDriver:  # type: ignore[override]
        profile = generic_profiles.bundled(
            self.profile_file,
            self.sim.endpoints[self.endpoint],
            watchdog_ms=watchdog_ms,
            request_timeout_ms=US1_REQUEST_TIMEOUT_MS,
        )
        return GenericModbusDriver("generic", profile, on_error=self.on_error)


@dataclass
class Es2Target(Target):
    """ES-2 channel 1 over the simulator's pty or its `socket://` URL."""

    endpoint: str = "serial_pty"
    long_watchdog_ms: int = 2000  # the ICD's maximum
    delay_loses_link: bool = True  # 3 sends of 50 ms each: 150 ms (module docstring)
    on_threshold: float = 1.0

    def make_driver(self, watchdog_ms: int = 1000) -> Es2SerialDriver:
        port = str(self.sim.endpoints[self.endpoint])
        profile = test_es2_driver.profile(port, watchdog_ms=min(watchdog_ms, 2000))
        return Es2SerialDriver("es2", profile, on_error=self.on_error)

    async def connect(self, driver: Es2SerialDriver) -> bool:
        before = await driver.connect_and_stop()
        driver.start()
        return any(reading.running for reading in before.values())

    def start_output(self, driver: Es2SerialDriver) -> None:
        driver.request_configure(1, test_es2_driver.SETTINGS)
        driver.request_amplitude(1, 10.0)
        driver.request_run(1)

    def sim_output_on(self, state: dict[str, Any]) -> bool:
        ch = state["channels"][0]
        return ch["state"] in ("RAMP", "ON", "OFFPHASE") or ch["relay_stuck_ma"] > 0

    def sim_watchdog_tripped(self, state: dict[str, Any]) -> bool:
        return bool(state["channels"][0]["faults"] & 0x01)

    def heartbeats(self, state: dict[str, Any]) -> int:
        return int(state["counters"]["heartbeats"])

    def measured(self, driver: Es2SerialDriver) -> float:
        reading = driver.latest.get(1)
        return reading.measured_ma if reading else 0.0

    def reading_time(self, driver: Es2SerialDriver) -> float:
        reading = driver.latest.get(1)
        return reading.received_mono_s if reading else 0.0

    def boots_seen(self, driver: Es2SerialDriver) -> int:
        return driver.boot_events

    def bad_input_seen(self, driver: Es2SerialDriver) -> bool:
        return bool(self.errors) or driver.decoder.dropped > 0 or driver.stale_replies > 0


@dataclass
class Cx3Target(Target):
    """CX-3 ultrasound output through a real mosquitto."""

    broker: Mosquitto | None = None

    def make_driver(self, watchdog_ms: int = 1000) -> Cx3MqttDriver:
        assert self.broker is not None
        profile = test_cx3_driver.profile(self.broker, self.sim, watchdog_ms=watchdog_ms)
        return Cx3MqttDriver("cx3", profile, on_error=self.on_error)

    async def connect(self, driver: Cx3MqttDriver) -> bool:
        before, _ = await driver.connect_and_stop()  # starts the I/O task itself
        return before.running

    def start_output(self, driver: Cx3MqttDriver) -> None:
        driver.request_configure_us(test_cx3_driver.US)
        driver.request_start("us")

    def sim_output_on(self, state: dict[str, Any]) -> bool:
        return bool(state["us"]["output_active"] or state["stim"]["output_active"])

    def sim_watchdog_tripped(self, state: dict[str, Any]) -> bool:
        return "WATCHDOG" in state["faults"]

    def heartbeats(self, state: dict[str, Any]) -> int:
        return int(state["counters"]["heartbeats"])

    def measured(self, driver: Cx3MqttDriver) -> float:
        return driver.latest.ultrasound.intensity_measured_w_cm2 if driver.latest else 0.0

    def reading_time(self, driver: Cx3MqttDriver) -> float:
        return driver.latest.received_mono_s if driver.latest else 0.0

    def boots_seen(self, driver: Cx3MqttDriver) -> int:
        return driver.boot_changes

    def noticed_silence(self, driver: Cx3MqttDriver) -> bool:
        timed_out = any(r.state == "timed_out" for r in driver.commands.values())
        return timed_out or driver.last_error is not None

    def bad_input_seen(self, driver: Cx3MqttDriver) -> bool:
        return bool(self.errors) or driver.bad_payloads > 0


@dataclass
class GenericCx3Target(Cx3Target):
    """The CX-3 through the generic MQTT driver, described by `cx3-generic.toml`."""

    def make_driver(self, watchdog_ms: int = 1000) -> Any:
        assert self.broker is not None
        profile = generic_profile(self.broker, self.sim, watchdog_ms=watchdog_ms)
        return GenericMqttDriver("cx3-generic", profile, on_error=self.on_error)


def started_target(name: str, request: pytest.FixtureRequest) -> Iterator[Target]:
    """Start the simulator of target `name`, yield its adapter, stop the simulator."""
    target: Target
    if name in ("cx3-mqtt", "generic-cx3-mqtt"):
        broker: Mosquitto = request.getfixturevalue("mosquitto_broker")
        sim = cx3_sim_for(broker).start()
        adapter = GenericCx3Target if name == "generic-cx3-mqtt" else Cx3Target
        target = adapter(name, sim, broker=broker)
    elif name.startswith("es2-"):
        sim = SimProcess("es2", ES2_ARGS).start()
        endpoint = "serial_pty" if name == "es2-pty" else "serial_url"
        target = Es2Target(name, sim, endpoint=endpoint)
    elif name in GENERIC_TARGETS:
        profile_file, args, endpoint = GENERIC_TARGETS[name]
        sim = SimProcess("us1", args).start()
        target = GenericModbusTarget(name, sim, profile_file=profile_file, endpoint=endpoint)
    elif name == "us1-rtu":
        sim = SimProcess("us1", ["--rtu-pty"]).start()
        target = Us1Target(name, sim, rtu=True)
    else:
        sim = SimProcess("us1").start()
        target = Us1Target(name, sim)
    try:
        yield target
    finally:
        sim.stop()
