"""Each unit driven through a whole treatment by a third-party client alone, as issue 3 asks:
mbpoll for the US-1 (Modbus TCP and RTU), socat as a raw terminal for the ES-2 (pty and TCP),
mosquitto_pub/mosquitto_sub for the CX-3. Frames, registers and topics come from the ICDs; the
test port is not used to drive anything (only, at the end, to cross-check what arrived)."""

from __future__ import annotations

import binascii
import itertools
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from sessionconsole.testing import SimProcess, split_hostport
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


class LineReader:
    """A long-running client process whose stdout lines are collected (with arrival times)."""

    def __init__(self, argv: Sequence[str], sep: bytes = b"\n") -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.sep = sep
        self.lines: list[tuple[float, bytes]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        buffer = b""
        while chunk := self.proc.stdout.read1(4096):
            buffer += chunk
            *complete, buffer = buffer.split(self.sep)
            with self._cond:
                self.lines.extend((time.monotonic(), line) for line in complete)
                self._cond.notify_all()

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_for(
        self, match: Callable[[bytes], bool], timeout: float = 5.0, start: int = 0
    ) -> tuple[int, bytes]:
        """The first line from index `start` on that matches; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(start, len(self.lines)):
                    if match(self.lines[index][1]):
                        return index, self.lines[index][1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"no matching line within {timeout} s; got {self.lines[start:]}")
                self._cond.wait(remaining)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._thread.join(timeout=2.0)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# ---- US-1 with mbpoll ----------------------------------------------------------------------
# ICD tables: holding 0 frequency, 1 intensity, 2 duty, 3 PRR, 4 time, 5 watchdog, 6 heartbeat,
# 7 command; input 0 state (0 IDLE, 1 RUNNING), 2 measured intensity (0.01 W/cm²), 6 fault;
# discrete 3 output active. mbpoll's -0 makes its references the ICD's PDU addresses.
START, STOP = 1, 2
IDLE, RUNNING = 0, 1
MBPOLL_VALUE = re.compile(rb"^\[(\d+)\]:\s+(-?\d+)", re.MULTILINE)


class Mbpoll:
    """mbpoll against one unit: `base` holds the transport options and the host or device."""

    def __init__(self, base: Sequence[str]) -> None:
        self.base = list(base)

    def read(self, table: str, address: int, count: int) -> list[int]:
        """Read `count` values of table 1 (discrete), 3 (input) or 4 (holding)."""
        options = ["-0", "-1", "-t", table, "-r", str(address), "-c", str(count)]
        out = run(*self.base[:1], *options, *self.base[1:])
        assert out.returncode == 0, out.stdout + out.stderr
        values = {int(a): int(v) for a, v in MBPOLL_VALUE.findall(out.stdout)}
        assert sorted(values) == list(range(address, address + count)), out.stdout
        return [values[a] for a in range(address, address + count)]

    def write(self, address: int, *values: int) -> subprocess.CompletedProcess[bytes]:
        """Write holding registers from `address` (one value: function 6, several: 16)."""
        options = ["-0", "-t", "4", "-r", str(address)]
        return run(*self.base[:1], *options, *self.base[1:], *map(str, values))

    def write_ok(self, address: int, *values: int) -> None:
        result = self.write(address, *values)
        assert result.returncode == 0, result.stdout + result.stderr

    def write_refused(self, address: int, value: int, message: bytes) -> None:
        """A write the unit answers with a Modbus exception (libmodbus's text for it)."""
        result = self.write(address, value)
        assert result.returncode != 0 and message in result.stdout + result.stderr, result


@pytest.fixture(params=["tcp", "rtu"])
def us1_mbpoll(request: pytest.FixtureRequest) -> Iterator[tuple[SimProcess, Mbpoll]]:
    """A US-1 and mbpoll set up for Modbus TCP, or for RTU on the simulator's pty.

    RTU is 19200 baud, 8 bits, 1 stop bit as the ICD says, but `-P none`: a Linux pty keeps no
    parity bit (device_sims/us1/ptyport.py), so the ICD's even parity cannot be set on it.
    """
    mbpoll = tool("mbpoll")
    if request.param == "tcp":
        sim = SimProcess("us1", ["--tcp", "127.0.0.1:0"]).start()
        host, port = sim.modbus_tcp
        base = [mbpoll, "-m", "tcp", "-a", "1", "-p", str(port), host]
    else:
        sim = SimProcess("us1", ["--rtu-pty"]).start()
        rtu = ["-m", "rtu", "-a", "1", "-b", "19200", "-d", "8", "-s", "1", "-P", "none"]
        base = [mbpoll, *rtu, sim.endpoints["rtu_pty"]]
    try:
        yield sim, Mbpoll(base)
    finally:
        sim.stop()


def test_us1_treatment_with_mbpoll_alone(us1_mbpoll: tuple[SimProcess, Mbpoll]) -> None:
    sim, mb = us1_mbpoll
    assert mb.read("3", 13, 1) == [0x5531]  # model code "U1"
    # Settings and the watchdog timeout in one function-16 write: 1 MHz, 1.00 W/cm², 100 %,
    # 100 Hz, 60 s, 2000 ms.
    mb.write_ok(0, 1000, 100, 100, 100, 60, 2000)
    assert mb.read("4", 0, 8) == [1000, 100, 100, 100, 60, 2000, 0, 0]
    mb.write_refused(1, 400, b"Illegal data value")  # exception 03: outside 0-300
    mb.write_ok(7, START)
    heartbeats = 0
    deadline = time.monotonic() + 3.0  # the 2 s ramp to 1.00 W/cm², 1 s past the watchdog
    while True:
        mb.write_ok(6, heartbeats)
        heartbeats += 1
        inputs = mb.read("3", 0, 16)
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # RUNNING, no fault, measured intensity near the setpoint (the ICD faults beyond 20 %).
    assert inputs[0] == RUNNING and inputs[6] == 0, inputs
    assert 80 <= inputs[2] <= 120, inputs
    assert mb.read("1", 3, 1) == [1]  # output active
    assert mb.read("4", 7, 1) == [0]  # the command register reads 0 once acted on
    # Exceptions: 06 for a frequency change while RUNNING, 02 past the tables, 01 for coils.
    mb.write_refused(0, 3000, b"busy")
    past = run(*mb.base[:1], "-0", "-1", "-t", "3", "-r", "16", *mb.base[1:])
    assert past.returncode != 0 and b"Illegal data address" in past.stdout + past.stderr
    coils = run(*mb.base[:1], "-0", "-1", "-t", "0", "-r", "0", *mb.base[1:])
    assert coils.returncode != 0 and b"Illegal function" in coils.stdout + coils.stderr
    mb.write_ok(7, STOP)
    inputs = mb.read("3", 0, 16)
    assert (inputs[0], inputs[2], inputs[6]) == (IDLE, 0, 0), inputs
    assert mb.read("1", 3, 1) == [0]
    assert mb.read("4", 0, 6) == [1000, 100, 100, 100, 60, 2000]  # settings kept
    assert sim.request({"op": "state"})["counters"]["heartbeat_writes"] == heartbeats


# ---- ES-2 with socat as a raw terminal -----------------------------------------------------


def crc(body: bytes) -> str:
    """ICD: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, unreflected) as 4 upper-case hex."""
    return f"{binascii.crc_hqx(body, 0xFFFF):04X}"


def frame(seq: int, verb: str) -> bytes:
    body = f"{seq},{verb}".encode()
    return b"$" + body + b"*" + crc(body).encode() + b"\r\n"


def test_the_frame_crc_is_the_icds() -> None:
    assert crc(b"123456789") == "29B1"  # the ICD's check value
    assert frame(1, "ID?") == b"$1,ID?*4A47\r\n"  # as docs/SIMULATORS.md shows it


class Terminal:
    """socat between a pipe and the unit: what a person at a raw serial terminal has."""

    def __init__(self, socat: str, address: str) -> None:
        self.reader = LineReader([socat, "-t", "1", "-", address], sep=b"\r\n")
        self.seqs = itertools.count(1)

    def ask(self, verb: str, timeout: float = 3.0) -> list[str]:
        """Send one request with the next seq; return the reply's fields after the seq."""
        seq = next(self.seqs)
        start = len(self.reader.lines)
        self.reader.write(frame(seq, verb))
        _, line = self.reader.wait_for(
            lambda ln: ln.startswith(f"${seq},".encode()), timeout, start
        )
        return checked(line)[1:]


def checked(line: bytes) -> list[str]:
    """A received frame's fields (seq first), after checking its CRC the ICD's way."""
    body, star, sent = line[line.index(b"$") + 1 :].partition(b"*")
    assert star and sent.decode() == crc(body), line
    return body.decode().split(",")


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_es2_treatment_with_a_raw_terminal_alone(es2_sim: SimProcess, transport: str) -> None:
    socat = tool("socat")
    if transport == "pty":
        address = f"{es2_sim.endpoints['serial_pty']},raw,echo=0"
    else:  # the ICD's socket transport: serial_url is socket://HOST:PORT
        host, port = split_hostport(es2_sim.endpoints["serial_url"].removeprefix("socket://"))
        address = f"TCP:{host}:{port}"
    term = Terminal(socat, address)
    try:
        assert term.ask("ID?")[:2] == ["ID", "ES-2"]
        assert term.ask("CFG,1,SYM,100,200,0,0,1") == ["ACK"]  # 100 Hz, 200 µs, 1 s ramp
        assert term.ask("AMP,1,20") == ["ACK"]
        assert term.ask("AMP,1,20.3") == ["NAK", "RANGE"]  # not a multiple of 0.5
        assert term.ask("WDG,1000") == ["ACK"]
        assert term.ask("STREAM,10") == ["ACK"]
        assert term.ask("RUN,1") == ["ACK"]
        running_from = len(term.reader.lines)
        deadline = time.monotonic() + 2.5  # past the 1 s ramp and 1.5 watchdog timeouts
        while time.monotonic() < deadline:
            assert term.ask("HB") == ["ACK"]
            time.sleep(0.1)
        assert term.ask("CFG,1,SYM,50,200,0,0,1") == ["NAK", "STATE"]  # running
        tel = [checked(ln) for _, ln in term.reader.lines[running_from:] if b",TEL,1," in ln]
        assert all(f[0] == "0" for f in tel)  # unsolicited: seq 0
        states = [f[3] for f in tel]
        assert states[0] == "RAMP" and states[-1] == "ON", states
        assert abs(float(tel[-1][4]) - 20.0) <= 1.0, tel[-1]  # within 5 % of the target
        assert 10 <= len(tel) <= 40, len(tel)  # STREAM,10 for about 2.5 s
        events = [checked(ln)[1:] for _, ln in term.reader.lines if b",EVT," in ln]
        assert events in ([], [["EVT", "BOOT"]]), events  # no watchdog, no fault
        assert term.ask("STOP,1") == ["ACK"]
        stat = term.ask("STAT?,1")
        assert stat[:5] == ["STAT", "1", "IDLE", "20", "0"] and stat[6] == "00", stat
        # A frame with a bad CRC is dropped silently and counted.
        term.reader.write(b"$99,STAT?,1*0000\r\n")
        assert term.ask("ERR?") == ["ERR", "1", "0"]
        assert not any(ln.startswith(b"$99,") for _, ln in term.reader.lines)
    finally:
        term.reader.close()


# ---- CX-3 with mosquitto_pub and mosquitto_sub ---------------------------------------------
US_SETTINGS = {"frequency_khz": 1000, "intensity_w_cm2": 1.0, "duty_pct": 100, "time_s": 60}


class MqttTerminal:
    """mosquitto_sub on the unit's topics (retained flag, topic, payload) and mosquitto_pub."""

    def __init__(self, broker: Mosquitto, root: str) -> None:
        self.pub = tool("mosquitto_pub")
        self.sub = tool("mosquitto_sub")
        self.common = ["-h", "127.0.0.1", "-p", str(broker.port)]
        self.root = root
        argv = [self.sub, *self.common, "-q", "1", "-t", f"{root}/#", "-F", "%r %t %p"]
        self.reader = LineReader(argv)
        self.ids = itertools.count(int(time.time()) % 100_000 * 1000)

    def messages(self, start: int = 0) -> list[tuple[float, bool, str, dict[str, Any]]]:
        """(arrival, retained, topic suffix, payload) of every message from index `start`."""
        out = []
        for arrived, line in self.reader.lines[start:]:
            retained, topic, payload = line.decode().split(" ", 2)
            out.append((arrived, retained == "1", topic[len(self.root) + 1 :], json.loads(payload)))
        return out

    def wait_topic(
        self, suffix: str, match: Callable[[dict[str, Any]], bool], start: int = 0
    ) -> int:
        topic = f" {self.root}/{suffix} ".encode()

        def wanted(line: bytes) -> bool:
            return topic in line and match(json.loads(line.split(b" ", 2)[2]))

        index, _ = self.reader.wait_for(wanted, 5.0, start)
        return index

    def publish(self, suffix: str, payload: dict[str, Any], qos: int = 1) -> None:
        message = json.dumps(payload)
        out = run(
            self.pub, *self.common, "-q", str(qos), "-t", f"{self.root}/{suffix}", "-m", message
        )
        assert out.returncode == 0, out.stderr

    def command(self, op: str, args: dict[str, Any], cid: int | None = None) -> dict[str, Any]:
        """Publish a command; return the reply carrying its id (other replies are skipped)."""
        cid = next(self.ids) if cid is None else cid
        start = len(self.reader.lines)
        self.publish("cmd", {"id": cid, "op": op, "args": args})
        index = self.wait_topic("reply", lambda r: r.get("id") == cid, start)
        return self.messages(index)[0][3]

    def retained_status(self) -> tuple[bool, dict[str, Any]]:
        """What a new subscriber gets first on the status topic (retained flag, payload)."""
        argv = [*self.common, "-t", f"{self.root}/status", "-C", "1", "-W", "5", "-F", "%r %p"]
        out = run(self.sub, *argv)
        retained, payload = out.stdout.decode().split(" ", 1)
        return retained == "1", json.loads(payload)


def test_cx3_treatment_with_mosquitto_pub_and_sub_alone(
    cx3_sim: SimProcess, mosquitto_broker: Mosquitto
) -> None:
    mqtt = MqttTerminal(mosquitto_broker, cx3_sim.endpoints["mqtt"]["root"])
    try:
        retained, status = mqtt.retained_status()
        assert retained and status["online"] is True and status["model"] == "CX-3", status
        assert isinstance(status["boot"], int) and isinstance(status["fw"], str), status
        mqtt.wait_topic("status", lambda s: s["online"] is True)  # our subscriber is in place
        assert mqtt.command("set_watchdog", {"timeout_ms": 1000})["ok"] is True
        assert mqtt.command("configure_us", US_SETTINGS)["ok"] is True
        start_cmd = {"output": "us"}
        start_id = next(mqtt.ids)
        assert mqtt.command("start", start_cmd, start_id) == {"id": start_id, "ok": True}
        running_from = len(mqtt.reader.lines)
        began = time.monotonic()
        n = 0
        while time.monotonic() - began < 3.0:  # past the 2 s ramp, 3 watchdog timeouts
            mqtt.publish("heartbeat", {"n": n}, qos=0)
            n += 1
            time.sleep(0.15)
        window = time.monotonic() - began
        refused = mqtt.command("configure_us", US_SETTINGS)  # not while the ultrasound runs
        assert (refused["ok"], refused["error"]) == (False, "STATE")
        tel = [(t, m) for t, _, s, m in mqtt.messages(running_from) if s == "telemetry"]
        # ~10 Hz: device clock 100 ms apart, and about as many arrived as the window allows.
        gaps = [b["t_ms"] - a["t_ms"] for (_, a), (_, b) in itertools.pairwise(tel)]
        assert 80 <= sorted(gaps)[len(gaps) // 2] <= 125, gaps
        assert 0.6 * 10 * window <= len(tel) <= 1.5 * 10 * window, (len(tel), window)
        assert all(b["seq"] > a["seq"] for (_, a), (_, b) in itertools.pairwise(tel))
        last = tel[-1][1]
        assert (last["us"]["state"], last["faults"]) == ("RUNNING", []), last
        assert abs(last["us"]["intensity_w_cm2"] - 1.0) <= 0.2, last
        stop_id = next(mqtt.ids)
        assert mqtt.command("stop", {"output": "us"}, stop_id) == {"id": stop_id, "ok": True}
        stopped_at = len(mqtt.reader.lines)
        index = mqtt.wait_topic("telemetry", lambda m: True, stopped_at)
        after = mqtt.messages(index)[0][3]["us"]
        assert (after["state"], after["intensity_w_cm2"]) == ("IDLE", 0), after
        # The start again with its id, op and args: the remembered reply, not a new start.
        assert mqtt.command("start", start_cmd, start_id) == {"id": start_id, "ok": True}
        index = mqtt.wait_topic("telemetry", lambda m: True, len(mqtt.reader.lines))
        index = mqtt.wait_topic("telemetry", lambda m: True, index + 1)
        assert mqtt.messages(index)[0][3]["us"]["state"] == "IDLE"
        # Power lost: the broker publishes the last will, retained.
        cx3_sim.kill()
        mqtt.wait_topic("status", lambda s: s == {"online": False}, stopped_at)
        assert mqtt.retained_status() == (True, {"online": False})
    finally:
        mqtt.reader.close()
