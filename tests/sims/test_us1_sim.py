"""US-1 simulator conformance: pure-model rules (injected time) and the real process over TCP."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ModbusPDU

from device_sims.us1.model import US1Model
from device_sims.us1.registers import ExcCode, Fault, State
from sessionconsole.testing import SimProcess

HR, IR, DI = 3, 4, 2
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
    drive(model, 0.0, 3.2)
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


# ---- real process over Modbus TCP --------------------------------------------------------
@pytest.fixture
async def client(us1_sim: SimProcess) -> AsyncIterator[AsyncModbusTcpClient]:
    """A connected Modbus TCP client with short timeouts and no retries."""
    host, port = us1_sim.modbus_tcp
    modbus = AsyncModbusTcpClient(host, port=port, timeout=0.3, retries=0)
    assert await modbus.connect()
    yield modbus
    modbus.close()


def exception_code(response: ModbusPDU) -> int:
    """The exception code of an error response (0 if the response is not an error)."""
    return int(response.exception_code) if response.isError() else 0


async def write(client: AsyncModbusTcpClient, address: int, *values: int) -> int:
    """Write with FC 6 (one value) or FC 16; return the exception code (0 = success)."""
    if len(values) == 1:
        return exception_code(await client.write_register(address, values[0], device_id=1))
    return exception_code(await client.write_registers(address, list(values), device_id=1))


async def read(client: AsyncModbusTcpClient, table: int, address: int, count: int = 1) -> list[Any]:
    """Read registers (FC 3/4) or bits (FC 2); fail the test on an exception response."""
    calls: dict[int, Callable[..., Any]] = {
        HR: client.read_holding_registers,
        IR: client.read_input_registers,
        DI: client.read_discrete_inputs,
    }
    response = await calls[table](address, count=count, device_id=1)
    assert not response.isError(), response
    return list(response.bits[:count] if table == DI else response.registers)


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
    us1_sim: SimProcess, client: AsyncModbusTcpClient
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


async def test_unsupported_function_codes_get_exception_01(client: AsyncModbusTcpClient) -> None:
    assert exception_code(await client.read_coils(0, count=1, device_id=1)) == 1
    assert exception_code(await client.write_coil(0, True, device_id=1)) == 1
    rw = await client.readwrite_registers(
        read_address=0, read_count=1, write_address=1, values=[5], device_id=1
    )
    assert exception_code(rw) == 1
    assert exception_code(await client.diag_read_bus_message_count(device_id=1)) == 1
    assert await read(client, HR, 1) == [0]


async def test_addresses_outside_tables_get_exception_02(client: AsyncModbusTcpClient) -> None:
    assert exception_code(await client.read_holding_registers(8, count=1, device_id=1)) == 2
    assert exception_code(await client.read_holding_registers(7, count=2, device_id=1)) == 2
    assert exception_code(await client.read_input_registers(15, count=2, device_id=1)) == 2
    assert exception_code(await client.read_discrete_inputs(4, count=1, device_id=1)) == 2
    assert await write(client, 8, 1) == 2
    assert await write(client, 6, 1, 0, 0) == 2
    assert await read(client, HR, 6) == [0]


async def test_refused_values_get_exception_03_and_leave_register(
    client: AsyncModbusTcpClient,
) -> None:
    for address, value in [(0, 2000), (1, 301), (2, 30), (3, 50), (4, 0), (5, 99), (7, 6)]:
        assert await write(client, address, value) == 3, (address, value)
    assert await read(client, HR, 0, 8) == [1000, 0, 100, 100, 300, 1000, 0, 0]


async def test_fc16_is_all_or_nothing(client: AsyncModbusTcpClient) -> None:
    assert await write(client, 0, 3000, 150, 30) == 3
    assert await read(client, HR, 0, 3) == [1000, 0, 100]
    assert await write(client, 0, 3000, 150, 50) == 0
    assert await read(client, HR, 0, 3) == [3000, 150, 50]


async def test_start_in_same_write_ramps_and_stop_is_immediate(
    us1_sim: SimProcess, client: AsyncModbusTcpClient
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
    client: AsyncModbusTcpClient,
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


async def test_reset_fault_only_once_cause_gone(
    us1_sim: SimProcess, client: AsyncModbusTcpClient
) -> None:
    assert us1_sim.request({"op": "inject", "fault": "head_disconnect"}) == {"ok": True}
    await wait_state(us1_sim, lambda s: s["fault"] == "HEAD_DISCONNECTED", 1.0)
    assert await read(client, IR, 6) == [Fault.HEAD_DISCONNECTED]
    assert (await read(client, DI, 2))[0] is False
    assert await write(client, 7, RESET) == 6
    assert us1_sim.request({"op": "clear"}) == {"ok": True}
    assert await write(client, 7, RESET) == 0
    assert await read(client, IR, 0) == [State.IDLE]


async def test_watchdog_fault_between_300_and_550_ms(
    us1_sim: SimProcess, client: AsyncModbusTcpClient
) -> None:
    assert await write(client, 1, 50, 100, 100, 300, 300, 0, START) == 0
    t0 = time.monotonic()
    assert await write(client, 6, 1) == 0
    await wait_state(us1_sim, lambda s: s["fault"] == "WATCHDOG", 1.0)
    since_last_heartbeat = time.monotonic() - t0  # from just before the heartbeat write
    assert 0.300 <= since_last_heartbeat <= 0.550, since_last_heartbeat
    assert await read(client, IR, 0, 3) == [State.FAULT, 0, 0]


async def test_heartbeats_every_100_ms_keep_running(
    us1_sim: SimProcess, client: AsyncModbusTcpClient
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


async def test_overtemp_injection_faults_within_2_5_s(
    us1_sim: SimProcess, client: AsyncModbusTcpClient
) -> None:
    assert us1_sim.request({"op": "inject", "fault": "overtemp"}) == {"ok": True}
    elapsed = await wait_state(us1_sim, lambda s: s["fault"] == "OVERTEMP", 2.5)
    assert elapsed <= 2.5
    regs = await read(client, IR, 0, 7)
    assert regs[0] == State.FAULT and regs[3] >= 410 and regs[6] == Fault.OVERTEMP
    assert await write(client, 7, RESET) == 6
    assert us1_sim.request({"op": "clear"})["ok"]
    assert us1_sim.request({"op": "set", "head_temp_c": 35.0})["ok"]
    await wait_state(us1_sim, lambda s: s["physics"]["head_temp_c"] == 35.0, 1.0)
    assert await write(client, 7, RESET) == 0


async def test_patient_stop_faults_and_switch_is_momentary(
    us1_sim: SimProcess, client: AsyncModbusTcpClient
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
    us1_sim: SimProcess, client: AsyncModbusTcpClient
) -> None:
    assert us1_sim.request({"op": "link", "mode": "drop"}) == {"ok": True}
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0, count=1, device_id=1)
    with pytest.raises(ModbusIOException):
        await client.write_register(1, 77, device_id=1)
    assert us1_sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
    await asyncio.sleep(0.05)
    assert await read(client, HR, 0, 2) == [1000, 0]  # the dropped write was never acted on


async def test_wrong_unit_id_gets_no_reply(client: AsyncModbusTcpClient) -> None:
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0, count=1, device_id=2)
    assert await read(client, HR, 0) == [1000]


async def test_reboot_increments_boot_counter_and_goes_idle(
    us1_sim: SimProcess, client: AsyncModbusTcpClient
) -> None:
    assert await write(client, 1, 50, 100, 100, 300, 1000, 0, START) == 0
    reply = us1_sim.request({"op": "reboot"})
    assert reply == {"ok": True, "boot_counter": 2}
    host, port = us1_sim.modbus_tcp
    fresh = AsyncModbusTcpClient(host, port=port, timeout=0.3, retries=0)
    assert await fresh.connect()
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
