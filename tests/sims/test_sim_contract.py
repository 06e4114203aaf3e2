"""The simulator contract (SIMULATORS.md) for every model: stdout, READY shape, signals, seed.

Each test launches `python -m device_sims MODEL ...` itself (the command `SimProcess` or
`cx3_sim_for` builds) so it can keep everything the process writes to stdout, not only the
READY line.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for
from sessionconsole.testing.mqtt import Mosquitto
from tests.sims.es2_client import ES2Client
from tests.sims.test_us1_sim import DI, IR, START, STOP, connect, read, write

NAMES = {"us1": "US-1", "es2": "ES-2", "cx3": "CX-3"}
ENDPOINT_KEYS = {"serial_pty", "serial_url", "modbus_tcp", "rtu_pty", "mqtt"}
HOSTPORT = re.compile(r"127\.0\.0\.1:([1-9]\d*)")


def launch(sim: SimProcess, timeout: float = 10.0) -> bytes:
    """Run `sim.command` keeping stdout; set `sim.proc`, `sim.ready`; return bytes after READY."""
    proc = subprocess.Popen(
        sim.command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sim.proc = proc
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no READY line within {timeout} s: {buffer!r}"
            if selector.select(remaining):
                chunk = os.read(fd, 4096)
                assert chunk, f"simulator exited before READY: {buffer!r}"
                buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    assert line.startswith(b"READY "), line
    sim.ready = json.loads(line[len(b"READY ") :])
    return rest


def read_to_eof(sim: SimProcess, timeout: float = 2.0) -> bytes:
    """Everything left on the (exited) simulator's stdout."""
    assert sim.proc is not None and sim.proc.stdout is not None
    fd = sim.proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                chunk = os.read(fd, 4096)
                if not chunk:
                    return data
                data += chunk
    raise AssertionError(f"stdout not closed {timeout} s after exit")


@pytest.fixture(params=["us1", "es2", "cx3"])
def sim(request: pytest.FixtureRequest) -> Iterator[SimProcess]:
    """A not-yet-started simulator of each model with no transport option (CX-3: a broker)."""
    if request.param == "cx3":
        broker: Mosquitto = request.getfixturevalue("mosquitto_broker")
        process = cx3_sim_for(broker)
    else:
        process = SimProcess(request.param)
    try:
        yield process
    finally:
        process.kill()


def model_of(sim: SimProcess) -> str:
    """The model argument the simulator was started with."""
    return sim.command[3]


def device_activity(sim: SimProcess) -> None:
    """Talk to the device itself over its default endpoint (not the test port)."""
    model = model_of(sim)
    if model == "es2":
        client = ES2Client(sim.endpoints["serial_pty"])
        try:
            assert client.request("ID?")[:2] == ["ID", "ES-2"]
            assert client.request("STREAM,10") == ["ACK"]
            time.sleep(0.2)
            assert client.request("STREAM,0") == ["ACK"]
        finally:
            client.close()
    elif model == "us1":
        host, port = sim.modbus_tcp
        with socket.create_connection((host, port), timeout=2.0) as s:
            s.sendall(bytes([0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]))  # FC 3, address 0, 1 register
            reply = s.recv(64)
            assert reply[7:11] == bytes([3, 2, 0x03, 0xE8]), reply  # frequency 1000


def test_one_stdout_line_then_nothing_and_sigint_exits_0_within_1_s(sim: SimProcess) -> None:
    # SIMULATORS.md: "prints exactly one line to stdout, then only logs to stderr";
    # "SIGTERM or SIGINT: it stops within 1 s, exit code 0".
    rest = launch(sim)
    device_activity(sim)
    for request in (
        {"op": "state"},
        {"op": "link", "mode": "delay", "ms": 10},
        {"op": "inject", "fault": "patient_stop"},
        {"op": "teleport"},
        {"op": "clear"},
        {"op": "reboot"},
        {"op": "state"},
    ):
        assert "ok" in sim.request(request)
    time.sleep(0.2)
    assert sim.proc is not None
    t0 = time.monotonic()
    sim.proc.send_signal(signal.SIGINT)
    assert sim.proc.wait(timeout=2.0) == 0
    assert time.monotonic() - t0 < 1.0
    assert rest + read_to_eof(sim) == b""


