"""`devices probe --profile FILE`: reach one device as its profile says, identify it, read it once.

The biomedical staff's first tool when a unit is installed or a cable changed. A probe only
asks: it never starts an output, never stops one, and writes no setting (no watchdog, no
stream rate), because the unit may be in use by a console elsewhere. An output found running
is reported loudly instead. Exit 0 on success; 1 with one line naming the cause (missing port,
permission, refused connection, silence, wrong unit); 2 on an invalid profile.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import grp
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.errors import DriverError
from sessionconsole.drivers.es2_serial import Es2SerialDriver, _Request
from sessionconsole.drivers.generic_modbus import GenericModbusDriver
from sessionconsole.drivers.generic_mqtt import GenericMqttDriver
from sessionconsole.drivers.modbus_transport import NoReply
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.model.combination import Cx3Profile, Cx3Reading
from sessionconsole.model.modbus_map import ModbusGenericProfile
from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.profile import ModbusTcpLink, Us1Profile
from sessionconsole.model.room import read_toml
from sessionconsole.model.stimulation import Es2Profile, StimChannelReading
from sessionconsole.model.telemetry import UltrasoundReading
from sessionconsole.model.validation import PROFILE_KINDS, validate_profile_file
from sessionconsole.protocols import es2

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
TCP_CONNECT_TIMEOUT_S = 2.0
PROBE_ID = "probe"
ES2_READ_ONLY_VERBS = frozenset({"ID?", "STAT?"})
ES2_SKIPPED_ON_CONNECT = frozenset({"WDG", "STREAM"})  # settings a console writes, not a probe


class ProbeFailed(Exception):
    """The probe could not reach or recognise the unit; the message is the one line to print."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a successful probe found: lines in words, and what output runs (None: none)."""

    lines: list[str]
    running: str | None


Prober = Callable[[Any], Coroutine[Any, Any, ProbeResult]]


# ---- command line ----


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `devices probe` to a CLI's sub-commands."""
    devices = subparsers.add_parser("devices", help="check devices from their profiles")
    commands = devices.add_subparsers(dest="devices_command", required=True, metavar="COMMAND")
    probe = commands.add_parser(
        "probe", help="reach, identify and read one device once; never starts or stops an output"
    )
    probe.add_argument("--profile", required=True, metavar="FILE", help="device profile (TOML)")
    probe.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    """Validate the profile, probe the device, print what it said; return the exit code."""
    if not getattr(args, "verbose", False):
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # our one line says it better
    path = Path(args.profile)
    problems = validate_profile_file(path)
    if problems:
        for line in problems:
            print(line)
        return EXIT_INVALID
    kind, profile = load_profile(path)
    prober = PROBERS.get(kind)
    if prober is None:
        print(f"error: probe for {kind} not available yet", file=sys.stderr)
        return EXIT_FAILED
    try:
        result = asyncio.run(prober(profile))
    except ProbeFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print_result(result)
    return EXIT_OK


def load_profile(path: Path) -> tuple[str, BaseModel]:
    """Read an already validated profile file as its kind's model."""
    data = read_toml(path)
    kind = str(data["kind"])
    return kind, PROFILE_KINDS[kind].model_validate(data)


def print_result(result: ProbeResult) -> None:
    """Print the findings; a running output is shouted on stdout and stderr alike."""
    for line in result.lines:
        print(line)
    if result.running is not None:
        warning = (
            f"WARNING: OUTPUT RUNNING ({result.running}). The probe did not stop it: "
            "stop it at the unit or from the console that runs it."
        )
        print(warning)
        print(warning, file=sys.stderr)


# ---- reaching the port: exact causes before any driver runs ----


def port_error_text(port: str, exc: OSError) -> str:
    """One line for a serial port that cannot be opened, with what to do about it."""
    if exc.errno == errno.ENOENT:
        return f"no such port {port}; is the adapter plugged in? (ls /dev/serial/by-id/)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        group = _port_group(port)
        return (
            f"permission denied on {port}; add the user to group {group} "
            f"(sudo usermod -aG {group} $USER) and log in again"
        )
    if exc.errno == errno.EBUSY:
        return f"port {port} is busy: another program holds it open"
    return f"cannot open port {port}: {exc.strerror or exc}"


def _port_group(port: str) -> str:
    """The group that owns the port (dialout on Debian), for the permission hint."""
    try:
        return grp.getgrgid(os.stat(port).st_gid).gr_name
    except (OSError, KeyError):
        return "dialout"


def check_serial_port(port: str) -> None:
    """Open and close a serial port path once, so a missing port or permission is named."""
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProbeFailed(port_error_text(port, exc)) from exc
    os.close(fd)


def tcp_error_text(host: str, port: int, exc: BaseException) -> str:
    """One line for a TCP endpoint that cannot be reached."""
    where = f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}: nothing listens there (wrong port, or unit off)"
    if isinstance(exc, TimeoutError):
        ms = round(TCP_CONNECT_TIMEOUT_S * 1000)
        return f"no answer from {where} within {ms} ms; check the address, network and power"
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host!r}; check the host name in the profile"
    strerror = exc.strerror if isinstance(exc, OSError) else None
    return f"cannot reach {where}: {strerror or exc}"


