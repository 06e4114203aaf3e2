"""Command round trip through each driver next to the raw transport's, in the same run.

For every transport the reference units allow, one simulator is started and the same kind of
command is timed twice, alternating: once over the bare transport (a pymodbus client, raw ES-2
frames over pyserial, an aiomqtt publish and its reply) and once through the driver, from the
`request_*` call to the command's acknowledgement in `driver.commands`. The ratio of the
medians is the figure (the machine's noise cancels out of it); absolute times are printed too.
The `generic-*` transports run the same benches through the declarative drivers, aimed at the
same simulators by the bundled profiles `us1-generic.toml` (Modbus TCP and RTU) and
`cx3-generic.toml` (MQTT).

    .venv/bin/python bench/driver_roundtrip.py [--n 200] [--only us1-tcp,es2-pty,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import serial
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.es2_serial import Es2SerialDriver
from sessionconsole.drivers.generic_modbus import GenericModbusDriver
from sessionconsole.drivers.generic_mqtt import GenericMqttDriver
from sessionconsole.drivers.mqtt_options import NO_DELAY
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.model.combination import Cx3Profile, Cx3ProfileLimits, MqttLink
from sessionconsole.model.modbus_map import ModbusGenericProfile
from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.paths import config_dir
from sessionconsole.model.profile import (
    ModbusRtuLink,
    ModbusTcpLink,
    UltrasoundProfileLimits,
    Us1Profile,
)
from sessionconsole.model.room import read_toml
from sessionconsole.model.stimulation import Es2Profile, SerialLink, StimulationProfileLimits
from sessionconsole.protocols import cx3, es2
from sessionconsole.testing import SimProcess
from sessionconsole.testing.mqtt import Mosquitto
from sessionconsole.testing.profiles import modbus_profile_at

TRANSPORTS = (
    "us1-tcp",
    "us1-rtu",
    "es2-pty",
    "es2-socket",
    "cx3-mqtt",
    "generic-us1-tcp",
    "generic-us1-rtu",
    "generic-cx3-mqtt",
)
Timer = Callable[[int], Awaitable[float]]


def us1_profile(link: ModbusTcpLink | ModbusRtuLink) -> Us1Profile:
    """A US-1 profile for the simulator (ERA 5.0, BNR 4.2), long watchdog, nothing runs."""
    return Us1Profile(
        kind="us1",
        name="bench",
        era_cm2=5.0,
        bnr=4.2,
        watchdog_ms=5000,
        heartbeat_interval_ms=100,
        link=link,
        limits=UltrasoundProfileLimits(max_intensity_w_cm2=2.0, max_time_s=900),
    )


def generic_modbus_profile(endpoint: str) -> ModbusGenericProfile:
    """`us1-generic.toml` aimed at `host:port` (TCP) or a pty path (RTU, 8N1), long watchdog;
    the profile's poll rate is kept."""
    data = read_toml(config_dir() / "profiles" / "us1-generic.toml")
    return modbus_profile_at(data, endpoint, watchdog_ms=5000, request_timeout_ms=500)


def generic_mqtt_profile(broker: Mosquitto, serial_no: str) -> GenericMqttProfile:
    """`cx3-generic.toml` aimed at `broker` and the simulator's serial, long watchdog."""
    data = read_toml(config_dir() / "profiles" / "cx3-generic.toml")
    data.update(serial=serial_no, watchdog_ms=5000)
    data["link"].update(port=broker.port, keepalive_s=5)
    return GenericMqttProfile.model_validate(data)


def newest_id(driver: Any) -> int | None:
    """The id of the driver's newest tracked command (the history is bounded: compare ids)."""
    records = list(driver.commands.values())
    return records[-1].id if records else None


async def until_acknowledged(driver: Any, before: int | None) -> float:
    """Wait for a command newer than `before` to be acknowledged; return request-to-ack s."""
    while True:
        records = list(driver.commands.values())
        last = records[-1] if records else None
        if last is not None and last.id != before and last.acknowledged_mono_s is not None:
            return float(last.acknowledged_mono_s - last.requested_mono_s)
        await asyncio.sleep(0.0002)


