"""US-1 simulator conformance: pure-model rules (injected time) and the real process.

The process tests run on both links of one simulator started with `--tcp` and `--rtu-pty`:
the `client` fixture is parametrized over Modbus TCP and Modbus RTU (pty opened 8N1, see
`test_us1_rtu`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from device_sims.us1.model import US1Model
from device_sims.us1.registers import ExcCode, Fault, State
from device_sims.us1.unit import UnitSpec, start_unit
from sessionconsole.testing import SimProcess
from tests.sims.test_us1_rtu import exception_code, read, rtu_client, write

HR, IR, DI = 3, 4, 2
ModbusClient = AsyncModbusSerialClient | AsyncModbusTcpClient
START, STOP, PAUSE, RESUME, RESET = 1, 2, 3, 4, 5


# ---- pure model, injected time (no sleeping) ---------------------------------------------
def drive(model: US1Model, t0: float, seconds: float, feed: bool = True) -> float:
    """Advance the model 50 Hz from t0 for `seconds`, writing heartbeats every 100 ms."""
    t = t0
    for i in range(round(seconds * 50)):
        t = t0 + (i + 1) * 0.02
        if feed and i % 5 == 0:
            assert model.write_holding(6, [i & 0xFFFF], t) is None
        model.advance(t)
    return t


def started_model(intensity: int = 100, seed: int = 0) -> US1Model:
    """A model at t=0 with `intensity` set and START written in the same FC16 write."""
    model = US1Model(seed=seed, now=0.0)
    assert model.write_holding(1, [intensity, 100, 100, 300, 1000, 0, START], 0.0) is None
    return model


def test_model_start_ramps_from_zero_at_most_half_w_per_s() -> None:
    model = started_model(200)
    assert model.state == State.RUNNING
    assert model.holding[7] == 0
    t = 0.0
    for _ in range(10):
        t = drive(model, t, 0.5)
        assert model.target_w_cm2 <= 0.5 * t + 1e-9
        assert model.measured_intensity_reg <= round(0.5 * t * 102) + 1
    assert model.target_w_cm2 == pytest.approx(2.0)
    assert model.measured_power_reg == round(model.measured_intensity_reg * 5.0)


def test_model_refused_command_changes_nothing() -> None:
    model = US1Model(now=0.0)
    assert model.write_holding(1, [150, 100, 100, 300, 1000, 0, PAUSE], 0.0) == ExcCode.DEVICE_BUSY
    assert model.holding[1] == 0
    assert model.state == State.IDLE


def test_model_stop_is_immediate_and_timer_runs_out_to_done() -> None:
    model = started_model()
    drive(model, 0.0, 1.0)
    assert model.write_holding(7, [STOP], 1.0) is None
    assert (model.state, model.emitted_w_cm2, model.output_active) == (State.IDLE, 0.0, False)
    model = US1Model(now=0.0)
    assert model.write_holding(1, [100, 100, 100, 3, 1000, 0, START], 0.0) is None
    t = 0.0
    while model.state != State.DONE:  # the first instant of DONE already reads no output
        t = drive(model, t, 0.02)
        assert t < 4.0
    assert model.input_registers()[1] == model.input_registers()[2] == 0  # power, intensity
    drive(model, t, 3.2 - t)
    assert model.state == State.DONE
    assert model.input_registers()[5] == 0
    assert model.input_registers()[9] == 3
    assert 9.5 < model.energy_j < 10.5  # 2 s ramp to 5 W (5 J) then 1 s at 5 W (5 J)


def test_model_pause_holds_timer_and_resume_ramps_from_zero() -> None:
    model = started_model()
    t = drive(model, 0.0, 2.0)
    assert model.write_holding(7, [PAUSE], t) is None
    held = model.remaining_s
    t = drive(model, t, 1.0)
    assert (model.state, model.remaining_s, model.emitted_w_cm2) == (State.PAUSED, held, 0.0)
    assert model.write_holding(7, [RESUME], t) is None
    assert (model.state, model.target_w_cm2) == (State.RUNNING, 0.0)


def test_model_contact_suspension_and_return() -> None:
    model = started_model()
    t = drive(model, 0.0, 1.0)
    model.physics.injected.coupling_pct = 20.0
    t = drive(model, t, 0.9)
    assert model.input_registers()[0] == State.RUNNING
    t = drive(model, t, 0.3)
    assert model.input_registers()[0] == State.SUSPENDED
    energy, remaining = model.energy_j, model.remaining_s
    t = drive(model, t, 1.0)
    assert (model.energy_j, model.remaining_s) == (energy, remaining)
    assert 0.0 < model.emitted_w_cm2 <= 0.05
    model.physics.injected.coupling_pct = 55.0
    drive(model, t, 0.1)
    assert model.state == State.RUNNING


def test_model_output_deviation_faults_after_two_seconds() -> None:
    model = started_model()
    t = drive(model, 0.0, 1.0)
    model.physics.injected.output_deviation = True
    t = drive(model, t, 1.9)
    assert model.state == State.RUNNING
    drive(model, t, 0.2)
    assert (model.state, model.fault, model.emitted_w_cm2) == (
        State.FAULT,
        Fault.OUTPUT_DEVIATION,
        0.0,
    )


def test_model_watchdog_expires_only_without_heartbeat_writes() -> None:
    model = started_model()
    assert model.write_holding(5, [300], 0.0) is None
    drive(model, 0.0, 0.28, feed=False)
    assert model.state == State.RUNNING
    drive(model, 0.28, 0.06, feed=False)
    assert model.fault == Fault.WATCHDOG


def test_model_reset_fault_needs_cause_gone() -> None:
    model = started_model()
    model.physics.injected.head_disconnect = True
    t = drive(model, 0.0, 0.1)
    assert model.fault == Fault.HEAD_DISCONNECTED
    assert model.write_holding(7, [RESET], t) == ExcCode.DEVICE_BUSY
    model.physics.injected.head_disconnect = False
    assert model.write_holding(7, [RESET], t) is None
    assert (model.state, model.fault) == (State.IDLE, Fault.NONE)


def test_model_ignore_stop_keeps_output_on() -> None:
    model = started_model()
    t = drive(model, 0.0, 1.0)
    model.physics.injected.ignore_stop = True
    assert model.write_holding(7, [STOP], t) is None
    assert model.state == State.IDLE and model.output_active
    drive(model, t, 0.2)
    assert model.measured_intensity_reg > 0
    assert model.discrete_inputs()[3] is True


def test_model_good_coupling_stays_well_below_40_c() -> None:
    model = started_model()
    drive(model, 0.0, 240.0)
    assert model.state == State.RUNNING
    assert 32.5 < model.physics.head_temp_c < 38.0


def temperature_trace(seed: int) -> list[float]:
    """Head temperature every step over 60 s of treatment at 1 W/cm²."""
    model = started_model(seed=seed)
    trace = []
    for i in range(3000):
        model.advance((i + 1) * 0.02)
        if i % 5 == 0:
            model.write_holding(6, [i], (i + 1) * 0.02)
        trace.append(model.physics.head_temp_c)
    return trace


def test_model_seed_repeats_physics() -> None:
    assert temperature_trace(7) == temperature_trace(7)
    assert temperature_trace(7) != temperature_trace(8)


# ---- real process over Modbus TCP and Modbus RTU -----------------------------------------
@pytest.fixture
def us1_sim() -> Iterator[SimProcess]:
    """A US-1 simulator serving one unit on both Modbus TCP and RTU (pty)."""
    sim = SimProcess("us1", ["--tcp", "127.0.0.1:0", "--rtu-pty"]).start()
    try:
        yield sim
    finally:
        sim.stop()


async def connect(sim: SimProcess, transport: str) -> ModbusClient:
    """A connected client on `transport` ("tcp" or "rtu"), short timeouts, no retries."""
    modbus: ModbusClient
    if transport == "tcp":
        host, port = sim.modbus_tcp
        modbus = AsyncModbusTcpClient(host, port=port, timeout=0.3, retries=0)
    else:
        modbus = rtu_client(sim.endpoints["rtu_pty"])
    assert await modbus.connect()
    return modbus


@pytest.fixture(params=["tcp", "rtu"])
async def client(
    us1_sim: SimProcess, request: pytest.FixtureRequest
) -> AsyncIterator[ModbusClient]:
    """A connected Modbus client on TCP or RTU: every process test runs on both links."""
    modbus = await connect(us1_sim, request.param)
    yield modbus
    modbus.close()


async def wait_state(
    sim: SimProcess, predicate: Callable[[dict[str, Any]], bool], within: float
) -> float:
    """Poll the test port until `predicate(state)`; return the elapsed seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if predicate(await sim.arequest({"op": "state"})):
            return time.monotonic() - t0
        await asyncio.sleep(0.01)
    raise AssertionError(
        f"state not reached within {within} s: {await sim.arequest({'op': 'state'})}"
    )


