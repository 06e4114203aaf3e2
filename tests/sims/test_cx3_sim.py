"""CX-3 simulator conformance: pure-unit rules (injected time) and the real process on mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from device_sims.cx3.commands import handle_command
from device_sims.cx3.model import CX3Unit
from device_sims.us1.registers import State
from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for, unique_serial
from sessionconsole.testing.mqtt import Mosquitto

US_CFG: dict[str, Any] = {
    "frequency_khz": 1000,
    "intensity_w_cm2": 1.0,
    "duty_pct": 100,
    "time_s": 300,
}
STIM_CFG: dict[str, Any] = {
    "mode": "SYM",
    "freq_hz": 80,
    "pw_us": 200,
    "on_s": 0,
    "off_s": 0,
    "ramp_s": 2,
    "electrode": "PADS",
}
HEAD_CFG = {**STIM_CFG, "electrode": "US_HEAD"}


# ---- pure unit, injected time (no sleeping) ------------------------------------------------
class Bench:
    """A CX-3 unit at t=0 driven with made-up times; heartbeats every 100 ms by default."""

    def __init__(self, seed: int = 0) -> None:
        """Boot the unit at t=0."""
        self.unit = CX3Unit("CX3-0001", seed=seed, now=0.0)
        self.t = 0.0
        self.ids = itertools.count(1)

    def cmd(self, op: str, cmd_id: int | None = None, **args: Any) -> dict[str, Any]:
        """Send one command now; return the reply."""
        cmd_id = next(self.ids) if cmd_id is None else cmd_id
        payload = json.dumps({"id": cmd_id, "op": op, "args": args}).encode()
        return handle_command(self.unit, payload, self.t)

    def ok(self, op: str, **args: Any) -> None:
        """Send a command that must succeed."""
        reply = self.cmd(op, **args)
        assert reply["ok"] is True, reply

    def error(self, op: str, **args: Any) -> str:
        """Send a command that must fail; return its error code."""
        reply = self.cmd(op, **args)
        assert reply["ok"] is False, reply
        return str(reply["error"])

    def run(self, seconds: float, feed: bool = True) -> None:
        """Advance 50 Hz for `seconds`, heartbeating every 100 ms."""
        for i in range(round(seconds * 50)):
            self.t += 0.02
            if feed and i % 5 == 0:
                self.unit.heartbeat(b'{"n": 1}', self.t)
            self.unit.advance(self.t)

    def events(self) -> list[tuple[str, str | None]]:
        """The events emitted since the last call, as (event, output)."""
        return [(e["event"], e["output"]) for e in self.unit.take_events()]


def test_model_outputs_read_zero_in_the_same_instant_as_stop_and_done() -> None:
    # ICD: stop is "output off within 10 ms in the device, never ramped"; US timer at 0 ->
    # DONE, output off. The telemetry built at that same instant already reads zero.
    bench = Bench()
    bench.ok("configure_us", **{**US_CFG, "time_s": 2})
    bench.ok("configure_stim", **STIM_CFG)
    bench.ok("set_amplitude", ma=10)
    bench.ok("start", output="both")
    bench.run(1.5)
    live = bench.unit.telemetry(bench.t)
    assert live["us"]["intensity_w_cm2"] > 0 and live["stim"]["ma"] > 0
    bench.ok("stop", output="stim")
    assert bench.unit.telemetry(bench.t)["stim"]["ma"] == 0.0
    while bench.unit.us.state != State.DONE:
        bench.run(0.02)
        assert bench.t < 10.0
    done = bench.unit.telemetry(bench.t)
    assert (done["us"]["intensity_w_cm2"], done["us"]["power_w"]) == (0.0, 0.0)


def test_model_us_ramps_at_most_half_w_per_s_and_stop_is_immediate() -> None:
    bench = Bench()
    bench.ok("configure_us", **{**US_CFG, "intensity_w_cm2": 2.0})
    bench.ok("start", output="us")
    for _ in range(8):
        bench.run(0.5)
        assert bench.unit.us.target_w_cm2 <= 0.5 * bench.t + 1e-9
    assert bench.unit.us.target_w_cm2 == pytest.approx(2.0)
    bench.ok("stop", output="us")
    assert (bench.unit.us.state, bench.unit.us.emitted_w_cm2) == (State.IDLE, 0.0)


def test_model_stim_ramp_is_the_slower_of_5_ma_s_and_ramp_s() -> None:
    bench = Bench()
    bench.ok("configure_stim", **{**STIM_CFG, "ramp_s": 1})
    bench.ok("set_amplitude", ma=20.0)
    bench.ok("start", output="stim")
    bench.run(1.0)
    assert bench.unit.stim.state == "RAMP"
    assert bench.unit.stim.driven_ma == pytest.approx(5.0)  # 5 mA/s, not 20 mA over 1 s
    bench.run(3.1)
    assert (bench.unit.stim.state, bench.unit.stim.driven_ma) == ("ON", 20.0)
    bench.ok("set_amplitude", ma=10.0)
    bench.run(1.0)
    assert bench.unit.stim.driven_ma == pytest.approx(15.0)  # down at 5 mA/s, never a jump
    bench.ok("stop", output="stim")
    assert (bench.unit.stim.state, bench.unit.stim.output_ma) == ("IDLE", 0.0)


def test_model_stim_on_off_cycle() -> None:
    bench = Bench()
    bench.ok("configure_stim", **{**STIM_CFG, "on_s": 1, "off_s": 0.5, "ramp_s": 0})
    bench.ok("set_amplitude", ma=2.0)
    bench.ok("start", output="stim")
    bench.run(0.9)
    assert bench.unit.stim.state == "ON"
    bench.run(0.2)
    assert (bench.unit.stim.state, bench.unit.stim.driven_ma) == ("OFFPHASE", 0.0)
    bench.run(0.5)
    assert bench.unit.stim.state in ("RAMP", "ON")


def test_model_error_codes() -> None:
    bench = Bench()
    assert bench.error("start", output="us") == "NOCFG"
    assert bench.error("start", output="stim") == "NOCFG"
    assert bench.error("start", output="left") == "RANGE"
    assert bench.error("configure_us", **{**US_CFG, "frequency_khz": 2000}) == "RANGE"
    assert bench.error("configure_us", **{**US_CFG, "intensity_w_cm2": 3.01}) == "RANGE"
    assert bench.error("configure_us", **{**US_CFG, "duty_pct": 30}) == "RANGE"
    assert bench.error("configure_us", **{**US_CFG, "time_s": 0}) == "RANGE"
    assert bench.error("configure_stim", **{**STIM_CFG, "mode": "TENS"}) == "RANGE"
    assert bench.error("configure_stim", **{**STIM_CFG, "electrode": "HAND"}) == "RANGE"
    assert bench.error("configure_stim", **{**STIM_CFG, "ramp_s": 11}) == "RANGE"
    assert bench.error("set_amplitude", ma=10.2) == "RANGE"
    assert bench.error("set_amplitude", ma=100.5) == "RANGE"
    assert bench.error("set_watchdog", timeout_ms=199) == "RANGE"
    assert bench.error("configure_us", **{**US_CFG, "time_s": "60"}) == "SYNTAX"
    assert bench.error("configure_us", frequency_khz=1000) == "SYNTAX"
    assert bench.error("set_amplitude", ma=1.0, ch=1) == "SYNTAX"
    assert bench.error("set_watchdog", timeout_ms=300.0) == "SYNTAX"
    assert bench.error("teleport") == "UNKNOWN"
    bench.ok("configure_us", **US_CFG)
    bench.ok("start", output="us")
    assert bench.error("start", output="us") == "STATE"
    assert bench.error("configure_us", **US_CFG) == "STATE"
    bench.unit.us.physics.injected.head_disconnect = True
    bench.run(0.1)
    assert bench.events() == [("HEAD_DISCONNECTED", "us")]
    assert bench.error("start", output="us") == "FAULT"
    assert bench.error("reset_fault", output="us") == "STATE"  # cause still present
    bench.unit.us.physics.injected.head_disconnect = False
    bench.ok("reset_fault", output="us")
    bench.ok("start", output="us")


def test_model_syntax_replies_carry_id_only_when_readable() -> None:
    unit = CX3Unit("X", now=0.0)
    for payload in (b"{bad", b"[1, 2]", b'{"op": "stop"}', b'{"id": "7", "op": "stop"}', b"\xff"):
        assert handle_command(unit, payload, 0.0)["id"] is None
    no_op = handle_command(unit, b'{"id": 7, "args": {}}', 0.0)
    assert (no_op["id"], no_op["error"]) == (7, "SYNTAX")
    bad_args = handle_command(unit, b'{"id": 8, "op": "stop", "args": [1]}', 0.0)
    assert (bad_args["id"], bad_args["error"]) == (8, "SYNTAX")


def test_model_a_stop_that_cannot_be_read_still_stops_everything() -> None:
    for bad in ({"output": "all"}, {"output": 3}, {}):
        bench = Bench()
        bench.ok("configure_us", **US_CFG)
        bench.ok("start", output="us")
        bench.run(0.5)
        assert bench.unit.us.state == State.RUNNING
        reply = bench.cmd("stop", **bad)
        assert reply["ok"] is False and reply["error"] in ("RANGE", "SYNTAX"), reply
        assert bench.unit.us.state == State.IDLE, bad


def test_model_remembered_command_not_executed_twice_but_stop_always() -> None:
    bench = Bench()
    bench.ok("configure_us", **US_CFG)
    assert bench.cmd("start", cmd_id=100, output="us") == {"id": 100, "ok": True}
    assert bench.cmd("stop", cmd_id=101, output="us")["ok"]
    assert bench.unit.us.state == State.IDLE
    assert bench.cmd("start", cmd_id=100, output="us") == {"id": 100, "ok": True}
    assert bench.unit.us.state == State.IDLE  # remembered reply, not started again
    assert bench.unit.counters["repeats"] == 1
    assert bench.cmd("start", cmd_id=102, output="us")["ok"]
    assert bench.cmd("stop", cmd_id=101, output="us")["ok"]  # repeat, but stop always acts
    assert bench.unit.us.state == State.IDLE
    assert bench.cmd("start", cmd_id=100, output="stim")["error"] == "NOCFG"  # new args: new
    for n in range(64):
        bench.cmd("set_watchdog", cmd_id=1000 + n, timeout_ms=1000)
    assert bench.cmd("start", cmd_id=102, output="us")["ok"]  # forgotten after 64: executed
    assert bench.unit.us_running


def test_model_watchdog_fires_after_timeout_only_and_latches_both() -> None:
    bench = Bench()
    bench.ok("set_watchdog", timeout_ms=300)
    bench.ok("configure_us", **US_CFG)
    bench.ok("start", output="us")
    bench.run(1.0)
    bench.unit.heartbeat(b'{"n": 2}', bench.t)
    bench.run(0.28, feed=False)
    assert bench.unit.us.state == State.RUNNING
    bench.run(0.04, feed=False)
    assert bench.unit.latched_faults() == ["WATCHDOG"]
    assert (bench.unit.us.state, bench.unit.stim.state) == (State.FAULT, "FAULT")
    assert ("WATCHDOG", None) in bench.events()
    assert bench.error("start", output="us") == "FAULT"
    bench.ok("reset_fault", output="both")
    assert bench.unit.latched_faults() == []


def test_model_idle_unit_needs_no_heartbeat() -> None:
    bench = Bench()
    bench.run(5.0, feed=False)
    assert bench.unit.latched_faults() == []


def test_model_combination_stim_stops_with_ultrasound() -> None:
    bench = Bench()
    bench.ok("configure_us", **US_CFG)
    bench.ok("configure_stim", **HEAD_CFG)
    assert bench.error("start", output="stim") == "STATE"  # US not running
    bench.ok("set_amplitude", ma=10.0)
    bench.ok("start", output="both")
    bench.run(1.0)
    assert bench.unit.stim.running
    bench.events()
    bench.ok("stop", output="us")
    assert (bench.unit.stim.state, bench.unit.stim.output_ma) == ("IDLE", 0.0)
    assert bench.events() == [("CONTACT_LOST", "stim")]


def test_model_combination_stim_stops_when_contact_is_lost() -> None:
    bench = Bench()
    bench.ok("configure_us", **US_CFG)
    bench.ok("configure_stim", **HEAD_CFG)
    bench.ok("start", output="both")
    bench.run(0.5)
    bench.unit.us.physics.injected.coupling_pct = 20.0
    bench.run(0.04)
    assert bench.unit.stim.state == "IDLE"  # at once: no longer coupled
    bench.run(1.2)
    assert bench.unit.us.state == State.SUSPENDED
    assert bench.events() == [("CONTACT_LOST", "stim"), ("CONTACT_LOST", "us")]
    bench.unit.us.physics.injected.coupling_pct = None
    bench.run(0.1)
    assert bench.events() == [("CONTACT_RESTORED", "us")]
    assert bench.unit.stim.state == "IDLE"  # never restarts by itself


def test_model_both_starts_both_or_neither() -> None:
    bench = Bench()
    bench.ok("configure_us", **US_CFG)
    assert bench.error("start", output="both") == "NOCFG"
    assert bench.unit.us.state == State.IDLE
    bench.ok("configure_stim", **HEAD_CFG)
    bench.unit.us.physics.injected.coupling_pct = 40.0
    assert bench.error("start", output="both") == "STATE"  # head not coupled
    assert (bench.unit.us.state, bench.unit.stim.state) == (State.IDLE, "IDLE")
    bench.unit.us.physics.injected.coupling_pct = None
    bench.ok("start", output="both")
    assert (bench.unit.us.state, bench.unit.stim.state) == (State.RUNNING, "RAMP")


def test_model_electrode_overcurrent_and_patient_stop() -> None:
    bench = Bench()
    bench.ok("configure_stim", **STIM_CFG)
    bench.ok("set_amplitude", ma=10.0)
    bench.ok("start", output="stim")
    bench.run(0.5)
    bench.unit.stim_physics.electrode_off = True
    bench.run(0.04)
    assert bench.unit.latched_faults() == ["ELECTRODE"]
    assert bench.events() == [("ELECTRODE", "stim")]
    assert bench.error("reset_fault", output="stim") == "STATE"
    bench.unit.stim_physics.electrode_off = False
    bench.ok("reset_fault", output="stim")
    bench.ok("start", output="stim")
    bench.run(0.5)
    bench.unit.stim_physics.overcurrent_pending = True
    bench.run(0.04)
    assert bench.unit.latched_faults() == ["OVERCURRENT"]
    bench.ok("reset_fault", output="stim")
    bench.ok("configure_us", **US_CFG)
    bench.ok("start", output="both")
    bench.events()
    bench.unit.patient_stop(bench.t)
    assert bench.unit.latched_faults() == ["PATIENT_STOP"]
    assert (bench.unit.us.emitted_w_cm2, bench.unit.stim.output_ma) == (0.0, 0.0)
    assert bench.events() == [("PATIENT_STOP", None)]


def test_model_connection_loss_stops_outputs() -> None:
    bench = Bench()
    bench.ok("configure_us", **US_CFG)
    bench.ok("configure_stim", **STIM_CFG)
    bench.ok("start", output="both")
    bench.run(0.5)
    bench.unit.connection_lost(bench.t)
    assert (bench.unit.us.state, bench.unit.stim.state) == (State.IDLE, "IDLE")
    assert (bench.unit.us.emitted_w_cm2, bench.unit.stim.output_ma) == (0.0, 0.0)


# ---- real process on a real broker ---------------------------------------------------------
@dataclass
class Received:
    """One message a test subscriber got."""

    at: float
    sub: str
    raw: bytes
    retain: bool
    qos: int = 0

    @property
    def data(self) -> Any:
        """The payload decoded as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