async def bench_us1(
    sim: SimProcess, rtu: bool, n: int, generic: bool = False
) -> tuple[list[float], list[float]]:
    """Raw: one FC6 write of the intensity register. Driver: request_intensity to its ack."""
    if rtu:
        port = endpoint = str(sim.endpoints["rtu_pty"])
        link: ModbusTcpLink | ModbusRtuLink = ModbusRtuLink(
            kind="modbus_rtu", port=port, parity="N", request_timeout_ms=500
        )
        raw: AsyncModbusTcpClient | AsyncModbusSerialClient = AsyncModbusSerialClient(
            port, framer=FramerType.RTU, baudrate=19200, parity="N", timeout=0.5, retries=0
        )
    else:
        host, tcp_port = sim.modbus_tcp
        endpoint = f"{host}:{tcp_port}"
        link = ModbusTcpLink(kind="modbus_tcp", host=host, port=tcp_port, request_timeout_ms=500)
        raw = AsyncModbusTcpClient(host, port=tcp_port, timeout=0.5, retries=0)
    driver: Us1ModbusDriver | GenericModbusDriver
    if generic:
        driver = GenericModbusDriver("bench", generic_modbus_profile(endpoint))
    else:
        driver = Us1ModbusDriver("bench", us1_profile(link))
    await driver.connect_and_stop()
    driver.start()
    raw_times: list[float] = []
    driver_times: list[float] = []
    try:
        if rtu:
            driver_times = await _driver_only(
                driver, n, lambda i: driver.request_intensity(i / 100)
            )
            await driver.close()  # one master on the serial line at a time
            assert await raw.connect()
            for i in range(n):
                t0 = time.perf_counter()
                assert not (await raw.write_register(1, i % 200, device_id=1)).isError()
                raw_times.append(time.perf_counter() - t0)
        else:
            assert await raw.connect()
            for i in range(n):
                t0 = time.perf_counter()
                assert not (await raw.write_register(1, i % 200, device_id=1)).isError()
                raw_times.append(time.perf_counter() - t0)
                before = newest_id(driver)
                driver.request_intensity((i % 200) / 100)
                driver_times.append(await until_acknowledged(driver, before))
                await asyncio.sleep(0.002)
    finally:
        raw.close()
        await driver.close()
    return raw_times, driver_times


async def _driver_only(driver: Any, n: int, request: Callable[[int], None]) -> list[float]:
    """Time `n` driver commands one after another."""
    times = []
    for i in range(n):
        before = newest_id(driver)
        request(i % 200)
        times.append(await until_acknowledged(driver, before))
        await asyncio.sleep(0.002)
    return times


async def bench_es2(sim: SimProcess, endpoint: str, n: int) -> tuple[list[float], list[float]]:
    """Raw: one AMP frame and its ACK over pyserial. Driver: request_amplitude to its ack.

    The ES-2 serves one client at a time, so the raw series runs first, then the driver's.
    """
    url = str(sim.endpoints[endpoint])
    raw_times = await asyncio.to_thread(_es2_raw, url, n)
    profile = Es2Profile(
        kind="es2",
        name="bench",
        watchdog_ms=2000,
        heartbeat_interval_ms=100,
        link=SerialLink(kind="serial", port=url, telemetry_hz=10),
        limits=StimulationProfileLimits(max_amplitude_ma=40.0),
    )
    driver = Es2SerialDriver("bench", profile)
    await driver.connect_and_stop()
    driver.start()
    try:
        driver_times = await _driver_only(
            driver, n, lambda i: driver.request_amplitude(1, (i % 40) / 2)
        )
    finally:
        await driver.close()
    return raw_times, driver_times


def _es2_raw(url: str, n: int) -> list[float]:
    """Blocking pyserial loop: write AMP, read up to the reply's line end."""
    port = serial.serial_for_url(url, baudrate=115200, timeout=0.5)
    times = []
    seq = es2.SeqCounter(1)
    try:
        port.reset_input_buffer()
        for i in range(n):
            frame = es2.encode(seq.next(), "AMP", 1, (i % 40) / 2)
            t0 = time.perf_counter()
            port.write(frame)
            while True:  # skip unsolicited TEL/EVT frames (seq 0) until our reply
                line = port.read_until(b"\r\n")
                assert line, "no reply"
                if not line.startswith(b"$00000"):
                    break
            times.append(time.perf_counter() - t0)
    finally:
        port.close()
    return times