def test_ready_shape_and_default_transport(sim: SimProcess) -> None:
    # SIMULATORS.md: READY {"model", "units": [{"endpoints"}], "control"}; the first unit's
    # endpoints also at top level; control on 127.0.0.1; with no transport option ES-2 takes
    # a pseudo-terminal and US-1 takes TCP.
    launch(sim)
    ready: dict[str, Any] = sim.ready
    model = model_of(sim)
    assert ready["model"] == NAMES[model]
    assert isinstance(ready["units"], list) and len(ready["units"]) == 1
    endpoints = ready["units"][0]["endpoints"]
    assert ready["endpoints"] == endpoints
    assert HOSTPORT.fullmatch(ready["control"]), ready["control"]
    assert sim.request({"op": "state"})["ok"] is True  # the control port answers
    assert set(endpoints) <= ENDPOINT_KEYS
    if model == "es2":
        assert set(endpoints) == {"serial_pty"}
        assert endpoints["serial_pty"].startswith("/dev/pts/")
        device_activity(sim)  # the pty speaks ES-2
    elif model == "us1":
        assert set(endpoints) == {"modbus_tcp"}
        assert HOSTPORT.fullmatch(endpoints["modbus_tcp"]), endpoints
        device_activity(sim)
    else:
        serial = sim.command[sim.command.index("--serial") + 1]
        broker = sim.command[sim.command.index("--broker") + 1]
        assert endpoints == {"mqtt": {"broker": broker, "root": f"cx3/{serial}"}}


def test_es2_all_transports_and_count_in_ready() -> None:
    # SIMULATORS.md: each transport option starts that endpoint; serial_url is a pyserial URL;
    # --count N gives N units, the first one's endpoints also at top level.
    sim = SimProcess("es2", ["--pty", "--tcp", "127.0.0.1:0", "--count", "2"])
    try:
        launch(sim)
        units = sim.ready["units"]
        assert len(units) == 2 and sim.ready["endpoints"] == units[0]["endpoints"]
        for unit in units:
            assert set(unit["endpoints"]) == {"serial_pty", "serial_url"}
            assert re.fullmatch(r"socket://127\.0\.0\.1:[1-9]\d*", unit["endpoints"]["serial_url"])
        assert units[0]["endpoints"] != units[1]["endpoints"]
    finally:
        sim.kill()


# ---- --seed --------------------------------------------------------------------------------
def physics_by_draw(
    sim: SimProcess, read: Callable[[dict[str, Any]], tuple[int, Any]]
) -> dict[int, Any]:
    """Poll `state` for ~1.2 s; map each random-draw count seen to the physics read there."""
    seen: dict[int, Any] = {}
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        draws, value = read(sim.request({"op": "state"}))
        seen.setdefault(draws, value)
        time.sleep(0.007)
    return seen


def es2_physics(seed: int, run: bool) -> dict[int, Any]:
    """One ES-2 process: impedances by draw count, idle or with channel 1 running."""
    with SimProcess("es2", ["--seed", str(seed)]) as sim:
        client = ES2Client(sim.endpoints["serial_pty"])
        try:
            assert client.request("WDG,2000") == ["ACK"]
            if run:
                assert client.request("CFG,1,SYM,100,200,0,0,1") == ["ACK"]
                assert client.request("AMP,1,10") == ["ACK"]
                assert client.request("RUN,1") == ["ACK"]
            return physics_by_draw(
                sim,
                lambda s: (
                    s["physics_draws"],
                    tuple(c["impedance_ohm"] for c in s["channels"]),
                ),
            )
        finally:
            client.request("STOP,0")
            client.close()


def us1_physics(seed: int) -> dict[int, Any]:
    """One US-1 process: coupling by draw count."""
    with SimProcess("us1", ["--seed", str(seed)]) as sim:
        return physics_by_draw(sim, lambda s: (s["physics"]["draws"], s["physics"]["coupling_pct"]))