class Console:
    """A test MQTT client subscribed to one unit's topics, recording every message."""

    def __init__(self, client: aiomqtt.Client, base: str) -> None:
        """Use a connected `client` for the unit under `base`."""
        self.client, self.base = client, base
        self.got: list[Received] = []
        self.arrived = asyncio.Event()
        self.ids = itertools.count(int(time.time() * 1000) % 1_000_000)

    async def read(self) -> None:
        """Record messages until cancelled."""
        async for message in self.client.messages:
            sub = str(message.topic)[len(self.base) + 1 :]
            raw = message.payload if isinstance(message.payload, bytes) else b""
            self.got.append(Received(time.monotonic(), sub, raw, message.retain, message.qos))
            self.arrived.set()

    async def wait(
        self, predicate: Callable[[Received], bool], within: float = 2.0, start: int = 0
    ) -> Received:
        """The first message from index `start` on that satisfies `predicate`."""
        deadline = time.monotonic() + within
        while True:
            for item in self.got[start:]:
                if predicate(item):
                    return item
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message within {within} s: {self.got[-5:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)

    async def send(self, op: str, cmd_id: int | None = None, **args: Any) -> dict[str, Any]:
        """Publish a command and wait for its reply."""
        cmd_id = next(self.ids) if cmd_id is None else cmd_id
        start = len(self.got)
        payload = json.dumps({"id": cmd_id, "op": op, "args": args})
        await self.client.publish(f"{self.base}/cmd", payload, qos=1)
        reply = await self.wait(lambda m: m.sub == "reply" and m.data["id"] == cmd_id, 2, start)
        result: dict[str, Any] = reply.data
        return result

    async def ok(self, op: str, **args: Any) -> None:
        """A command that must succeed."""
        reply = await self.send(op, **args)
        assert reply["ok"] is True, reply

    async def raw(self, payload: bytes) -> dict[str, Any]:
        """Publish raw bytes on `cmd`; return the next reply."""
        start = len(self.got)
        await self.client.publish(f"{self.base}/cmd", payload, qos=1)
        reply: dict[str, Any] = (await self.wait(lambda m: m.sub == "reply", 2, start)).data
        return reply

    async def heartbeat(self, n: int = 0) -> None:
        """One heartbeat (QoS 0)."""
        await self.client.publish(f"{self.base}/heartbeat", json.dumps({"n": n}))

    async def event(self, name: str, within: float = 2.0, start: int = 0) -> Received:
        """Wait for an event named `name`."""
        return await self.wait(
            lambda m: m.sub == "event" and m.data["event"] == name, within, start
        )

    async def telemetry(self, within: float = 1.0) -> dict[str, Any]:
        """The next telemetry message."""
        start = len(self.got)
        result: dict[str, Any] = (
            await self.wait(lambda m: m.sub == "telemetry", within, start)
        ).data
        return result


@contextlib.asynccontextmanager
async def open_console(broker: Mosquitto, sim: SimProcess) -> AsyncIterator[Console]:
    """Connect a console to `sim`'s topics on `broker`."""
    base = sim.endpoints["mqtt"]["root"]
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"t-{base}") as client:
        await client.subscribe(f"{base}/#", qos=1)
        console = Console(client, base)
        reader = asyncio.create_task(console.read())
        try:
            await console.wait(lambda m: m.sub == "status")
            yield console
        finally:
            reader.cancel()


