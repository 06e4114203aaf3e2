"""`devices probe` against real simulators (US-1 over TCP and RTU, ES-2 over pty and TCP, CX-3
through a real mosquitto), and each failure cause we can produce here, with the exact line
staff would read."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import grp
import os
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionconsole.drivers import probe
from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.protocols import es2
from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for
from sessionconsole.testing.mqtt import Mosquitto
from tests.drivers.test_cx3_driver import US as CX3_US
from tests.drivers.test_cx3_driver import profile as cx3_driver_profile
from tests.drivers.test_us1_driver import SETTINGS
from tests.drivers.test_us1_driver import profile as tcp_profile
from tests.support import wait_for

US1 = """kind = "us1"
name = "probe test"
era_cm2 = {era}
bnr = 4.2

[link]
{link}
request_timeout_ms = 100

[limits]
max_intensity_w_cm2 = 2.0
max_time_s = 900
"""

ES2 = """kind = "es2"
name = "probe test"

[link]
kind = "serial"
port = "{port}"

[limits]
max_amplitude_ma = 40.0
"""

CX3_EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "profiles" / "cx3-mqtt.toml"


@pytest.fixture(scope="module")
def us1() -> Iterator[SimProcess]:
    """One US-1 simulator serving Modbus TCP and RTU on a pty, shared by this module's probes."""
    with SimProcess("us1", ["--tcp", "127.0.0.1:0", "--rtu-pty"]) as sim:
        yield sim


def run_probe(path: Path) -> int:
    """Run `devices probe --profile PATH` through a parser built with `add_parser`."""
    parser = argparse.ArgumentParser(prog="sessionconsole")
    probe.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["devices", "probe", "--profile", str(path)])
    code: int = args.func(args)
    return code


def us1_file(tmp_path: Path, link: str, era: float = 5.0) -> Path:
    """A US-1 profile file with the given [link] body."""
    path = tmp_path / "us1.toml"
    path.write_text(US1.format(link=link, era=era))
    return path


def tcp_link(sim: SimProcess, device_id: int = 1) -> str:
    host, port = sim.modbus_tcp
    return f'kind = "modbus_tcp"\nhost = "{host}"\nport = {port}\ndevice_id = {device_id}'


def rtu_link(port: str, device_id: int = 1) -> str:
    return f'kind = "modbus_rtu"\nport = "{port}"\nparity = "N"\ndevice_id = {device_id}'


def failure(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """Run a probe expected to fail; return its single error line."""
    assert run_probe(path) == probe.EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---- successful probes ----


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_us1_probe_prints_identity_and_one_reading_and_writes_nothing(
    us1: SimProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str], transport: str
) -> None:
    link = tcp_link(us1) if transport == "tcp" else rtu_link(us1.endpoints["rtu_pty"])
    holding_before = us1.request({"op": "state"})["holding"]
    assert run_probe(us1_file(tmp_path, link)) == probe.EXIT_OK
    out = capsys.readouterr().out
    assert "unit id 1: serial 21000001, model code 0x5531" in out
    assert "ERA 5.0 cm², BNR 4.2" in out
    assert "state IDLE, output off, fault none" in out
    assert "watchdog 1000 ms" in out  # the boot value: the probe wrote no watchdog
    assert "head temperature" in out and "°C" in out and "WARNING" not in out
    assert us1.request({"op": "state"})["holding"] == holding_before