def assert_repeats(first: dict[Any, Any], again: dict[Any, Any], other: dict[Any, Any]) -> None:
    """Same seed: equal physics at every draw count both saw; another seed: different."""
    common = sorted(set(first) & set(again))
    assert len(common) >= 10, (sorted(first), sorted(again))
    for draws in common:
        assert first[draws] == again[draws], (draws, first[draws], again[draws])
    differing = [d for d in set(first) & set(other) if first[d] != other[d]]
    assert differing, "a different seed gave the same physics"


def test_es2_seed_repeats_impedance_at_every_draw_whatever_the_traffic() -> None:
    # SIMULATORS.md: physics "seeded, so the random parts repeat"; impedance within 500-2 000
    # ohm. The two same-seed runs differ in their traffic (one runs channel 1, one idles), so
    # their physics steps differ in length; the draws still repeat exactly.
    first, again, other = es2_physics(5, run=True), es2_physics(5, run=False), es2_physics(6, True)
    for values in (*first.values(), *again.values(), *other.values()):
        assert all(500 <= ohm <= 2000 for ohm in values), values
    assert_repeats(first, again, other)


def test_us1_seed_repeats_coupling_at_every_draw() -> None:
    # SIMULATORS.md: coupling wanders realistically unless pinned, and the random parts repeat.
    assert_repeats(us1_physics(3), us1_physics(3), us1_physics(4))


def cx3_draws(state: dict[str, Any]) -> tuple[tuple[int, int], Any]:
    """CX-3 `state`: (ultrasound, stimulation) draw counts -> (coupling, impedance)."""
    us, stim = state["us"], state["stim"]
    return (us["draws"], stim["draws"]), (us["coupling_pct"], stim["impedance_ohm"])


def test_cx3_seed_repeats_coupling_and_impedance_at_every_draw(
    mosquitto_broker: Mosquitto,
) -> None:
    # SIMULATORS.md: physics "seeded, so the random parts repeat" with --seed; coupling
    # wanders, impedance drifts. Three live processes on one broker (own serials: the seed
    # alone decides the draws), polled in turn, so their steps fall at different moments.
    sims = [cx3_sim_for(mosquitto_broker, None, "--seed", str(seed)) for seed in (5, 5, 6)]
    try:
        for sim in sims:
            sim.launch()
        for sim in sims:
            sim.wait_ready()
        seen: list[dict[tuple[int, int], Any]] = [{}, {}, {}]
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            for sim, by_draw in zip(sims, seen, strict=True):
                draws, value = cx3_draws(sim.request({"op": "state"}))
                by_draw.setdefault(draws, value)
            time.sleep(0.005)
    finally:
        for sim in sims:
            sim.stop()
    for by_draw in seen:
        assert all(500 <= ohm <= 2000 for _, ohm in by_draw.values()), by_draw
    assert_repeats(*seen)


# ---- ignore_stop on the US-1 process -------------------------------------------------------
async def test_us1_ignore_stop_keeps_discrete_input_3_on_after_stop() -> None:
    # SIMULATORS.md: ignore_stop keeps the output on after stop commands until `clear` (a
    # stuck relay), visible to the console; US-1 discrete input 3 is "output active", while
    # STOP itself still takes the state to IDLE.
    with SimProcess("us1") as sim:
        client = await connect(sim, "tcp")
        try:
            # intensity 1.00, duty 100, PRR 100, 300 s, watchdog 5000 ms, heartbeat, START
            assert await write(client, 1, 100, 100, 100, 300, 5000, 0, START) == 0
            await asyncio.sleep(0.4)
            assert (await read(client, DI, 3))[0] is True
            assert (await sim.arequest({"op": "inject", "fault": "ignore_stop"}))["ok"]
            assert await write(client, 7, STOP) == 0
            for _ in range(3):
                regs = await read(client, IR, 0, 3)
                assert regs[0] == 0 and regs[2] > 0, regs  # IDLE, yet intensity measured
                assert (await read(client, DI, 3))[0] is True
                await asyncio.sleep(0.15)
            assert await write(client, 7, STOP) == 0  # a second STOP does not help either
            assert (await read(client, DI, 3))[0] is True
            assert (await sim.arequest({"op": "clear"}))["ok"]
            await asyncio.sleep(0.1)
            assert (await read(client, DI, 3))[0] is False
            assert (await read(client, IR, 2))[0] == 0
        finally:
            client.close()