@pytest.fixture
async def console(mosquitto_broker: Mosquitto, cx3_sim: SimProcess) -> AsyncIterator[Console]:
    """A console subscribed to the fixture simulator's topics."""
    async with open_console(mosquitto_broker, cx3_sim) as c:
        yield c


async def retained_status(broker: Mosquitto, base: str) -> dict[str, Any]:
    """What a brand-new subscriber gets as the retained status."""
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe(f"{base}/status", qos=1)
        async with asyncio.timeout(2.0):
            async for message in client.messages:
                assert message.retain
                assert isinstance(message.payload, bytes)
                status: dict[str, Any] = json.loads(message.payload)
                return status
    raise AssertionError("unreachable")


async def wait_state(
    sim: SimProcess, predicate: Callable[[dict[str, Any]], bool], within: float
) -> dict[str, Any]:
    """Poll the test port until `predicate(state)`; return that state."""
    deadline = time.monotonic() + within
    while True:
        state = await sim.arequest({"op": "state"})
        if predicate(state):
            return state
        assert time.monotonic() < deadline, f"state not reached within {within} s: {state}"
        await asyncio.sleep(0.01)


async def test_ready_line_and_retained_status(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess, console: Console
) -> None:
    base = cx3_sim.endpoints["mqtt"]["root"]
    assert cx3_sim.ready["model"] == "CX-3"
    assert cx3_sim.endpoints == {"mqtt": {"broker": mosquitto_broker.url, "root": base}}
    assert base.startswith("cx3/CX3-")
    status = await retained_status(mosquitto_broker, base)
    assert status == {"online": True, "boot": 1, "fw": status["fw"], "model": "CX-3"}
    assert isinstance(status["fw"], str)