@pytest.mark.parametrize("endpoint", ["serial_pty", "serial_url"])
def test_es2_probe_over_pty_and_tcp(
    es2_sim: SimProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    path = tmp_path / "es2.toml"
    path.write_text(ES2.format(port=es2_sim.endpoints[endpoint]))
    assert run_probe(path) == probe.EXIT_OK
    out = capsys.readouterr().out
    assert f"ES-2 on {es2_sim.endpoints[endpoint]}: serial " in out
    assert "channel 1: state IDLE" in out and "channel 2: state IDLE" in out
    assert "impedance" in out and "ohm" in out


def test_a_running_output_is_reported_loudly_and_left_running(
    us1: SimProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def start_output() -> None:
        driver = Us1ModbusDriver("setup", tcp_profile(us1.modbus_tcp[1], watchdog_ms=5000))
        await driver.connect_and_stop()
        driver.request_configure(SETTINGS)
        driver.request_start()
        driver.start()
        await wait_for(lambda: driver.latest and driver.latest.state == "RUNNING")
        await driver.close()

    asyncio.run(start_output())
    try:
        assert run_probe(us1_file(tmp_path, tcp_link(us1))) == probe.EXIT_OK
        captured = capsys.readouterr()
        assert "WARNING: OUTPUT RUNNING (state RUNNING)" in captured.out
        assert "WARNING: OUTPUT RUNNING" in captured.err
        assert us1.request({"op": "state"})["state"] == "RUNNING"  # the probe stopped nothing
    finally:
        us1.request({"op": "reboot"})  # leave the shared unit idle


# ---- failures: one line naming the cause ----


def test_missing_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = failure(capsys, us1_file(tmp_path, rtu_link("/dev/ttyUSB9")))
    assert line.startswith("error: no such port /dev/ttyUSB9")


def test_refused_tcp_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    link = f'kind = "modbus_tcp"\nhost = "127.0.0.1"\nport = {unused_tcp_port}'
    line = failure(capsys, us1_file(tmp_path, link))
    assert line.startswith(f"error: connection refused by 127.0.0.1:{unused_tcp_port}")


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_wrong_unit_id(
    us1: SimProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str], transport: str
) -> None:
    path = us1.endpoints["rtu_pty"]
    link = tcp_link(us1, device_id=7) if transport == "tcp" else rtu_link(path, device_id=7)
    line = failure(capsys, us1_file(tmp_path, link))
    assert line.startswith("error: no reply from unit id 7 at ")
    assert "(timeout after 1 send of 100 ms); check the unit id" in line
    if transport == "rtu":
        assert line.endswith("then 19200 baud, parity N and the wiring")


def test_wrong_device_names_the_mismatch(
    us1: SimProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = failure(capsys, us1_file(tmp_path, tcp_link(us1), era=4.0))
    assert line == (
        "error: the head reports ERA 5.0 but the profile says 4.0; "
        "the device is the truth, correct the profile"
    )


def test_silent_serial_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    master, slave = os.openpty()  # a port with nothing behind it
    tty.setraw(master)
    try:
        path = tmp_path / "es2.toml"
        port = os.ttyname(slave)
        path.write_text(ES2.format(port=port))
        line = failure(capsys, path)
    finally:
        os.close(master)
        os.close(slave)
    assert line.startswith(f"error: no reply from the ES-2 on {port} ")
    assert "(timeout after 3 sends of 50 ms)" in line


class OtherDevice(threading.Thread):
    """Something else on the ES-2's port: answers ID? as the ICD's frame says, as `model`."""

    def __init__(self, fd: int, model: str) -> None:
        super().__init__(daemon=True)
        self.fd, self.model, self.asked = fd, model, 0

    def run(self) -> None:
        decoder = es2.FrameDecoder()
        with contextlib.suppress(OSError):
            while data := os.read(self.fd, 256):
                for frame in decoder.feed(data):
                    self.asked += 1
                    reply = f"{frame.seq},ID,{self.model},77001,1.0,2".encode()
                    os.write(self.fd, b"$" + reply + f"*{es2.crc16(reply):04X}\r\n".encode())


def test_another_device_on_the_port_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    port = os.ttyname(slave)
    device = OtherDevice(master, "ES-9")
    device.start()
    try:
        path = tmp_path / "es2.toml"
        path.write_text(ES2.format(port=port))
        line = failure(capsys, path)
    finally:
        os.close(slave)
        os.close(master)
    assert device.asked == 1  # the probe asked who it is, and nothing else
    assert line == (
        f"error: {port} answers as model ES-9 (serial 77001), not as an ES-2; "
        "check the port in the profile"
    )


def test_permission_denied_names_the_group(tmp_path: Path) -> None:
    # Tests run as root, where a chmod 000 port still opens: check the mapping itself.
    port = tmp_path / "ttyUSB0"
    port.touch()
    group = grp.getgrgid(port.stat().st_gid).gr_name
    text = probe.port_error_text(str(port), PermissionError(errno.EACCES, "Permission denied"))
    assert text == (
        f"permission denied on {port}; add the user to group {group} "
        f"(sudo usermod -aG {group} $USER) and log in again"
    )
    missing = probe.port_error_text("/dev/nope", PermissionError(errno.EACCES, "denied"))
    assert "group dialout" in missing


def without_dac_override() -> None:
    """In a child about to exec: drop root's power to open files regardless of their modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def test_permission_denied_on_a_real_port(tmp_path: Path) -> None:
    # A real EACCES from open(): a port that belongs to someone else, mode 0600. Root (CI)
    # would open it anyway, so the probe runs without the capability that allows that.
    master, slave = os.openpty()
    port = os.ttyname(slave)
    try:
        if os.geteuid() == 0:
            os.chown(port, 65534, -1)  # owner nobody, group as it was (tty)
            os.chmod(port, 0o600)
        else:
            os.chmod(port, 0o000)
        group = grp.getgrgid(os.stat(port).st_gid).gr_name
        profile = tmp_path / "es2.toml"
        profile.write_text(ES2.format(port=port))
        command = "import sys; from sessionconsole.cli import main; sys.exit(main())"
        done = subprocess.run(
            [sys.executable, "-c", command, "devices", "probe", "--profile", str(profile)],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=without_dac_override if os.geteuid() == 0 else None,
        )
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == probe.EXIT_FAILED, done.stderr
    assert done.stderr.strip() == (
        f"error: permission denied on {port}; add the user to group {group} "
        f"(sudo usermod -aG {group} $USER) and log in again"
    )


def test_busy_and_other_port_errors() -> None:
    busy = probe.port_error_text("/dev/ttyS0", OSError(errno.EBUSY, "Device or resource busy"))
    assert busy == "port /dev/ttyS0 is busy: another program holds it open"
    other = probe.port_error_text("/dev/ttyS0", OSError(errno.EIO, "Input/output error"))
    assert other == "cannot open port /dev/ttyS0: Input/output error"


def test_tcp_error_texts() -> None:
    assert probe.tcp_error_text("10.0.0.9", 502, TimeoutError()) == (
        "no answer from 10.0.0.9:502 within 2000 ms; check the address, network and power"
    )
    unknown = probe.tcp_error_text("nohost", 502, socket.gaierror(-2, "Name unknown"))
    assert unknown == "unknown host 'nohost'; check the host name in the profile"


# ---- invalid profile, unsupported kind ----


def test_invalid_profile_prints_the_validation_lines_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = us1_file(tmp_path, 'kind = "modbus_rtu"\nport = "/dev/ttyUSB0"\nparity = "O"')
    assert run_probe(path) == probe.EXIT_INVALID
    out = capsys.readouterr().out
    assert f"{path}: link.parity = 'O': Input should be 'E' or 'N'" in out


# ---- CX-3 through a real mosquitto ----


def cx3_file(tmp_path: Path, broker_port: int, serial: str, generic: bool = False) -> Path:
    """The shipped CX-3 profile (dedicated or generic), pointed at the test broker and unit."""
    text = (CX3_EXAMPLE.with_name("cx3-generic.toml") if generic else CX3_EXAMPLE).read_text()
    text = text.replace("port = 1883", f"port = {broker_port}")
    text = text.replace('serial = "CX3-0001"', f'serial = "{serial}"')
    path = tmp_path / "cx3.toml"
    path.write_text(text)
    return path


def cx3_serial(sim: SimProcess) -> str:
    return str(sim.endpoints["mqtt"]["root"]).split("/", 1)[1]


def test_cx3_probe_reads_status_and_telemetry_and_sends_nothing(
    tmp_path: Path,
    mosquitto_broker: Mosquitto,
    cx3_sim: SimProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serial = cx3_serial(cx3_sim)
    path = cx3_file(tmp_path, mosquitto_broker.port, serial)
    assert run_probe(path) == probe.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"CX-3 {serial} under cx3/{serial}/ on broker 127.0.0.1:{mosquitto_broker.port}: "
        "model CX-3, firmware " + out[0].split("firmware ", 1)[1]
    )
    assert out[0].endswith(", boot 1")
    assert out[1] == "head: ERA 5.0 cm², BNR 4.2 (as the profile says)"
    assert out[2].startswith("ultrasound: state IDLE, set 0.00 W/cm²")
    assert out[3].startswith("stimulation: state IDLE, electrode not configured")
    assert out[4] == "faults: none"
    counters = cx3_sim.request({"op": "state"})["counters"]
    assert (counters["commands"], counters["heartbeats"]) == (0, 0)  # a probe only listens


def test_cx3_probe_failures_name_the_cause(
    tmp_path: Path,
    mosquitto_broker: Mosquitto,
    cx3_sim: SimProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = cx3_file(tmp_path, mosquitto_broker.port, "CX3-NOPE")
    assert run_probe(wrong) == probe.EXIT_FAILED
    assert capsys.readouterr().err.strip() == (
        f"error: no retained status under cx3/CX3-NOPE/ on broker "
        f"127.0.0.1:{mosquitto_broker.port} within 3.0 s; check the serial and topic root "
        "in the profile"
    )
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]
    down = cx3_file(tmp_path, closed_port, cx3_serial(cx3_sim))
    assert run_probe(down) == probe.EXIT_FAILED
    assert capsys.readouterr().err.strip() == (
        f"error: connection refused by 127.0.0.1:{closed_port}: nothing listens there "
        "(wrong port, or unit off)"
    )


def with_login(path: Path, user: str, password: str) -> Path:
    """The profile at `path` with broker credentials in its [link] table."""
    text = path.read_text().replace(
        "[link]\n", f'[link]\nusername = "{user}"\npassword = "{password}"\n'
    )
    login = path.with_name(f"login-{user}-{password}.toml")
    login.write_text(text)
    return login


@pytest.mark.parametrize("generic", [False, True], ids=["cx3", "mqtt_generic"])
def test_a_broker_that_refuses_the_login_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], generic: bool
) -> None:
    # Issue #4 item 7, "broker refused": the broker accepts TCP but refuses the MQTT login.
    with Mosquitto(users={"console": "s3cret"}) as broker:
        anonymous = cx3_file(tmp_path, broker.port, "CX3-0001", generic=generic)
        refused = f"error: broker 127.0.0.1:{broker.port} refused the connection: "
        for path in (anonymous, with_login(anonymous, "console", "wrong")):
            line = failure(capsys, path)
            assert line.startswith(refused), line
            assert "not authorized" in line.lower(), line  # the broker's reason, in its words
        # the right login is let in: what is missing then is the unit, not the broker's consent
        line = failure(capsys, with_login(anonymous, "console", "s3cret"))
        assert line.startswith("error: no retained status "), line


def test_cx3_probe_of_a_unit_that_lost_power_reads_its_last_will(
    tmp_path: Path, mosquitto_broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = cx3_sim_for(mosquitto_broker).start()
    serial = cx3_serial(sim)
    sim.kill()  # SIGKILL: the broker publishes the unit's last will
    path = cx3_file(tmp_path, mosquitto_broker.port, serial)
    deadline = time.monotonic() + 5.0
    while True:
        code = run_probe(path)
        err = capsys.readouterr().err.strip()
        if "offline" in err or time.monotonic() > deadline:
            break
    assert code == probe.EXIT_FAILED
    assert err == (
        f"error: {serial} is offline: cx3/{serial}/status holds its last will "
        "(unit off, or it lost the broker)"
    )


def test_cx3_probe_warns_of_a_running_output(
    tmp_path: Path,
    mosquitto_broker: Mosquitto,
    cx3_sim: SimProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def start_output() -> Cx3MqttDriver:
        driver = Cx3MqttDriver("cx3", cx3_driver_profile(mosquitto_broker, cx3_sim, 5000))
        await driver.connect_and_stop()
        driver.request_configure_us(CX3_US)
        driver.request_start("us")
        await wait_for(lambda: driver.latest and driver.latest.ultrasound.state == "RUNNING")
        return driver

    async def scenario() -> int:
        driver = await start_output()
        try:
            return await asyncio.to_thread(
                run_probe, cx3_file(tmp_path, mosquitto_broker.port, cx3_serial(cx3_sim))
            )
        finally:
            driver.request_stop()
            await asyncio.wait_for(driver.wait_stop_taken(), 2.0)
            await driver.close()

    assert asyncio.run(scenario()) == probe.EXIT_OK
    captured = capsys.readouterr()
    warning = (
        "WARNING: OUTPUT RUNNING (ultrasound RUNNING). The probe did not stop it: stop it at "
        "the unit or from the console that runs it."
    )
    assert warning in captured.out and warning in captured.err


def test_generic_mqtt_probe_reads_the_cx3_through_its_profile(
    tmp_path: Path,
    mosquitto_broker: Mosquitto,
    cx3_sim: SimProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = CX3_EXAMPLE.with_name("cx3-generic.toml")
    serial = cx3_serial(cx3_sim)
    text = example.read_text().replace("port = 1883", f"port = {mosquitto_broker.port}")
    path = tmp_path / "generic.toml"
    path.write_text(text.replace('serial = "CX3-0001"', f'serial = "{serial}"'))
    assert run_probe(path) == probe.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert f"{serial} (cx3/{serial}/status) on broker 127.0.0.1:{mosquitto_broker.port}" in out[0]
    assert "model CX-3" in out[0] and out[0].endswith("boot 1")
    assert out[2].startswith("ultrasound: state IDLE")
    counters = cx3_sim.request({"op": "state"})["counters"]
    assert (counters["commands"], counters["heartbeats"]) == (0, 0)  # a probe only listens


# ---- register-map profiles (generic Modbus driver) ----


@pytest.mark.parametrize("layout", ["icd", "vendor-b"])
def test_probe_of_a_register_map_profile_reads_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    name = "us1-generic.toml" if layout == "icd" else "vendor-b-ultrasound.toml"
    text = (Path(probe.__file__).resolve().parents[3] / "config" / "profiles" / name).read_text()
    with SimProcess("us1", ["--layout", layout]) as sim:
        port = 5020 if layout == "icd" else 5030
        path = tmp_path / name
        path.write_text(text.replace(f"port = {port}", f"port = {sim.modbus_tcp[1]}", 1))
        holding_before = sim.request({"op": "state"})["holding"]
        assert run_probe(path) == probe.EXIT_OK
        out = capsys.readouterr().out
        unit_id = 1 if layout == "icd" else 7
        code = 0x5531 if layout == "icd" else 0x5642
        assert f"unit id {unit_id}: serial 21000001, model code 0x{code:04X}" in out
        assert "state IDLE, output off, fault none" in out
        assert "watchdog 1000 ms" in out  # the boot value: the probe wrote nothing
        assert sim.request({"op": "state"})["holding"] == holding_before


def test_register_map_probe_failures_name_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    # The generic driver's probe names the same causes as the dedicated one's.
    profiles = Path(probe.__file__).resolve().parents[3] / "config" / "profiles"
    vendor_b = (profiles / "vendor-b-ultrasound.toml").read_text()
    path = tmp_path / "vendor-b.toml"
    path.write_text(vendor_b.replace("port = 5030", f"port = {unused_tcp_port}", 1))
    line = failure(capsys, path)
    assert line.startswith(f"error: connection refused by 127.0.0.1:{unused_tcp_port}")
    with SimProcess("us1") as sim:  # the ICD layout: unit id 1, model code 0x5531
        aimed = vendor_b.replace("port = 5030", f"port = {sim.modbus_tcp[1]}", 1)
        path.write_text(aimed)
        line = failure(capsys, path)
        assert line.startswith("error: no reply from unit id 7 at 127.0.0.1:")
        assert line.endswith("check the unit id")
        path.write_text(aimed.replace("device_id = 7", "device_id = 1", 1))
        line = failure(capsys, path)
        assert line == (
            "error: holding read of 20 from 1000 refused with exception 02 (illegal "
            "address); the unit has no such registers: another device, or the wrong profile"
        )
