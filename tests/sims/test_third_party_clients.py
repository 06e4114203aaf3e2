"""Each unit driven by a third-party client alone, as issue 3 asks: mbpoll for the US-1, a raw
serial terminal (socat) for the ES-2, mosquitto_pub/mosquitto_sub for the CX-3."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from sessionconsole.testing import SimProcess
from sessionconsole.testing.mqtt import Mosquitto


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (bash .ci/run installs it with apt)")
    return path


def run(
    *args: str, stdin: bytes | None = None, timeout: float = 10.0
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=timeout, check=False)


def test_us1_with_mbpoll(us1_sim: SimProcess) -> None:
    mbpoll = tool("mbpoll")
    host, port = us1_sim.modbus_tcp
    base = [mbpoll, "-m", "tcp", "-a", "1", "-p", str(port), "-1"]
    # Input registers 13..15 (mbpoll counts from 1): model code 0x5531 and the serial.
    out = run(*base, "-t", "3", "-r", "14", "-c", "1", host).stdout.decode()
    assert "[14]: \t21809" in out  # 0x5531 = "U1"
    # Intensity 4.00 W/cm² is outside 0-300: exception 03, register unchanged.
    refused = run(
        mbpoll, "-m", "tcp", "-a", "1", "-p", str(port), "-t", "4", "-r", "2", host, "400"
    )
    assert refused.returncode != 0 and b"Illegal data value" in refused.stdout + refused.stderr
    accepted = run(
        mbpoll, "-m", "tcp", "-a", "1", "-p", str(port), "-t", "4", "-r", "2", host, "150"
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert us1_sim.request({"op": "state"})["holding"][1] == 150


def test_es2_with_a_raw_serial_terminal(es2_sim: SimProcess) -> None:
    socat = tool("socat")
    pty = es2_sim.endpoints["serial_pty"]
    # What a person types in a terminal: the ICD's first vector, CR LF.
    result = run(socat, "-t", "0.5", "-", f"{pty},raw,echo=0", stdin=b"$1,ID?*4A47\r\n")
    lines = [ln for ln in result.stdout.split(b"\r\n") if ln.startswith(b"$1,")]
    assert lines and lines[0].startswith(b"$1,ID,ES-2,"), result.stdout


def test_cx3_with_mosquitto_pub_and_sub(cx3_sim: SimProcess, mosquitto_broker: Mosquitto) -> None:
    pub, sub = tool("mosquitto_pub"), tool("mosquitto_sub")
    root = cx3_sim.endpoints["mqtt"]["root"]
    common = ["-h", "127.0.0.1", "-p", str(mosquitto_broker.port)]
    status = run(sub, *common, "-t", f"{root}/status", "-C", "1", "-W", "5")
    assert json.loads(status.stdout)["online"] is True  # retained
    listener = subprocess.Popen(
        [sub, *common, "-t", f"{root}/reply", "-C", "1", "-W", "5", "-q", "1"],
        stdout=subprocess.PIPE,
    )
    try:
        command = {"id": 4242, "op": "set_watchdog", "args": {"timeout_ms": 99}}
        for _ in range(20):  # until the subscriber is in place (it prints nothing until then)
            run(pub, *common, "-t", f"{root}/cmd", "-q", "1", "-m", json.dumps(command))
            try:
                out, _ = listener.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                continue
        reply = json.loads(out)
        assert reply == {"id": 4242, "ok": False, "error": "RANGE", "detail": reply["detail"]}
    finally:
        listener.kill()
        listener.wait()