async def test_telemetry_10_hz_in_icd_shape(console: Console) -> None:
    await console.telemetry()
    start = len(console.got)
    await asyncio.sleep(1.0)
    frames = [m for m in console.got[start:] if m.sub == "telemetry"]
    assert 8 <= len(frames) <= 12, len(frames)
    assert not any(m.retain for m in frames)
    seqs = [m.data["seq"] for m in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    tel = frames[-1].data
    assert set(tel) == {"seq", "t_ms", "us", "stim", "faults"}
    assert set(tel["us"]) == {
        "state",
        "intensity_set_w_cm2",
        "intensity_w_cm2",
        "power_w",
        "head_temp_c",
        "coupling_pct",
        "remaining_s",
        "energy_j",
        "era_cm2",
        "bnr",
    }
    assert set(tel["stim"]) == {"state", "mode", "electrode", "ma_set", "ma", "impedance_ohm"}
    assert (tel["us"]["state"], tel["stim"]["state"], tel["faults"]) == ("IDLE", "IDLE", [])
    assert (tel["us"]["era_cm2"], tel["us"]["bnr"]) == (5.0, 4.2)


async def test_every_error_code_over_mqtt(console: Console) -> None:
    bad_json = await console.raw(b"{not json")
    assert (bad_json["id"], bad_json["ok"], bad_json["error"]) == (None, False, "SYNTAX")
    assert isinstance(bad_json["detail"], str)
    no_id = await console.raw(b'{"op": "stop", "args": {"output": "us"}}')
    assert (no_id["id"], no_id["error"]) == (None, "SYNTAX")
    wrong_type = await console.send("set_watchdog", timeout_ms="300")
    assert wrong_type["error"] == "SYNTAX" and wrong_type["id"] is not None
    assert (await console.send("warp", speed=9))["error"] == "UNKNOWN"
    assert (await console.send("set_watchdog", timeout_ms=6000))["error"] == "RANGE"
    assert (await console.send("start", output="us"))["error"] == "NOCFG"
    await console.ok("configure_us", **US_CFG)
    await console.ok("start", output="us")
    assert (await console.send("configure_us", **US_CFG))["error"] == "STATE"
    await console.ok("stop", output="both")
    await console.ok("set_watchdog", timeout_ms=200)
    await console.ok("start", output="us")
    await console.event("WATCHDOG")
    reply = await console.send("start", output="us")
    assert set(reply) == {"id", "ok", "error", "detail"} and reply["error"] == "FAULT"


async def test_repeated_command_answered_from_memory_and_stop_always_runs(
    cx3_sim: SimProcess, console: Console
) -> None:
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    assert await console.send("start", cmd_id=9_000_001, output="us") == {
        "id": 9_000_001,
        "ok": True,
    }
    assert await console.send("stop", cmd_id=9_000_002, output="us") == {
        "id": 9_000_002,
        "ok": True,
    }
    assert await console.send("start", cmd_id=9_000_001, output="us") == {
        "id": 9_000_001,
        "ok": True,
    }
    state = await cx3_sim.arequest({"op": "state"})
    assert state["us"]["state"] == "IDLE" and state["counters"]["repeats"] == 1
    await console.ok("start", output="us")
    assert await console.send("stop", cmd_id=9_000_002, output="us") == {
        "id": 9_000_002,
        "ok": True,
    }
    assert (await cx3_sim.arequest({"op": "state"}))["us"]["state"] == "IDLE"


@pytest.mark.parametrize("timeout_ms", [200, 300, 5000])  # ICD: set_watchdog 200-5000 ms
async def test_watchdog_never_early_and_within_timeout_plus_250_ms(
    cx3_sim: SimProcess, console: Console, timeout_ms: int
) -> None:
    await console.ok("set_watchdog", timeout_ms=timeout_ms)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("start", output="stim")
    armed_ms = (await cx3_sim.arequest({"op": "state"}))["watchdog"]["last_feed_t_ms"]
    for beat in range(1, 4):  # a few regular heartbeats, then silence
        await asyncio.sleep(0.05)
        start = len(console.got)
        before = time.monotonic()
        await console.heartbeat(beat)
    event = await console.event("WATCHDOG", within=timeout_ms / 1000 + 1.0, start=start)
    # Measured by the client: no earlier than the timeout after its last heartbeat was
    # handed over (a weak bound: delivery hides early fires; the device's check below
    # does not), and within timeout + 250 ms of it.
    assert event.at - before >= timeout_ms / 1000, event.at - before
    assert event.at - before <= (timeout_ms + 250) / 1000, event.at - before
    # The device's own clock: event t_ms minus the time of the heartbeat it took last.
    state = await cx3_sim.arequest({"op": "state"})
    assert state["watchdog"]["last_feed_t_ms"] > armed_ms  # heartbeats fed it after start
    since_heartbeat_ms = event.data["t_ms"] - state["watchdog"]["last_feed_t_ms"]
    assert timeout_ms <= since_heartbeat_ms <= timeout_ms + 250, since_heartbeat_ms
    assert state["faults"] == ["WATCHDOG"] and state["stim"]["state"] == "FAULT"


async def test_heartbeats_every_100_ms_keep_outputs_running(
    cx3_sim: SimProcess, console: Console
) -> None:
    await console.ok("set_watchdog", timeout_ms=300)
    await console.ok("configure_us", **US_CFG)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("start", output="both")
    t0 = time.monotonic()
    beat = 0
    while time.monotonic() - t0 < 1.5:
        beat += 1
        await console.heartbeat(beat)
        await asyncio.sleep(0.1)
    state = await cx3_sim.arequest({"op": "state"})
    assert (state["us"]["state"], state["stim"]["state"], state["faults"]) == ("RUNNING", "ON", [])
    assert state["counters"]["heartbeats"] >= 12
    assert not [m for m in console.got if m.sub == "event" and m.data["event"] == "WATCHDOG"]


async def test_stop_reply_means_output_already_off(cx3_sim: SimProcess, console: Console) -> None:
    # ICD: stop switches the output off "within 10 ms in the device, never ramped". The unit
    # replies only after acting, so the test port, asked right after the reply, reads it off.
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("set_amplitude", ma=10.0)
    for output in ("us", "stim", "both"):
        await console.ok("start", output="both")
        await asyncio.sleep(0.6)
        live = await cx3_sim.arequest({"op": "state"})
        assert live["us"]["output_active"] and live["stim"]["output_active"], live
        await console.ok("stop", output=output)
        after = await cx3_sim.arequest({"op": "state"})
        if output in ("us", "both"):
            assert (after["us"]["output_active"], after["us"]["emitted_w_cm2"]) == (False, 0.0)
            assert after["us"]["measured_intensity_w_cm2"] == 0.0
        if output in ("stim", "both"):
            assert (after["stim"]["output_active"], after["stim"]["measured_ma"]) == (False, 0.0)
        await console.ok("stop", output="both")


async def test_combination_mode_cascade(cx3_sim: SimProcess, console: Console) -> None:
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("configure_stim", **HEAD_CFG)
    await console.ok("set_amplitude", ma=5.0)
    assert (await console.send("start", output="stim"))["error"] == "STATE"
    await console.ok("start", output="both")
    tel = await console.telemetry()
    assert (tel["us"]["state"], tel["stim"]["electrode"]) == ("RUNNING", "US_HEAD")
    start = len(console.got)
    await console.ok("stop", output="us")
    event = await console.event("CONTACT_LOST", start=start)
    assert event.data["output"] == "stim" and isinstance(event.data["t_ms"], int)
    state = await cx3_sim.arequest({"op": "state"})
    assert (state["stim"]["state"], state["stim"]["driven_ma"]) == ("IDLE", 0.0)
    await console.ok("start", output="both")
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "set", "coupling_pct": 20}))["ok"]
    await console.event("CONTACT_LOST", within=0.5, start=start)
    assert (await cx3_sim.arequest({"op": "state"}))["stim"]["state"] == "IDLE"