async def test_ready_line_and_every_register_readable(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    assert us1_sim.ready["model"] == "US-1"
    assert us1_sim.ready["units"][0]["endpoints"] == us1_sim.endpoints
    assert us1_sim.endpoints["modbus_tcp"].startswith("127.0.0.1:")
    assert await read(client, HR, 0, 8) == [1000, 0, 100, 100, 300, 1000, 0, 0]
    regs = await read(client, IR, 0, 16)
    assert regs[0] == 0 and regs[6] == 0
    assert (regs[7], regs[8], regs[12], regs[13]) == (50, 42, 1, 0x5531)
    assert 300 <= regs[3] <= 340 and 80 <= regs[4] <= 100
    assert (regs[14] << 16 | regs[15]) > 0
    assert await read(client, DI, 0, 4) == [False, True, True, False]
    for address in range(8):
        assert len(await read(client, HR, address)) == 1
    for address in range(16):
        assert len(await read(client, IR, address)) == 1
    for address in range(4):
        assert len(await read(client, DI, address)) == 1


async def test_unsupported_function_codes_get_exception_01(client: ModbusClient) -> None:
    assert exception_code(await client.read_coils(0, count=1, device_id=1)) == 1
    assert exception_code(await client.write_coil(0, True, device_id=1)) == 1
    rw = await client.readwrite_registers(
        read_address=0, read_count=1, write_address=1, values=[5], device_id=1
    )
    assert exception_code(rw) == 1
    assert exception_code(await client.diag_read_bus_message_count(device_id=1)) == 1
    assert await read(client, HR, 1) == [0]


async def test_addresses_outside_tables_get_exception_02(client: ModbusClient) -> None:
    assert exception_code(await client.read_holding_registers(8, count=1, device_id=1)) == 2
    assert exception_code(await client.read_holding_registers(7, count=2, device_id=1)) == 2
    assert exception_code(await client.read_input_registers(15, count=2, device_id=1)) == 2
    assert exception_code(await client.read_discrete_inputs(4, count=1, device_id=1)) == 2
    assert await write(client, 8, 1) == 2
    assert await write(client, 6, 1, 0, 0) == 2
    assert await read(client, HR, 6) == [0]


async def test_refused_values_get_exception_03_and_leave_register(
    client: ModbusClient,
) -> None:
    for address, value in [(0, 2000), (1, 301), (2, 30), (3, 50), (4, 0), (5, 99), (7, 6)]:
        assert await write(client, address, value) == 3, (address, value)
    assert await read(client, HR, 0, 8) == [1000, 0, 100, 100, 300, 1000, 0, 0]


async def test_fc16_is_all_or_nothing(client: ModbusClient) -> None:
    assert await write(client, 0, 3000, 150, 30) == 3
    assert await read(client, HR, 0, 3) == [1000, 0, 100]
    assert await write(client, 0, 3000, 150, 50) == 0
    assert await read(client, HR, 0, 3) == [3000, 150, 50]


async def test_start_in_same_write_ramps_and_stop_is_immediate(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    t0 = time.monotonic()
    assert await write(client, 0, 1000, 100, 100, 100, 300, 1000, 0, START) == 0
    assert await read(client, HR, 7) == [0]
    assert (await read(client, IR, 0))[0] == State.RUNNING
    for beat in range(12):
        await asyncio.sleep(0.1)
        assert await write(client, 6, beat) == 0
        intensity = (await read(client, IR, 2))[0]
        assert intensity <= 0.5 * (time.monotonic() - t0) * 102 + 1
    regs = await read(client, IR, 0, 3)
    assert regs[2] >= 40 and regs[1] == regs[2] * 5
    assert await write(client, 0, 3000) == 6  # busy while RUNNING
    assert await write(client, 1, 120) == 0  # intensity may change while RUNNING
    assert await write(client, 7, STOP) == 0
    assert await read(client, IR, 0, 3) == [State.IDLE, 0, 0]
    assert (await read(client, DI, 3))[0] is False


async def test_pause_resume_and_commands_outside_allowed_states(
    client: ModbusClient,
) -> None:
    for command in (PAUSE, RESUME, RESET):
        assert await write(client, 7, command) == 6
    assert (await read(client, IR, 0))[0] == State.IDLE
    assert await write(client, 1, 100, 100, 100, 300, 1000, 0, START) == 0
    assert await write(client, 7, START) == 6
    echo = await client.write_register(7, PAUSE, device_id=1)
    assert (echo.address, echo.registers) == (7, [PAUSE])  # FC 6 reply echoes the request
    assert await read(client, HR, 7) == [0]  # the command register reads 0 once acted on
    first = await read(client, IR, 0, 6)
    await asyncio.sleep(0.3)
    assert await write(client, 6, 1) == 0
    held = await read(client, IR, 0, 6)
    assert (first[0], held[0], held[2], held[5]) == (State.PAUSED, State.PAUSED, 0, first[5])
    assert await write(client, 7, RESUME) == 0
    assert (await read(client, IR, 0))[0] == State.RUNNING


async def test_reset_fault_only_once_cause_gone(us1_sim: SimProcess, client: ModbusClient) -> None:
    assert us1_sim.request({"op": "inject", "fault": "head_disconnect"}) == {"ok": True}
    await wait_state(us1_sim, lambda s: s["fault"] == "HEAD_DISCONNECTED", 1.0)
    assert await read(client, IR, 6) == [Fault.HEAD_DISCONNECTED]
    assert (await read(client, DI, 2))[0] is False
    assert await write(client, 7, RESET) == 6
    assert us1_sim.request({"op": "clear"}) == {"ok": True}
    assert await write(client, 7, RESET) == 0
    assert await read(client, IR, 0) == [State.IDLE]


WATCHDOG_SLACK_MS = 250  # ICD (issue 3): never before the timeout, always within + 250 ms
FLOAT_MS = 1e-3  # two float clock readings in ms: representation, not behaviour


async def watchdog_armed_at(sim: SimProcess) -> float:
    """The device-clock ms at which the watchdog was last armed or fed (test port)."""
    watchdog = (await sim.arequest({"op": "state"}))["watchdog"]
    assert watchdog["armed"] is True and watchdog["trip_t_ms"] is None, watchdog
    fed: float = watchdog["last_feed_t_ms"]
    return fed


async def assert_watchdog_trip(
    sim: SimProcess,
    client: ModbusClient,
    timeout_ms: int,
    keep: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Feed once (register 6), then poll IR 0 (awaiting `keep()` between polls) until FAULT.

    Checks the client's bound (FAULT read within timeout + 250 ms of the heartbeat leaving)
    and the device's own interval from the heartbeat it took to the trip, in both directions.
    """
    armed_ms = await watchdog_armed_at(sim)
    t_send = time.monotonic()
    assert await write(client, 6, 0x5A5A) == 0
    quiet_until = t_send + timeout_ms / 1000 - 0.1  # poll slowly until close to the timeout
    while (await read(client, IR, 0))[0] != State.FAULT:
        assert time.monotonic() - t_send < timeout_ms / 1000 + 1.0, "no watchdog fault"
        if keep is not None:
            await keep()
        await asyncio.sleep(0.05 if time.monotonic() < quiet_until else 0.003)
    t_seen = time.monotonic()
    assert t_seen - t_send <= (timeout_ms + WATCHDOG_SLACK_MS) / 1000, t_seen - t_send
    watchdog = (await sim.arequest({"op": "state"}))["watchdog"]
    assert watchdog["last_feed_t_ms"] > armed_ms, (watchdog, armed_ms)  # the write fed it
    interval = watchdog["trip_t_ms"] - watchdog["last_feed_t_ms"]
    assert timeout_ms - FLOAT_MS <= interval <= timeout_ms + WATCHDOG_SLACK_MS, interval
    regs = await read(client, IR, 0, 7)
    assert (regs[0], regs[1], regs[2], regs[6]) == (State.FAULT, 0, 0, Fault.WATCHDOG)


@pytest.mark.parametrize("timeout_ms", [100, 300, 5000])  # ICD: register 5, 100-5000 ms
async def test_watchdog_never_before_timeout_and_within_250_ms_after(
    us1_sim: SimProcess, client: ModbusClient, timeout_ms: int
) -> None:
    assert await write(client, 1, 50, 100, 100, 300, timeout_ms, 0, START) == 0
    await assert_watchdog_trip(us1_sim, client, timeout_ms)


async def test_watchdog_expires_while_suspended(us1_sim: SimProcess, client: ModbusClient) -> None:
    # ICD: watchdog expiry while RUNNING, PAUSED or SUSPENDED → FAULT (2).
    await pin_coupling(us1_sim, 20)
    await start(client, intensity=50, watchdog_ms=300)
    t0 = time.monotonic()
    while (await read(client, IR, 0))[0] != State.SUSPENDED:
        assert time.monotonic() - t0 < 2.5, "not SUSPENDED 2.5 s after coupling 20 %"
        assert await write(client, 6, 1) == 0
        await asyncio.sleep(0.05)
    await assert_watchdog_trip(us1_sim, client, 300)


async def test_heartbeats_every_100_ms_keep_running(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    assert await write(client, 1, 50, 100, 100, 300, 300, 0, START) == 0
    t0 = time.monotonic()
    beat = 0
    while time.monotonic() - t0 < 1.5:
        beat += 1
        assert await write(client, 6, beat) == 0
        await asyncio.sleep(0.1)
    state = await us1_sim.arequest({"op": "state"})
    assert (state["state"], state["fault"]) == ("RUNNING", "NONE")
    assert state["counters"]["heartbeat_writes"] >= 12


async def test_overtemp_injection_faults_within_2_s_plus_poll(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # SIMULATORS.md: the head "climbs past 41 °C within 2 s"; US-1: above 41.0 °C -> FAULT (1).
    # 2.0 s plus one poll interval of the test port.
    t0 = time.monotonic()
    assert us1_sim.request({"op": "inject", "fault": "overtemp"}) == {"ok": True}
    await wait_state(us1_sim, lambda s: s["fault"] == "OVERTEMP", 2.2)
    assert time.monotonic() - t0 <= 2.2
    regs = await read(client, IR, 0, 7)
    assert regs[0] == State.FAULT and regs[3] >= 410 and regs[6] == Fault.OVERTEMP
    assert await write(client, 7, RESET) == 6
    # SIMULATORS.md: the head "stays hot until clear"; US-1: RESET_FAULT only once the cause
    # is gone, so it stays refused all that time.
    t_hot = time.monotonic()
    while time.monotonic() - t_hot < 1.5:
        assert (await read(client, IR, 3))[0] >= 410
        assert await write(client, 7, RESET) == 6
        await asyncio.sleep(0.1)
    assert await read(client, IR, 0) == [State.FAULT]
    assert us1_sim.request({"op": "clear"})["ok"]
    assert us1_sim.request({"op": "set", "head_temp_c": 35.0})["ok"]
    await wait_state(us1_sim, lambda s: s["physics"]["head_temp_c"] == 35.0, 1.0)
    assert await write(client, 7, RESET) == 0


async def test_patient_stop_faults_and_switch_is_momentary(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    assert await write(client, 1, 50, 100, 100, 300, 1000, 0, START) == 0
    assert us1_sim.request({"op": "inject", "fault": "patient_stop"}) == {"ok": True}
    assert (await read(client, DI, 0))[0] is True
    await wait_state(us1_sim, lambda s: s["fault"] == "PATIENT_STOP", 0.5)
    assert (await read(client, IR, 0))[0] == State.FAULT
    await wait_state(us1_sim, lambda s: not s["physics"]["patient_stop_pressed"], 1.0)
    assert (await read(client, DI, 0))[0] is False
    assert await write(client, 7, RESET) == 0


async def test_link_drop_silences_and_ok_restores(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    assert us1_sim.request({"op": "link", "mode": "drop"}) == {"ok": True}
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0, count=1, device_id=1)
    with pytest.raises(ModbusIOException):
        await client.write_register(1, 77, device_id=1)
    assert us1_sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
    await asyncio.sleep(0.05)
    assert await read(client, HR, 0, 2) == [1000, 0]  # the dropped write was never acted on


async def test_wrong_unit_id_gets_no_reply(client: ModbusClient) -> None:
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0, count=1, device_id=2)
    assert await read(client, HR, 0) == [1000]


async def test_reboot_increments_boot_counter_and_goes_idle(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    assert await write(client, 1, 50, 100, 100, 300, 1000, 0, START) == 0
    reply = us1_sim.request({"op": "reboot"})
    assert reply == {"ok": True, "boot_counter": 2}
    transport = "tcp" if isinstance(client, AsyncModbusTcpClient) else "rtu"
    client.close()  # a serial port is opened exclusively: the fresh client replaces this one
    fresh = await connect(us1_sim, transport)
    try:
        regs = await read(fresh, IR, 0, 13)
        assert (regs[0], regs[1], regs[12]) == (State.IDLE, 0, 2)
        assert await read(fresh, HR, 1) == [0]
    finally:
        fresh.close()


def test_test_port_errors_are_specific(us1_sim: SimProcess) -> None:
    bad_json = us1_sim.request_raw(b"{not json")
    assert bad_json["ok"] is False and "bad JSON" in bad_json["error"]
    unknown = us1_sim.request({"op": "teleport"})
    assert unknown["ok"] is False and "unknown op" in unknown["error"]
    fault = us1_sim.request({"op": "inject", "fault": "electrode_off"})
    assert fault["ok"] is False and "unknown fault" in fault["error"]
    link = us1_sim.request({"op": "link", "mode": "sideways"})
    assert link["ok"] is False and "unknown link mode" in link["error"]
    setter = us1_sim.request({"op": "set", "coupling_pct": "lots"})
    assert setter["ok"] is False and "coupling_pct" in setter["error"]
    assert us1_sim.request({"op": "state"})["ok"] is True


def test_state_schema(us1_sim: SimProcess) -> None:
    state = us1_sim.request({"op": "state"})
    assert {
        "state",
        "fault",
        "holding",
        "input",
        "discrete",
        "physics",
        "timer",
        "counters",
        "watchdog",
        "link",
        "injected",
    } <= state.keys()
    assert state["counters"]["boot_counter"] == 1
    assert state["link"]["mode"] == "ok"
    assert us1_sim.request({"op": "set", "coupling_pct": 20})["ok"]
    assert us1_sim.request({"op": "state"})["injected"]["coupling_pct"] == 20.0


def test_fault_schedule_file(tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[at]]\nt_s = 0.1\nrequest = {op = "inject", fault = "head_disconnect"}\n')
    with SimProcess("us1", ["--faults", str(faults)]) as sim:
        deadline = time.monotonic() + 2.0
        while sim.request({"op": "state"})["fault"] != "HEAD_DISCONNECTED":
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_sigterm_exits_0_within_1_s(us1_sim: SimProcess) -> None:
    assert us1_sim.proc is not None
    t0 = time.monotonic()
    us1_sim.proc.send_signal(signal.SIGTERM)
    assert us1_sim.proc.wait(timeout=1.0) == 0
    assert time.monotonic() - t0 < 1.0


# ---- ICD rows added after the audit (both links) ------------------------------------------
async def start(
    client: ModbusClient,
    intensity: int = 100,
    duty: int = 100,
    time_s: int = 300,
    watchdog_ms: int = 5000,
) -> None:
    """Write registers 1-7 with START last (one FC 16): RUNNING with those values."""
    assert await write(client, 1, intensity, duty, 100, time_s, watchdog_ms, 0, START) == 0
    assert (await read(client, IR, 0))[0] == State.RUNNING


async def hold(client: ModbusClient, seconds: float, period: float = 0.1) -> None:
    """Keep the watchdog fed (register 6) for `seconds`."""
    t_end = time.monotonic() + seconds
    beat = 0
    while time.monotonic() < t_end:
        beat += 1
        assert await write(client, 6, beat) == 0
        await asyncio.sleep(period)


async def pin_coupling(sim: SimProcess, pct: float) -> None:
    """Pin the coupling through the test port."""
    assert await sim.arequest({"op": "set", "coupling_pct": pct}) == {"ok": True}


def energy_j(regs: list[int]) -> int:
    """Input registers 10-11 (from a read starting at 0): 32-bit, high word first."""
    return regs[10] << 16 | regs[11]


async def test_emission_time_and_energy_grow_with_power_times_duty(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: IR 9 emission time (output on and coupled), IR 10-11 energy (J, 32-bit, high word
    # first) growing by measured power x duty fraction x seconds while RUNNING and coupled.
    await pin_coupling(us1_sim, 90)
    assert await read(client, IR, 9, 3) == [0, 0, 0]
    await start(client, intensity=100, duty=50)
    t0 = previous = time.monotonic()
    expected = 0.0
    middle: list[int] = []
    beat = 0
    while (now := time.monotonic()) - t0 < 4.0:
        beat += 1
        assert await write(client, 6, beat) == 0
        power_w = (await read(client, IR, 1))[0] / 100
        expected += power_w * 0.5 * (now - previous)
        previous = now
        if not middle and now - t0 >= 2.0:
            middle = await read(client, IR, 0, 12)
        await asyncio.sleep(0.05)
    regs = await read(client, IR, 0, 12)
    elapsed = time.monotonic() - t0
    assert regs[0] == State.RUNNING
    assert middle[9] < regs[9] and energy_j(middle) < energy_j(regs)  # growing
    assert elapsed - 1.5 <= regs[9] <= elapsed + 1.0, (regs[9], elapsed)
    assert regs[10] == 0  # a few joules: the high word comes first and is 0
    assert abs(energy_j(regs) - expected) <= 2.0 + 0.2 * expected, (energy_j(regs), expected)
    assert await write(client, 7, STOP) == 0
    await asyncio.sleep(0.3)
    assert (await read(client, IR, 9, 3)) == regs[9:12]  # nothing counted once stopped


async def test_low_coupling_suspends_holds_timer_and_energy_and_resumes(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: coupling below 30 % for more than 1 s → SUSPENDED (no energy, timer stopped);
    # back to 50 % or more → RUNNING.
    await pin_coupling(us1_sim, 90)
    await start(client, intensity=100, duty=100, time_s=300)
    await hold(client, 0.5)
    t_set = time.monotonic()
    await pin_coupling(us1_sim, 20)
    while (now := time.monotonic()) - t_set < 0.8:  # not before 1 s of low coupling
        assert await write(client, 6, 1) == 0
        assert (await read(client, IR, 0))[0] == State.RUNNING, now - t_set
        await asyncio.sleep(0.05)
    while (await read(client, IR, 0))[0] != State.SUSPENDED:
        assert time.monotonic() - t_set < 2.5, "not SUSPENDED 2.5 s after coupling 20 %"
        assert await write(client, 6, 2) == 0
        await asyncio.sleep(0.05)
    held = await read(client, IR, 0, 12)
    assert held[4] == 20 and (await read(client, DI, 1))[0] is False
    assert await write(client, 2, 50) == 6  # registers 2, 3, 4 locked while SUSPENDED
    await hold(client, 1.0)
    later = await read(client, IR, 0, 12)
    assert later[0] == State.SUSPENDED
    assert (later[5], later[9], energy_j(later)) == (held[5], held[9], energy_j(held))
    await pin_coupling(us1_sim, 50)
    t_back = time.monotonic()
    while (await read(client, IR, 0))[0] != State.RUNNING:
        assert time.monotonic() - t_back < 1.0, "not back to RUNNING at 50 % coupling"
        assert await write(client, 6, 3) == 0
        await asyncio.sleep(0.02)
    assert (await read(client, DI, 1))[0] is True
    await hold(client, 1.3)  # > 1 s: the whole-second registers must move
    resumed = await read(client, IR, 0, 12)
    assert resumed[0] == State.RUNNING and resumed[5] < held[5] and resumed[9] > held[9]


async def test_pause_from_suspended_and_resume_uncoupled_goes_suspended(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: PAUSE allowed in SUSPENDED; RESUME → SUSPENDED if not coupled.
    await pin_coupling(us1_sim, 20)
    await start(client)
    t0 = time.monotonic()
    while (await read(client, IR, 0))[0] != State.SUSPENDED:
        assert time.monotonic() - t0 < 2.5, "not SUSPENDED"
        assert await write(client, 6, 1) == 0
        await asyncio.sleep(0.05)
    assert await write(client, 7, PAUSE) == 0
    regs = await read(client, IR, 0, 3)
    assert regs == [State.PAUSED, 0, 0]  # output off
    assert await write(client, 7, RESUME) == 0
    assert (await read(client, IR, 0))[0] == State.SUSPENDED
    await pin_coupling(us1_sim, 80)
    await hold(client, 0.3)
    assert (await read(client, IR, 0))[0] == State.RUNNING


async def test_timer_runs_out_to_done_stop_keeps_done_start_again(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: timer at 0 → DONE, output off; STOP in DONE accepted, state unchanged; START is
    # allowed from DONE and reloads the timer from register 4.
    await pin_coupling(us1_sim, 90)
    t0 = time.monotonic()
    await start(client, time_s=2)
    while (state_ := (await read(client, IR, 0))[0]) == State.RUNNING:
        assert time.monotonic() - t0 < 3.5, "no DONE 3.5 s after START with time_s 2"
        assert await write(client, 6, 1) == 0
        await asyncio.sleep(0.05)
    assert state_ == State.DONE
    assert time.monotonic() - t0 >= 1.8, "DONE before the 2 s timer ran out"
    regs = await read(client, IR, 0, 6)
    assert (regs[0], regs[1], regs[2], regs[5]) == (State.DONE, 0, 0, 0)  # output off, timer 0
    assert (await read(client, DI, 3))[0] is False
    assert await write(client, 7, STOP) == 0
    assert (await read(client, IR, 0))[0] == State.DONE
    assert await write(client, 4, 5) == 0  # not locked in DONE
    assert await write(client, 7, START) == 0
    regs = await read(client, IR, 0, 6)
    assert regs[0] == State.RUNNING and regs[5] in (4, 5)


async def test_stop_in_idle_and_fault_accepted_and_changes_nothing(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: STOP is allowed in every state; other than RUNNING/PAUSED/SUSPENDED unchanged.
    assert await write(client, 7, STOP) == 0
    assert await read(client, IR, 0) == [State.IDLE]
    assert await us1_sim.arequest({"op": "inject", "fault": "head_disconnect"}) == {"ok": True}
    await wait_state(us1_sim, lambda s: s["fault"] == "HEAD_DISCONNECTED", 1.0)
    assert await write(client, 7, STOP) == 0
    assert await read(client, IR, 0) == [State.FAULT]
    assert await read(client, IR, 6) == [Fault.HEAD_DISCONNECTED]


async def test_start_with_latched_fault_is_refused_with_06(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: START only "with no latched fault"; a FAULT latches until RESET_FAULT.
    assert await us1_sim.arequest({"op": "inject", "fault": "head_disconnect"}) == {"ok": True}
    await wait_state(us1_sim, lambda s: s["fault"] == "HEAD_DISCONNECTED", 1.0)
    assert await us1_sim.arequest({"op": "clear"}) == {"ok": True}
    await asyncio.sleep(0.1)
    assert await read(client, IR, 0) == [State.FAULT]  # cause gone, fault still latched
    assert await write(client, 7, START) == 6
    assert await write(client, 1, 50, 100, 100, 300, 1000, 0, START) == 6  # all or nothing
    assert await read(client, HR, 1) == [0]
    assert await read(client, IR, 0, 2) == [State.FAULT, 0]
    assert await write(client, 7, RESET) == 0
    assert await write(client, 7, START) == 0
    assert await read(client, IR, 0) == [State.RUNNING]


async def test_registers_2_3_4_locked_while_running_and_paused(client: ModbusClient) -> None:
    # ICD: while RUNNING, PAUSED or SUSPENDED only registers 1, 5, 6, 7 may be written.
    await start(client, duty=50)
    for pause_reply in (0, 6):  # RUNNING, then PAUSED (where PAUSE itself is refused: 06)
        for address, value in ((2, 20), (3, 48), (4, 600), (0, 3000)):
            assert await write(client, address, value) == 6, (address, value)
        assert await write(client, 2, 20, 48) == 6
        regs = await read(client, HR, 0, 5)
        assert (regs[0], regs[2], regs[3], regs[4]) == (1000, 50, 100, 300)
        assert await write(client, 1, 120) == 0
        assert await write(client, 5, 4000) == 0
        assert await write(client, 6, 7) == 0
        assert await write(client, 7, PAUSE) == pause_reply
        assert (await read(client, IR, 0))[0] == State.PAUSED
    assert await write(client, 7, STOP) == 0
    assert await write(client, 2, 20, 48, 600) == 0  # unlocked in IDLE


async def test_edge_values_are_accepted(client: ModbusClient) -> None:
    # ICD: allowed values — intensity 0-300, duty 10/20/50/100, rate 16/48/100, time 1-1800,
    # watchdog 100-5000, frequency 1000/3000.
    for address, value in (
        (1, 300),
        (1, 0),
        (2, 10),
        (2, 20),
        (2, 50),
        (3, 16),
        (3, 48),
        (4, 1),
        (4, 1800),
        (5, 100),
        (5, 5000),
        (0, 3000),
        (0, 1000),
        (6, 65535),
    ):
        assert await write(client, address, value) == 0, (address, value)
        assert await read(client, HR, address) == [value], (address, value)
    assert await write(client, 1, 300, 10, 16, 1800, 100) == 0
    assert await read(client, HR, 1, 5) == [300, 10, 16, 1800, 100]


async def test_di_coupled_follows_50_percent_and_output_active_while_running(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: DI 1 head coupled (coupling ≥ 50 %), DI 3 output active; IR 4 coupling in %.
    for pct, coupled in ((50, True), (49, False), (50, True), (95, True), (10, False)):
        await pin_coupling(us1_sim, pct)
        assert await read(client, IR, 4) == [pct]
        assert await read(client, DI, 1) == [coupled], pct
    await pin_coupling(us1_sim, 90)
    assert (await read(client, DI, 3))[0] is False
    await start(client)
    await hold(client, 0.3)
    assert (await read(client, DI, 3))[0] is True
    assert await write(client, 7, PAUSE) == 0
    assert (await read(client, DI, 3))[0] is False
    assert await write(client, 7, RESUME) == 0
    await hold(client, 0.3)
    assert (await read(client, DI, 3))[0] is True
    assert await write(client, 7, STOP) == 0
    assert (await read(client, DI, 3))[0] is False


async def test_only_register_6_feeds_the_watchdog(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: register 6 — "only writes to this register feed the watchdog".
    await start(client, intensity=50, watchdog_ms=300)
    writes = 0

    async def write_intensity() -> None:
        nonlocal writes
        writes += 1
        assert await write(client, 1, 50) == 0

    await assert_watchdog_trip(us1_sim, client, 300, write_intensity)
    assert writes >= 5  # several non-heartbeat writes went in inside the window


async def test_watchdog_expires_while_paused(us1_sim: SimProcess, client: ModbusClient) -> None:
    # ICD: watchdog expiry while RUNNING, PAUSED or SUSPENDED → FAULT (2); a command write
    # (register 7) does not feed it.
    await start(client, intensity=50, watchdog_ms=300)
    assert await write(client, 7, PAUSE) == 0
    assert (await read(client, IR, 0))[0] == State.PAUSED
    await assert_watchdog_trip(us1_sim, client, 300)


async def test_output_deviation_faults_4_after_two_seconds(
    us1_sim: SimProcess, client: ModbusClient
) -> None:
    # ICD: measured intensity deviating from the current target (the ramped value) by more
    # than 20 % for 2 s while RUNNING → FAULT (4); a FAULT turns the output off at once and
    # latches until RESET_FAULT. SIMULATORS.md: output_deviation drifts the measured intensity
    # 30 % below the current target until `clear`.
    await pin_coupling(us1_sim, 90)
    await start(client, intensity=150)
    await hold(client, 0.5)
    t_inject = time.monotonic()
    assert await us1_sim.arequest({"op": "inject", "fault": "output_deviation"}) == {"ok": True}
    ratios = []
    beat = 0
    while (regs := await read(client, IR, 0, 7))[0] == State.RUNNING:
        elapsed = time.monotonic() - t_inject
        assert elapsed < 2.0 + 2.0, "no OUTPUT_DEVIATION fault 4 s after the injection"
        target = (await us1_sim.arequest({"op": "state"}))["physics"]["current_target_w_cm2"]
        if elapsed > 0.1 and target > 0.2:
            ratios.append(regs[2] / (target * 100))
        beat += 1
        assert await write(client, 6, beat) == 0
        await asyncio.sleep(0.05)
    seen = time.monotonic() - t_inject
    assert seen >= 2.0, f"FAULT after {seen:.3f} s of deviation, before the ICD's 2 s"
    assert len(ratios) >= 10 and all(0.6 <= r <= 0.8 for r in ratios), ratios  # 30 % low
    assert (regs[0], regs[1], regs[2], regs[6]) == (State.FAULT, 0, 0, Fault.OUTPUT_DEVIATION)
    assert (await read(client, DI, 3))[0] is False  # output off
    await asyncio.sleep(0.3)
    assert await read(client, IR, 0) == [State.FAULT]  # latched
    assert await write(client, 7, START) == 6
    assert await write(client, 7, RESET) == 0
    after = await read(client, IR, 0, 7)
    assert (after[0], after[1], after[2], after[6]) == (State.IDLE, 0, 0, Fault.NONE)


async def test_energy_registers_high_word_first_over_tcp_and_rtu() -> None:
    # ICD: IR 10-11 delivered energy, J, 32-bit; 32-bit values take two registers, high word
    # first. A live run cannot pass 65 535 J: energy restarts at each START (the simulator),
    # and one treatment delivers at most 3.00 W/cm² x 5.0 cm² (ERA) x 1800 s = 27 000 J; the
    # test port has no energy `set` (SIMULATORS.md pins physical quantities only). So one unit
    # is served in this process on real Modbus TCP and RTU endpoints with its counter preset,
    # and the words are read over each wire.
    spec = UnitSpec(index=0, tcp=("127.0.0.1", 0), rtu_pty=True, seed=0)
    unit = await start_unit(spec, time.monotonic)
    host, _, port = unit.endpoints["modbus_tcp"].rpartition(":")
    tcp = AsyncModbusTcpClient(host, port=int(port), timeout=0.3, retries=0)
    rtu = rtu_client(unit.endpoints["rtu_pty"])
    try:
        assert await tcp.connect() and await rtu.connect()
        for joules, words in (
            (65_535.9, [0x0000, 0xFFFF]),
            (65_536.0, [0x0001, 0x0000]),
            (0x0001_2345 + 0.75, [0x0001, 0x2345]),
            (0x7FFF_0001, [0x7FFF, 0x0001]),
        ):
            unit.model.energy_j = joules
            for client in (tcp, rtu):
                assert await read(client, IR, 10, 2) == words, (joules, client)
                assert energy_j(await read(client, IR, 0, 12)) == int(joules)
    finally:
        tcp.close()
        rtu.close()
        await unit.close()