async def check_tcp(host: str, port: int) -> None:
    """Open and close one TCP connection, so a refused or unreachable endpoint is named."""
    try:
        async with asyncio.timeout(TCP_CONNECT_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        raise ProbeFailed(tcp_error_text(host, port, exc)) from exc
    writer.close()
    await writer.wait_closed()


async def check_serial_link(port: str) -> None:
    """Check a serial port path, or the TCP endpoint of a `socket://host:port` URL."""
    if port.startswith("socket://"):
        url = urlsplit(port)
        await check_tcp(url.hostname or "", url.port or 0)
    elif "://" not in port:
        check_serial_port(port)


def driver_text(exc: DriverError) -> str:
    """A driver error without the driver's device-id prefix."""
    return str(exc).removeprefix(f"{PROBE_ID}: ")


# ---- US-1 ----


async def probe_us1(profile: Us1Profile | ModbusGenericProfile) -> ProbeResult:
    """Reach a US-1 (or a unit with a register-map profile) over TCP or RTU, check its
    identity against the profile, read it once."""
    link = profile.link
    if isinstance(link, ModbusTcpLink):
        await check_tcp(link.host, link.port)
    else:
        await check_serial_link(link.port)
    driver: Us1ModbusDriver | GenericModbusDriver
    if isinstance(profile, ModbusGenericProfile):
        driver = GenericModbusDriver(PROBE_ID, profile)
    else:
        driver = Us1ModbusDriver(PROBE_ID, profile)
    try:
        reading = await driver.identify()
    except NoReply as exc:
        raise ProbeFailed(us1_no_reply_text(profile)) from exc
    except DriverError as exc:
        raise ProbeFailed(driver_text(exc)) from exc
    finally:
        await driver.close()
    assert driver.identity is not None
    what = profile.name if isinstance(profile, ModbusGenericProfile) else "US-1"
    head = f"{what} at {driver.endpoint}, unit id {link.device_id}"
    lines = [
        f"{head}: serial {driver.identity.serial}, model code 0x{driver.identity.model_code:04X}",
        *us1_reading_lines(reading),
    ]
    running = f"state {reading.state}" if reading.running else None
    return ProbeResult(lines, running)


def us1_no_reply_text(profile: Us1Profile | ModbusGenericProfile) -> str:
    """Silence from a Modbus unit: on RTU also the line settings are suspects."""
    link = profile.link
    where = f"{link.host}:{link.port}" if isinstance(link, ModbusTcpLink) else link.port
    text = (
        f"no reply from unit id {link.device_id} at {where} "
        f"(timeout after 1 send of {link.request_timeout_ms} ms); check the unit id"
    )
    if isinstance(link, ModbusTcpLink):
        return text
    return f"{text}, then {link.baudrate} baud, parity {link.parity} and the wiring"


def us1_reading_lines(r: UltrasoundReading) -> list[str]:
    """One US-1 reading in words with units."""
    fault = r.fault or "none"
    output = "ON" if r.output_active else "off"
    head = "connected" if r.head_connected else "NOT connected"
    coupled = "coupled" if r.head_coupled else "not coupled"
    return [
        f"head: ERA {r.era_cm2:.1f} cm², BNR {r.bnr:.1f} (as the profile says)",
        f"state {r.state}, output {output}, fault {fault}, boot count {r.boot_count}",
        f"set: frequency {r.frequency_khz} kHz, intensity {r.intensity_setpoint_w_cm2:.2f} W/cm², "
        f"duty {r.duty_pct} %, treatment time {r.time_s} s, watchdog {r.watchdog_ms} ms",
        f"measured: intensity {r.intensity_measured_w_cm2:.2f} W/cm², "
        f"power {r.power_measured_w:.2f} W, head temperature {r.head_temperature_c:.1f} °C",
        f"head {head}, {coupled} (coupling {r.coupling_pct} %), "
        f"patient stop {'PRESSED' if r.patient_stop_pressed else 'released'}",
        f"remaining {r.remaining_s} s, emission {r.emission_s} s, energy {r.energy_j} J",
    ]


# ---- ES-2 ----


class ReadOnlyEs2Driver(Es2SerialDriver):
    """The ES-2 driver restricted to questions: only ID? and STAT? ever reach the unit."""

    async def _send_expect_ack(self, request: _Request) -> None:
        """Skip the settings a console writes on connect (watchdog, stream rate)."""
        if request.verb in ES2_SKIPPED_ON_CONNECT:
            return
        await super()._send_expect_ack(request)

    async def _send(self, request: _Request) -> es2.Message:
        """Refuse anything but a question, so a probe can never change the unit."""
        if request.verb not in ES2_READ_ONLY_VERBS:
            raise AssertionError(f"a probe must not send {request.verb}")
        return await super()._send(request)

    async def probe(self) -> dict[int, StimChannelReading]:
        """Connect, identify (ID?) and read each channel once (STAT?)."""
        await self._connect()
        await self._poll_status()
        return dict(self.latest)


async def probe_es2(profile: Es2Profile) -> ProbeResult:
    """Reach an ES-2 on its serial port or URL, identify it, read both channels once."""
    port = profile.link.port
    await check_serial_link(port)
    driver = ReadOnlyEs2Driver(PROBE_ID, profile)
    try:
        channels = await driver.probe()
    except DriverError as exc:
        raise ProbeFailed(es2_failure_text(profile, exc)) from exc
    finally:
        await driver.close()
    identity = driver.identity
    assert identity is not None
    lines = [
        f"ES-2 on {port}: serial {identity.serial}, firmware {identity.firmware}, "
        f"{identity.channels} channels",
        *(es2_channel_line(channels[ch]) for ch in sorted(channels)),
    ]
    running = [f"channel {ch} {r.state}" for ch, r in sorted(channels.items()) if r.running]
    return ProbeResult(lines, ", ".join(running) or None)


def es2_failure_text(profile: Es2Profile, exc: DriverError) -> str:
    """Silence gets the timing and the suspects; anything else the driver's own words."""
    text = driver_text(exc)
    if "no reply to" not in text:
        return text
    ms = round(es2.REPLY_TIMEOUT_S * 1000)
    return (
        f"no reply from the ES-2 on {profile.link.port} (timeout after {es2.MAX_SENDS} sends "
        f"of {ms} ms); check that it is on, the cable, and {profile.link.baudrate} baud"
    )


def es2_channel_line(r: StimChannelReading) -> str:
    """One ES-2 channel reading in words with units."""
    target = "not set" if r.target_ma is None else f"{r.target_ma:.1f} mA"
    faults = ", ".join(r.faults) or "none"
    return (
        f"channel {r.channel}: state {r.state}, target {target}, measured {r.measured_ma:.1f} mA, "
        f"impedance {r.impedance_ohm:.0f} ohm, faults {faults}"
    )


# ---- CX-3 ----


async def probe_cx3(profile: Cx3Profile | GenericMqttProfile) -> ProbeResult:
    """Reach the broker, read the unit's retained status and one telemetry message."""
    link = profile.link
    await check_tcp(link.host, link.port)
    driver: Cx3MqttDriver | GenericMqttDriver
    if isinstance(profile, Cx3Profile):
        driver = Cx3MqttDriver(PROBE_ID, profile)
    else:
        driver = GenericMqttDriver(PROBE_ID, profile)
    try:
        reading = await driver.identify()
    except DriverError as exc:
        raise ProbeFailed(driver_text(exc)) from exc
    finally:
        await driver.close()
    if isinstance(driver, Cx3MqttDriver):
        status = driver.status
        assert status is not None
        head = (
            f"CX-3 {profile.serial} under {driver.topics.base}/ on broker {link.host}:{link.port}: "
            f"model {status.model}, firmware {status.fw}, boot {status.boot}"
        )
    else:
        generic = driver.status
        assert generic is not None
        head = (
            f"{profile.name} {profile.serial} ({driver.topics['status']}) on broker "
            f"{link.host}:{link.port}: model {generic.model}, firmware {generic.firmware}, "
            f"boot {generic.boot}"
        )
    lines = [head, *cx3_reading_lines(reading)]
    running = [
        f"{name} {part.state}"
        for name, part in (("ultrasound", reading.ultrasound), ("stimulation", reading.stimulation))
        if part.running
    ]
    return ProbeResult(lines, ", ".join(running) or None)


def cx3_reading_lines(r: Cx3Reading) -> list[str]:
    """One CX-3 telemetry message in words with units."""
    us, stim = r.ultrasound, r.stimulation
    electrode = stim.electrode or "not configured"
    return [
        f"head: ERA {us.era_cm2:.1f} cm², BNR {us.bnr:.1f} (as the profile says)",
        f"ultrasound: state {us.state}, set {us.intensity_setpoint_w_cm2:.2f} W/cm², measured "
        f"{us.intensity_measured_w_cm2:.2f} W/cm² ({us.power_measured_w:.2f} W), head "
        f"{us.head_temperature_c:.1f} °C, coupling {us.coupling_pct} %, remaining "
        f"{us.remaining_s} s, energy {us.energy_j} J",
        f"stimulation: state {stim.state}, electrode {electrode}, set "
        f"{stim.amplitude_setpoint_ma:.1f} mA, measured {stim.amplitude_measured_ma:.1f} mA, "
        f"impedance {stim.impedance_ohm:.0f} ohm",
        f"faults: {', '.join(r.faults) or 'none'}",
    ]


PROBERS: dict[str, Prober] = {
    "us1": probe_us1,
    "es2": probe_es2,
    "cx3": probe_cx3,
    "modbus_generic": probe_us1,
    "mqtt_generic": probe_cx3,
}