async def test_both_starts_both_or_neither(cx3_sim: SimProcess, console: Console) -> None:
    await console.ok("configure_us", **US_CFG)
    assert (await console.send("start", output="both"))["error"] == "NOCFG"
    await console.ok("configure_stim", **STIM_CFG)
    assert (await cx3_sim.arequest({"op": "inject", "fault": "electrode_off"}))["ok"]
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("start", output="stim")
    await console.event("ELECTRODE")
    assert (await console.send("start", output="both"))["error"] == "FAULT"
    state = await cx3_sim.arequest({"op": "state"})
    assert (state["us"]["state"], state["stim"]["state"]) == ("IDLE", "FAULT")


async def test_sigkill_leaves_retained_will(mosquitto_broker: Mosquitto) -> None:
    sim = cx3_sim_for(mosquitto_broker).start()
    base = sim.endpoints["mqtt"]["root"]
    assert (await retained_status(mosquitto_broker, base))["online"] is True
    sim.kill()
    deadline = time.monotonic() + 3.0  # keepalive 2 s; a killed process's socket closes at once
    while (status := await retained_status(mosquitto_broker, base)) != {"online": False}:
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


async def test_sigterm_exits_0_within_1_s_and_says_offline(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess
) -> None:
    assert cx3_sim.proc is not None
    t0 = time.monotonic()
    cx3_sim.proc.send_signal(signal.SIGTERM)
    assert cx3_sim.proc.wait(timeout=1.0) == 0
    assert time.monotonic() - t0 < 1.0
    base = cx3_sim.endpoints["mqtt"]["root"]
    assert await retained_status(mosquitto_broker, base) == {"online": False}


async def test_link_disconnect_stops_outputs_and_fires_will(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess, console: Console
) -> None:
    await console.ok("configure_us", **US_CFG)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("start", output="both")
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "link", "mode": "disconnect"}))["ok"]
    will = await console.wait(lambda m: m.sub == "status", 2.0, start)
    assert will.data == {"online": False}
    state = await cx3_sim.arequest({"op": "state"})
    assert (state["online"], state["us"]["state"], state["stim"]["state"]) == (
        False,
        "IDLE",
        "IDLE",
    )
    assert not state["us"]["output_active"] and not state["stim"]["output_active"]
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "link", "mode": "ok"}))["ok"]
    back = await console.wait(lambda m: m.sub == "status", 2.0, start)
    assert back.data["online"] is True and back.data["boot"] == 1


async def test_broker_loss_stops_outputs_and_unit_reconnects() -> None:
    with Mosquitto() as broker, cx3_sim_for(broker) as sim:
        async with open_console(broker, sim) as console:
            await console.ok("configure_us", **US_CFG)
            await console.ok("set_watchdog", timeout_ms=5000)
            await console.ok("start", output="us")
        broker.kill()
        state = await wait_state(sim, lambda s: not s["online"], 1.0)
        assert (state["us"]["state"], state["us"]["output_active"]) == ("IDLE", False)
        broker.start()
        await wait_state(sim, lambda s: s["online"], 5.0)
        status = await retained_status(broker, sim.endpoints["mqtt"]["root"])
        assert status["online"] is True


async def test_link_drop_silences_both_ways(cx3_sim: SimProcess, console: Console) -> None:
    assert (await cx3_sim.arequest({"op": "link", "mode": "drop"}))["ok"]
    await asyncio.sleep(0.15)
    start = len(console.got)
    await console.client.publish(
        f"{console.base}/cmd",
        json.dumps({"id": 1, "op": "set_watchdog", "args": {"timeout_ms": 400}}),
        qos=1,
    )
    await asyncio.sleep(0.3)
    assert [m.sub for m in console.got[start:] if m.sub != "cmd"] == []
    state = await cx3_sim.arequest({"op": "state"})
    assert state["online"] and state["watchdog"]["timeout_ms"] == 1000
    assert (await cx3_sim.arequest({"op": "link", "mode": "ok"}))["ok"]
    await console.telemetry()


async def test_link_delay_and_corrupt(cx3_sim: SimProcess, console: Console) -> None:
    assert (await cx3_sim.arequest({"op": "link", "mode": "delay", "ms": 150}))["ok"]
    t0 = time.monotonic()
    await console.ok("set_watchdog", timeout_ms=1000)
    assert time.monotonic() - t0 >= 0.15
    assert (await cx3_sim.arequest({"op": "link", "mode": "corrupt", "rate": 1.0}))["ok"]
    await asyncio.sleep(0.2)  # frames queued under `delay` are still arriving
    start = len(console.got)
    await asyncio.sleep(0.35)
    frames = [m for m in console.got[start:] if m.sub == "telemetry"]
    assert frames and all(m.data is None for m in frames)
    assert (await cx3_sim.arequest({"op": "clear"}))["ok"]
    # A corrupted frame sent just before `clear` may still be in flight: wait for a good one.
    start = len(console.got)
    good = await console.wait(lambda m: m.sub == "telemetry" and m.data is not None, 1.0, start)
    assert good.data["seq"] > 0


async def test_reboot_bumps_boot_and_sends_boot_event(
    mosquitto_broker: Mosquitto, cx3_sim: SimProcess, console: Console
) -> None:
    await console.ok("configure_us", **US_CFG)
    start = len(console.got)
    assert await cx3_sim.arequest({"op": "reboot"}) == {"ok": True, "boot": 2}
    boot = await console.event("BOOT", start=start)
    assert boot.data["output"] is None
    statuses = [m.data for m in console.got[start:] if m.sub == "status"]
    assert statuses[-1]["online"] is True and statuses[-1]["boot"] == 2
    assert (await console.send("start", output="us"))["error"] == "NOCFG"  # config lost
    assert (await retained_status(mosquitto_broker, console.base))["boot"] == 2


async def test_injections_reach_telemetry_and_events(cx3_sim: SimProcess, console: Console) -> None:
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("start", output="us")
    t0 = time.monotonic()
    assert (await cx3_sim.arequest({"op": "inject", "fault": "overtemp"}))["ok"]
    event = await console.event("OVERTEMP", within=2.2)  # past 41 °C within 2 s + delivery
    assert event.at - t0 <= 2.2
    assert event.data["output"] == "us"
    tel = await console.telemetry()
    # telemetry rounds to 0.1 °C: a head just past 41 °C may read 41.0
    assert tel["faults"] == ["OVERTEMP"] and tel["us"]["head_temp_c"] >= 41.0
    assert (await cx3_sim.arequest({"op": "inject", "fault": "patient_stop"}))["ok"]
    assert (await console.event("PATIENT_STOP")).data["output"] is None
    assert (await console.telemetry())["faults"] == ["PATIENT_STOP", "OVERTEMP"]
    assert (await cx3_sim.arequest({"op": "set", "impedance_ohm": 1500, "ch": 1}))["ok"]
    assert (await console.telemetry())["stim"]["impedance_ohm"] == 1500