async def bench_cx3(
    broker: Mosquitto, sim: SimProcess, n: int, generic: bool = False
) -> tuple[list[float], list[float]]:
    """Raw: publish set_watchdog, wait for its reply. Driver: request_watchdog to its ack."""
    root = str(sim.endpoints["mqtt"]["root"])
    serial_no = root.split("/", 1)[1]
    topics = cx3.Topics.of("cx3", serial_no)
    raw_times = []
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier="bench-raw", socket_options=NO_DELAY
    ) as client:
        await client.subscribe(topics.reply, qos=1)
        messages = client.messages
        for i in range(n):
            command_id = 7_000_000 + i
            payload = json.dumps(
                {"id": command_id, "op": "set_watchdog", "args": {"timeout_ms": 5000}}
            )
            t0 = time.perf_counter()
            await client.publish(topics.cmd, payload, qos=1)
            async for message in messages:
                body = message.payload
                if isinstance(body, bytes) and json.loads(body).get("id") == command_id:
                    break
            raw_times.append(time.perf_counter() - t0)
    profile = Cx3Profile(
        kind="cx3",
        name="bench",
        serial=serial_no,
        era_cm2=5.0,
        bnr=4.2,
        watchdog_ms=5000,
        heartbeat_interval_ms=100,
        link=MqttLink(kind="mqtt", host="127.0.0.1", port=broker.port, keepalive_s=5),
        limits=Cx3ProfileLimits(max_intensity_w_cm2=2.0, max_time_s=900, max_amplitude_ma=40.0),
    )
    driver: Cx3MqttDriver | GenericMqttDriver
    if generic:
        driver = GenericMqttDriver("bench", generic_mqtt_profile(broker, serial_no))
    else:
        driver = Cx3MqttDriver("bench", profile)
    await driver.connect_and_stop()
    try:
        driver_times = await _driver_only(driver, n, lambda _i: driver.request_watchdog(5000))
    finally:
        await driver.close()
    return raw_times, driver_times


def summary(name: str, raw: list[float], via_driver: list[float]) -> dict[str, Any]:
    """Medians and p95 in ms, and the driver/raw ratio of the medians."""

    def p95(values: list[float]) -> float:
        return sorted(values)[int(0.95 * (len(values) - 1))]

    raw_med, drv_med = statistics.median(raw), statistics.median(via_driver)
    return {
        "transport": name,
        "raw_median_ms": round(raw_med * 1000, 2),
        "raw_p95_ms": round(p95(raw) * 1000, 2),
        "driver_median_ms": round(drv_med * 1000, 2),
        "driver_p95_ms": round(p95(via_driver) * 1000, 2),
        "ratio_median": round(drv_med / raw_med, 2),
        "n": len(raw),
    }


async def run(name: str, n: int, broker: Mosquitto | None) -> dict[str, Any]:
    """Start the transport's simulator, time both series, stop it."""
    generic = name.startswith("generic-")
    transport = name.removeprefix("generic-")
    if transport == "cx3-mqtt":
        assert broker is not None
        sim = SimProcess(
            "cx3", ["--broker", broker.url, "--serial", f"CX3-BENCH-{int(time.time())}"]
        ).start()
    elif transport.startswith("es2"):
        sim = SimProcess("es2", ["--pty", "--tcp", "127.0.0.1:0"]).start()
    else:
        sim = SimProcess("us1", ["--tcp", "127.0.0.1:0", "--rtu-pty"]).start()
    try:
        if transport == "cx3-mqtt":
            assert broker is not None
            raw, via = await bench_cx3(broker, sim, n, generic)
        elif transport.startswith("es2"):
            endpoint = "serial_pty" if transport == "es2-pty" else "serial_url"
            raw, via = await bench_es2(sim, endpoint, n)
        else:
            raw, via = await bench_us1(sim, transport == "us1-rtu", n, generic)
    finally:
        sim.stop()
    return summary(name, raw, via)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="commands per series")
    parser.add_argument("--only", default=",".join(TRANSPORTS), help="comma-separated subset")
    args = parser.parse_args()
    names = [name for name in args.only.split(",") if name]
    if unknown := set(names) - set(TRANSPORTS):
        parser.error(f"unknown transports: {sorted(unknown)}")
    broker = Mosquitto().start() if any(n.endswith("cx3-mqtt") for n in names) else None
    try:
        for name in names:
            print(json.dumps(asyncio.run(run(name, args.n, broker))), flush=True)
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