async def test_overtemp_stays_hot_until_clear(cx3_sim: SimProcess, console: Console) -> None:
    # SIMULATORS.md: overtemp: the head "climbs past 41 °C within 2 s and stays hot until
    # clear". CX-3 ICD: the US-1 temperature rule (above 41.0 °C → fault, latched), and
    # reset_fault only once the cause is gone (else STATE).
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("start", output="us")
    assert (await cx3_sim.arequest({"op": "inject", "fault": "overtemp"}))["ok"]
    await console.event("OVERTEMP", within=2.2)
    start = len(console.got)
    t_hot = time.monotonic()
    while time.monotonic() - t_hot < 1.5:
        reply = await console.send("reset_fault", output="us")
        assert (reply["ok"], reply.get("error")) == (False, "STATE"), reply
        await asyncio.sleep(0.1)
    tel = [m.data for m in console.got[start:] if m.sub == "telemetry"]
    assert len(tel) >= 10, tel  # 10 Hz for 1.5 s
    for frame in tel:  # telemetry rounds to 0.1 °C: just past 41 °C may read 41.0
        assert frame["us"]["head_temp_c"] >= 41.0 and frame["faults"] == ["OVERTEMP"], frame
    assert (await cx3_sim.arequest({"op": "clear"}))["ok"]
    assert (await cx3_sim.arequest({"op": "set", "head_temp_c": 35.0}))["ok"]
    await wait_state(cx3_sim, lambda s: s["us"]["head_temp_c"] == 35.0, 1.0)
    await console.ok("reset_fault", output="us")
    assert (await console.telemetry())["faults"] == []


def test_test_port_state_schema_and_errors(cx3_sim: SimProcess) -> None:
    state = cx3_sim.request({"op": "state"})
    expected = {"model", "unit", "serial", "root", "t_s", "t_ms", "online", "boot", "us", "stim"}
    expected |= {"faults", "patient_stop_pressed", "watchdog", "counters", "link", "injected"}
    assert expected <= state.keys()
    assert (state["model"], state["boot"], state["online"]) == ("CX-3", 1, True)
    assert state["link"] == {"mode": "ok", "delay_ms": 0, "corrupt_rate": 0.0}
    assert cx3_sim.request({"op": "teleport"})["error"].startswith("unknown op")
    assert "unknown fault" in cx3_sim.request({"op": "inject", "fault": "flood"})["error"]
    assert "ch" in cx3_sim.request({"op": "inject", "fault": "electrode_off", "ch": 2})["error"]
    assert "unknown link mode" in cx3_sim.request({"op": "link", "mode": "sideways"})["error"]
    assert "coupling_pct" in cx3_sim.request({"op": "set", "coupling_pct": "lots"})["error"]
    assert "unknown unit" in cx3_sim.request({"op": "state", "unit": 1})["error"]
    assert cx3_sim.request({"op": "set", "head_temp_c": 35})["ok"]
    assert cx3_sim.request({"op": "state"})["injected"]["head_temp_c"] == 35.0


def test_fault_schedule_file(mosquitto_broker: Mosquitto, tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[at]]\nt_s = 0.1\nrequest = {op = "inject", fault = "electrode_off"}\n')
    with cx3_sim_for(mosquitto_broker, None, "--faults", str(faults)) as sim:
        deadline = time.monotonic() + 2.0
        while sim.request({"op": "state"})["injected"]["faults"] != ["electrode_off"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_count_runs_independent_units(mosquitto_broker: Mosquitto) -> None:
    serial = unique_serial() + "-07"
    with cx3_sim_for(mosquitto_broker, serial, "--count", "2") as sim:
        roots = [u["endpoints"]["mqtt"]["root"] for u in sim.ready["units"]]
        assert roots == [f"cx3/{serial}", f"cx3/{serial[:-2]}08"]
        assert sim.request({"op": "state", "unit": 1})["serial"] == serial[:-2] + "08"
        assert sim.request({"op": "set", "unit": 1, "coupling_pct": 40})["ok"]
        assert sim.request({"op": "state", "unit": 0})["injected"]["coupling_pct"] is None


# ---- ICD rows added after the second audit (real process, real broker) --------------------
def frames_from(console: Console, start: int) -> list[dict[str, Any]]:
    """Decoded telemetry received from index `start` on."""
    return [m.data for m in console.got[start:] if m.sub == "telemetry" and m.data is not None]


async def test_set_intensity_range_and_ramp_seen_in_telemetry(console: Console) -> None:
    # ICD: set_intensity `intensity_w_cm2` 0-3.0 (RANGE otherwise), any state; "ramps
    # <= 0.5 W/cm² per s". Measured intensity carries <= 2 % noise; telemetry rounds to 0.01.
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **{**US_CFG, "intensity_w_cm2": 0.0})
    await console.ok("start", output="us")
    for bad in (3.01, -0.1, 5):
        assert (await console.send("set_intensity", intensity_w_cm2=bad))["error"] == "RANGE"
    last = await console.telemetry()
    assert last["us"]["intensity_set_w_cm2"] == 0.0
    t0_ms = last["t_ms"]  # sent before the command: the ramp starts no earlier
    start = len(console.got)
    await console.ok("set_intensity", intensity_w_cm2=1.0)
    await console.wait(lambda m: m.sub == "telemetry", 1.0, start)
    await asyncio.sleep(1.2)
    frames = frames_from(console, start)
    assert len(frames) >= 10
    for tel in frames:
        allowed = 0.5 * (tel["t_ms"] - t0_ms) / 1000.0
        assert tel["us"]["intensity_w_cm2"] <= allowed * 1.02 + 0.011, (tel, t0_ms)
        assert tel["us"]["state"] == "RUNNING"
    assert frames[-1]["us"]["intensity_set_w_cm2"] == 1.0
    assert 0.3 <= frames[-1]["us"]["intensity_w_cm2"] < 0.9  # moving, but not there yet
    await console.ok("stop", output="us")
    await console.ok("set_intensity", intensity_w_cm2=0.5)  # allowed in any state
    assert (await console.telemetry())["us"]["intensity_set_w_cm2"] == 0.5


async def test_range_and_state_over_mqtt(console: Console) -> None:
    # ICD argument ranges of configure_us, configure_stim and set_amplitude, sent over MQTT;
    # configure_stim is allowed only with the stimulation stopped.
    bad_us: list[dict[str, Any]] = [
        {"frequency_khz": 2000},
        {"intensity_w_cm2": 3.5},
        {"duty_pct": 25},
        {"time_s": 1801},
        {"time_s": 0},
    ]
    for bad in bad_us:
        reply = await console.send("configure_us", **{**US_CFG, **bad})
        assert reply["error"] == "RANGE", (bad, reply)
    bad_stim: list[dict[str, Any]] = [
        {"mode": "TENS"},
        {"freq_hz": 0},
        {"freq_hz": 251},
        {"pw_us": 4},
        {"pw_us": 401},
        {"on_s": 61},
        {"off_s": -1},
        {"ramp_s": 10.5},
        {"electrode": "HAND"},
    ]
    for bad in bad_stim:
        reply = await console.send("configure_stim", **{**STIM_CFG, **bad})
        assert reply["error"] == "RANGE", (bad, reply)
    for ma in (-0.5, 100.5, 10.2):
        assert (await console.send("set_amplitude", ma=ma))["error"] == "RANGE", ma
    assert (await console.send("start", output="stim"))["error"] == "NOCFG"  # nothing stuck
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("set_amplitude", ma=100.0)
    await console.ok("set_amplitude", ma=4.5)
    await console.ok("start", output="stim")
    reply = await console.send("configure_stim", **{**STIM_CFG, "mode": "ASYM"})
    assert reply["error"] == "STATE", reply
    tel = await console.telemetry()
    assert (tel["stim"]["mode"], tel["stim"]["ma_set"]) == ("SYM", 4.5)
    await console.ok("stop", output="stim")
    await console.ok("configure_stim", **{**STIM_CFG, "mode": "ASYM"})


async def test_reset_fault_needs_cause_gone_then_idle(
    cx3_sim: SimProcess, console: Console
) -> None:
    # ICD: reset_fault "stopped, cause gone"; HEAD_DISCONNECTED event; US-1 RESET_FAULT -> IDLE.
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("start", output="us")
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "inject", "fault": "head_disconnect"}))["ok"]
    event = await console.event("HEAD_DISCONNECTED", start=start)
    assert event.data["output"] == "us"
    tel = await console.telemetry()
    assert (tel["us"]["state"], tel["faults"]) == ("FAULT", ["HEAD_DISCONNECTED"])
    reply = await console.send("reset_fault", output="us")
    assert reply["ok"] is False and reply["error"] == "STATE", reply  # head still unplugged
    assert (await console.telemetry())["us"]["state"] == "FAULT"
    assert (await cx3_sim.arequest({"op": "clear"}))["ok"]
    await console.ok("reset_fault", output="us")
    tel = await console.telemetry()
    assert (tel["us"]["state"], tel["faults"]) == ("IDLE", [])
    await console.ok("start", output="us")


async def test_only_heartbeats_feed_the_watchdog(console: Console) -> None:
    # ICD: "Only heartbeats feed it": commands every 50 ms do not keep the outputs alive.
    await console.ok("set_watchdog", timeout_ms=300)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("start", output="stim")
    start = len(console.got)
    await console.heartbeat(1)
    last_beat = time.monotonic()

    stop = asyncio.Event()

    async def chatter() -> None:
        # Fire-and-forget commands every 50 ms (no waiting for replies), until told to stop.
        while not stop.is_set():
            payload = {"id": next(console.ids), "op": "set_amplitude", "args": {"ma": 2.0}}
            await console.client.publish(f"{console.base}/cmd", json.dumps(payload), qos=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    chatting = asyncio.create_task(chatter())
    try:
        event = await console.event("WATCHDOG", within=1.0, start=start)
    finally:
        stop.set()
        await asyncio.wait_for(chatting, 2.0)
    assert 0.300 <= event.at - last_beat <= 0.600, event.at - last_beat
    commands = [m for m in console.got[start:] if m.sub == "cmd" and m.at < event.at]
    assert len(commands) >= 4  # the unit was busy with commands all along
    acted = [m for m in console.got[start:] if m.sub == "reply" and m.at < event.at]
    assert len(acted) >= 3 and all(m.data["ok"] for m in acted), acted


async def test_overcurrent_and_output_deviation_events(
    cx3_sim: SimProcess, console: Console
) -> None:
    # ICD events OVERCURRENT (stim) and OUTPUT_DEVIATION (us: measured > 20 % off the ramped
    # target for 2 s while RUNNING); faults appear in telemetry. PADS: outputs independent.
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("set_amplitude", ma=10.0)
    await console.ok("start", output="both")
    await asyncio.sleep(0.3)
    start = len(console.got)
    t0 = time.monotonic()
    assert (await cx3_sim.arequest({"op": "inject", "fault": "output_deviation"}))["ok"]
    assert (await cx3_sim.arequest({"op": "inject", "fault": "overcurrent"}))["ok"]
    overcurrent = await console.event("OVERCURRENT", within=1.0, start=start)
    assert overcurrent.data["output"] == "stim"
    tel = await console.telemetry()
    assert (tel["stim"]["state"], tel["us"]["state"]) == ("FAULT", "RUNNING")
    assert tel["faults"] == ["OVERCURRENT"]
    deviation = await console.event("OUTPUT_DEVIATION", within=3.0, start=start)
    assert deviation.data["output"] == "us"
    assert deviation.at - t0 >= 1.95, deviation.at - t0  # not before 2 s of deviation
    tel = await console.telemetry()
    assert tel["us"]["state"] == "FAULT"
    assert tel["faults"] == ["OUTPUT_DEVIATION", "OVERCURRENT"]
    assert (await console.send("start", output="stim"))["error"] == "FAULT"


async def test_ignore_stop_output_stays_on_in_telemetry(
    cx3_sim: SimProcess, console: Console
) -> None:
    # SIMULATORS.md ignore_stop: the unit keeps its output on after stop commands until
    # `clear`; the console must notice from telemetry.
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("configure_stim", **STIM_CFG)
    await console.ok("set_amplitude", ma=10.0)
    await console.ok("start", output="both")
    await asyncio.sleep(0.6)
    assert (await cx3_sim.arequest({"op": "inject", "fault": "ignore_stop"}))["ok"]
    await console.ok("stop", output="both")
    await asyncio.sleep(0.2)
    start = len(console.got)
    await console.wait(lambda m: m.sub == "telemetry", 1.0, start)
    await asyncio.sleep(0.3)
    frames = frames_from(console, start)
    assert frames
    for tel in frames:
        assert (tel["us"]["state"], tel["stim"]["state"]) == ("IDLE", "IDLE")
        assert tel["us"]["intensity_w_cm2"] > 0.0 and tel["stim"]["ma"] > 0.0, tel
    assert (await cx3_sim.arequest({"op": "clear"}))["ok"]
    await asyncio.sleep(0.15)
    tel = await console.telemetry()
    assert (tel["us"]["intensity_w_cm2"], tel["stim"]["ma"]) == (0.0, 0.0)


async def test_combination_ultrasound_fault_stops_stimulation(
    cx3_sim: SimProcess, console: Console
) -> None:
    # ICD combination mode: when the ultrasound faults, the stimulation stops too and
    # CONTACT_LOST is sent. SIMULATORS.md: overtemp passes 41 °C within 2 s.
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **US_CFG)
    await console.ok("configure_stim", **HEAD_CFG)
    await console.ok("set_amplitude", ma=5.0)
    await console.ok("start", output="both")
    start = len(console.got)
    t0 = time.monotonic()
    assert (await cx3_sim.arequest({"op": "inject", "fault": "overtemp"}))["ok"]
    overtemp = await console.event("OVERTEMP", within=2.2, start=start)
    assert overtemp.at - t0 <= 2.2
    lost = await console.event("CONTACT_LOST", within=0.5, start=start)
    assert lost.data["output"] == "stim"
    assert lost.data["t_ms"] >= overtemp.data["t_ms"]
    tel = await console.telemetry()
    assert (tel["us"]["state"], tel["stim"]["state"], tel["stim"]["ma"]) == ("FAULT", "IDLE", 0.0)
    assert tel["faults"] == ["OVERTEMP"]


async def test_timer_energy_and_contact_events(cx3_sim: SimProcess, console: Console) -> None:
    # US-1 rules over the CX-3: the timer counts down only while RUNNING and coupled, energy
    # grows only while RUNNING and coupled; coupling < 30 % for > 1 s -> SUSPENDED
    # (CONTACT_LOST), back to >= 50 % -> RUNNING (CONTACT_RESTORED); timer at 0 -> DONE.
    await console.ok("set_watchdog", timeout_ms=5000)
    await console.ok("configure_us", **{**US_CFG, "time_s": 2})
    await console.ok("start", output="us")
    await asyncio.sleep(0.9)
    running = await console.telemetry()
    assert running["us"]["state"] == "RUNNING" and running["us"]["energy_j"] >= 0
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "set", "coupling_pct": 20}))["ok"]
    lost = await console.event("CONTACT_LOST", within=1.6, start=start)
    assert lost.data["output"] == "us"
    held_start = len(console.got)
    await console.wait(lambda m: m.sub == "telemetry", 1.0, held_start)
    await asyncio.sleep(0.4)
    held = frames_from(console, held_start)
    assert {t["us"]["state"] for t in held} == {"SUSPENDED"}
    assert len({t["us"]["energy_j"] for t in held}) == 1, held  # held while suspended
    assert len({t["us"]["remaining_s"] for t in held}) == 1
    state = await cx3_sim.arequest({"op": "state"})
    energy_held, remaining_held = state["us"]["energy_j"], state["us"]["remaining_s"]
    assert energy_held > 0.5 and 0.5 < remaining_held < 1.5
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "set", "coupling_pct": None}))["ok"]
    restored = await console.event("CONTACT_RESTORED", within=0.5, start=start)
    assert restored.data["output"] == "us"
    done = await console.wait(
        lambda m: m.sub == "telemetry" and m.data is not None and m.data["us"]["state"] == "DONE",
        remaining_held + 1.0,
        start,
    )
    assert done.at - restored.at >= remaining_held - 0.3
    assert done.data["us"]["remaining_s"] == 0
    assert done.data["us"]["energy_j"] > energy_held  # grew again once coupled
    assert done.data["us"]["intensity_w_cm2"] == 0.0  # output off at DONE, first frame included
    growing = [t["us"]["energy_j"] for t in frames_from(console, start)]
    assert growing == sorted(growing)


async def test_command_memory_is_cleared_by_reboot(cx3_sim: SimProcess, console: Console) -> None:
    # ICD: the device remembers the last 64 commands "since boot": after a reboot the same
    # id + op + args is executed again.
    await console.ok("set_watchdog", timeout_ms=5000)
    assert await console.send("set_watchdog", cmd_id=4242, timeout_ms=700) == {
        "id": 4242,
        "ok": True,
    }
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "reboot"}))["ok"]
    await console.event("BOOT", start=start)
    state = await cx3_sim.arequest({"op": "state"})
    assert state["watchdog"]["timeout_ms"] == 1000 and state["counters"]["remembered"] == 0
    assert await console.send("set_watchdog", cmd_id=4242, timeout_ms=700) == {
        "id": 4242,
        "ok": True,
    }
    state = await cx3_sim.arequest({"op": "state"})
    assert state["watchdog"]["timeout_ms"] == 700  # executed, not answered from memory
    assert state["counters"]["repeats"] == 0


async def test_clean_session_command_sent_while_offline_never_runs(
    cx3_sim: SimProcess, console: Console
) -> None:
    # ICD: "The device connects with a clean session: commands published while it is
    # offline are never delivered later."
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "link", "mode": "disconnect"}))["ok"]
    will = await console.wait(lambda m: m.sub == "status", 2.0, start)
    assert will.data == {"online": False}
    payload = {"id": 777_001, "op": "set_watchdog", "args": {"timeout_ms": 4000}}
    await console.client.publish(f"{console.base}/cmd", json.dumps(payload), qos=1)
    await asyncio.sleep(0.1)
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "link", "mode": "ok"}))["ok"]
    back = await console.wait(lambda m: m.sub == "status", 2.0, start)
    assert back.data["online"] is True
    await console.telemetry()
    await asyncio.sleep(0.3)
    replies = [m.data for m in console.got if m.sub == "reply"]
    assert all(r["id"] != 777_001 for r in replies), replies
    state = await cx3_sim.arequest({"op": "state"})
    assert state["watchdog"]["timeout_ms"] == 1000
    await console.ok("set_watchdog", timeout_ms=4000)  # online again, it acts


async def test_qos_per_topic(cx3_sim: SimProcess, console: Console) -> None:
    # ICD topic table, subscribed at QoS 1: status, reply and event at QoS 1, telemetry 0.
    await console.ok("set_watchdog", timeout_ms=1000)
    start = len(console.got)
    assert (await cx3_sim.arequest({"op": "inject", "fault": "patient_stop"}))["ok"]
    await console.event("PATIENT_STOP", start=start)
    await console.telemetry()
    qos: dict[str, set[int]] = {}
    for m in console.got:
        qos.setdefault(m.sub, set()).add(m.qos)
    assert qos["status"] == {1}
    assert qos["reply"] == {1}
    assert qos["event"] == {1}
    assert qos["telemetry"] == {0}


async def test_link_delay_delays_telemetry_and_corrupt_rate_is_a_share(
    cx3_sim: SimProcess, console: Console
) -> None:
    # SIMULATORS.md: `delay` delays "every reply and telemetry frame"; `corrupt` with a rate
    # replaces that share of outgoing messages with malformed ones, never well-formed wrong
    # values. Telemetry t_ms vs arrival: the smallest lag grows by the delay.
    def min_lag(frames: list[Received]) -> float:
        return min(m.at - float(m.data["t_ms"]) / 1000.0 for m in frames)

    def telemetry_since(start: int) -> list[Received]:
        return [m for m in console.got[start:] if m.sub == "telemetry"]

    await console.telemetry()
    start = len(console.got)
    await asyncio.sleep(0.6)
    before = min_lag(telemetry_since(start))
    assert (await cx3_sim.arequest({"op": "link", "mode": "delay", "ms": 300}))["ok"]
    await asyncio.sleep(0.45)
    start = len(console.got)
    await asyncio.sleep(0.6)
    delayed = telemetry_since(start)
    assert len(delayed) >= 4
    assert 0.25 <= min_lag(delayed) - before <= 0.5, (before, min_lag(delayed))
    assert (await cx3_sim.arequest({"op": "link", "mode": "corrupt", "rate": 0.5}))["ok"]
    await asyncio.sleep(0.4)  # frames queued under `delay` are still arriving
    start = len(console.got)
    deadline = time.monotonic() + 5.0
    while len(telemetry_since(start)) < 24:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    frames = telemetry_since(start)
    bad = [m for m in frames if m.data is None]
    assert 0.2 <= len(bad) / len(frames) <= 0.8, (len(bad), len(frames))
    for m in frames:
        if m.data is not None:
            assert set(m.data) == {"seq", "t_ms", "us", "stim", "faults"}
