"""The ES-2 driver against the ES-2 simulator, over a pseudo-terminal and over TCP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sessionconsole.drivers.errors import DeviceUnreachable
from sessionconsole.drivers.es2_serial import Es2SerialDriver
from sessionconsole.drivers.tracking import CommandRecord
from sessionconsole.model.stimulation import (
    Es2Profile,
    SerialLink,
    StimulationProfileLimits,
    StimulationSettings,
)
from sessionconsole.testing import SimProcess
from tests.sims.es2_client import ES2Client
from tests.support import core_heartbeats, wait_for

SETTINGS = StimulationSettings(mode="SYM", freq_hz=100, pw_us=200, on_s=0, off_s=0, ramp_s=1)


def profile(port: str, watchdog_ms: int = 400) -> Es2Profile:
    return Es2Profile(
        kind="es2",
        name="driver test",
        watchdog_ms=watchdog_ms,
        heartbeat_interval_ms=100,
        link=SerialLink(kind="serial", port=port, telemetry_hz=20),
        limits=StimulationProfileLimits(max_amplitude_ma=40.0),
    )


@pytest.fixture(params=["serial_pty", "serial_url"])
def port(request: pytest.FixtureRequest, es2_sim: SimProcess) -> str:
    return str(es2_sim.endpoints[request.param])


def channel_state(sim: SimProcess, ch: int) -> str:
    return str(sim.request({"op": "state"})["channels"][ch - 1]["state"])


async def test_identify_configure_run_telemetry_and_stop(es2_sim: SimProcess, port: str) -> None:
    driver = Es2SerialDriver("es2", profile(port))
    before = await driver.connect_and_stop()
    assert driver.identity is not None and driver.identity.channels == 2
    assert {ch: r.state for ch, r in before.items()} == {1: "IDLE", 2: "IDLE"}
    driver.start()
    async with core_heartbeats(driver):
        driver.request_configure(1, SETTINGS)
        driver.request_amplitude(1, 12.5)
        driver.request_run(1)
        await wait_for(lambda: channel_state(es2_sim, 1) in ("RAMP", "ON"))
        # Targets read back by STAT, measured values from the TEL stream.
        await wait_for(lambda: driver.latest.get(1) and driver.latest[1].target_ma == 12.5)
        await wait_for(lambda: driver.latest[1].measured_ma > 5.0, 4)
        assert driver.latest[1].running and driver.latest[2].state == "IDLE"
        driver.request_stop(0)
        await wait_for(lambda: channel_state(es2_sim, 1) == "IDLE")
        await wait_for(lambda: not driver.latest[1].running)
    assert driver.last_error is None
    await driver.close()


async def test_a_nak_is_reported_with_its_code_and_the_link_stays_up(
    es2_sim: SimProcess, port: str
) -> None:
    errors: list[str] = []
    driver = Es2SerialDriver("es2", profile(port), on_error=lambda _d, m: errors.append(m))
    await driver.connect_and_stop()
    driver.start()
    driver.request_run(2)  # never configured
    await wait_for(lambda: errors)
    assert errors == ["es2: run refused: NAK,NOCFG"]
    assert driver.connected
    await driver.close()


async def test_heartbeats_only_when_asked(es2_sim: SimProcess, port: str) -> None:
    driver = Es2SerialDriver("es2", profile(port))
    await driver.connect_and_stop()
    driver.start()
    base = es2_sim.request({"op": "state"})["counters"]["heartbeats"]
    await asyncio.sleep(0.5)
    assert es2_sim.request({"op": "state"})["counters"]["heartbeats"] == base
    for _ in range(3):
        driver.request_heartbeat()
        await asyncio.sleep(0.05)
    await wait_for(lambda: es2_sim.request({"op": "state"})["counters"]["heartbeats"] == base + 3)
    await driver.close()


async def test_boot_event_is_seen_and_the_driver_keeps_working(
    es2_sim: SimProcess, port: str
) -> None:
    driver = Es2SerialDriver("es2", profile(port))
    await driver.connect_and_stop()
    driver.start()
    seen = driver.boot_events
    assert es2_sim.request({"op": "reboot"})["ok"]
    await wait_for(lambda: driver.boot_events == seen + 1, 3)
    await wait_for(lambda: driver.connected and driver.latest.get(1) is not None)
    await driver.close()


async def test_silent_link_is_lost_after_three_sends_and_the_stop_waits_for_it(
    es2_sim: SimProcess, port: str
) -> None:
    driver = Es2SerialDriver("es2", profile(port, watchdog_ms=2000))
    await driver.connect_and_stop()
    driver.start()
    async with core_heartbeats(driver):
        driver.request_configure(1, SETTINGS)
        driver.request_amplitude(1, 10)
        driver.request_run(1)
        await wait_for(lambda: channel_state(es2_sim, 1) in ("RAMP", "ON"))
        es2_sim.request({"op": "link", "mode": "drop"})
        driver.request_stop(0)
        await wait_for(lambda: not driver.connected, 3)
        assert driver.last_error is not None and "after 3 sends" in driver.last_error
        es2_sim.request({"op": "link", "mode": "ok"})
        # The watchdog is 2 s and heartbeats could not pass: only the stop explains IDLE.
        await wait_for(lambda: channel_state(es2_sim, 1) == "IDLE", 3)
    await driver.close()


async def test_a_missing_port_is_a_clear_error() -> None:
    driver = Es2SerialDriver("es2", profile("/dev/does-not-exist"))
    with pytest.raises(DeviceUnreachable, match=r"cannot open /dev/does-not-exist"):
        await driver.connect_and_stop(timeout_s=0.2)
    await driver.close()


async def test_commands_tracked_from_request_to_confirmation(es2_sim: SimProcess) -> None:
    # Issue #4: requested -> acknowledged (ACK) -> confirmed by a reading; NAK -> refused.
    driver = Es2SerialDriver("es2", profile(str(es2_sim.endpoints["serial_pty"])))
    await driver.connect_and_stop()
    driver.start()

    def last(op: str) -> CommandRecord:
        return [r for r in driver.commands.values() if r.op == op][-1]

    try:
        async with core_heartbeats(driver):
            driver.request_configure(1, SETTINGS)
            driver.request_amplitude(1, 12.5)
            driver.request_run(1)
            await wait_for(lambda: last("run").state == "confirmed")
            assert last("configure").state == "confirmed"  # nothing to read back: ACK ends it
            amplitude = last("amplitude")
            await wait_for(lambda: amplitude.state == "confirmed")
            assert amplitude.acknowledged_mono_s is not None
            assert amplitude.confirmed_mono_s is not None
            assert amplitude.confirmed_mono_s >= amplitude.acknowledged_mono_s
            driver.request_configure(1, SETTINGS)  # CFG while running: NAK,STATE
            await wait_for(lambda: last("configure").state == "refused")
            assert last("configure").error == "STATE"
            driver.request_stop(0)
            await wait_for(lambda: last("stop").state == "confirmed")
    finally:
        await driver.close()


async def test_a_target_the_console_did_not_write_is_reported(es2_sim: SimProcess) -> None:
    # Issue #4: the driver reads targets back (STAT) and reports one it did not write. Another
    # client takes the TCP port for a moment (newest connection wins) and sets channel 1.
    url = str(es2_sim.endpoints["serial_url"])
    errors: list[str] = []
    driver = Es2SerialDriver("es2", profile(url), on_error=lambda _d, m: errors.append(m))
    await driver.connect_and_stop()
    driver.start()
    try:
        driver.request_amplitude(1, 12.5)
        await wait_for(lambda: driver.latest.get(1) and driver.latest[1].target_ma == 12.5)
        assert driver.setpoint_mismatches == 0
        intruder = ES2Client(url)
        try:
            assert intruder.request("AMP,1,20") == ["ACK"]
        finally:
            intruder.close()
        await wait_for(lambda: driver.setpoint_mismatches == 1, 5)
        assert any(
            "channel 1 holds target 20 mA, but the console wrote 12.5 mA" in e for e in errors
        )
    finally:
        await driver.close()


async def test_a_reply_that_breaks_the_reader_during_connect_and_stop_is_retried(
    es2_sim: SimProcess, port: str
) -> None:
    # connect_and_stop runs before the supervised I/O task exists (controller start): an
    # unexpected failure handling a reply must look like a lost link to it, so it retries and
    # the unit still gets its stop, instead of ending the controller's start.
    driver = Es2SerialDriver("es2", profile(port))
    dispatch, failed = driver._dispatch, []

    def failing_dispatch(frame: Any) -> None:
        if not failed:
            failed.append(frame)
            raise KeyError("injected")
        dispatch(frame)

    driver._dispatch = failing_dispatch  # type: ignore[method-assign]
    try:
        channels = await driver.connect_and_stop(timeout_s=5.0)
        assert failed and set(channels) == {1, 2}
        assert not driver.stop_pending  # the unit acknowledged the stop
        assert driver._reader_failure is None  # nothing left over for the I/O task to raise
    finally:
        await driver.close()


@pytest.mark.parametrize("frame_kind", ["reply", "telemetry"])
async def test_a_frame_that_breaks_the_reader_while_running_is_one_supervised_failure(
    es2_sim: SimProcess, frame_kind: str
) -> None:
    # While the I/O task runs, the same failure is the supervisor's: reported once, the link
    # dropped, the channel stopped by the driver, and one restart (not a second on the way).
    # A reply fails the request waiting for it; a TEL frame has no request waiting.
    errors: list[str] = []
    port = str(es2_sim.endpoints["serial_pty"])
    driver = Es2SerialDriver("es2", profile(port, 2000), on_error=lambda _d, m: errors.append(m))
    dispatch, armed = driver._dispatch, [False]

    def failing_dispatch(frame: Any) -> None:
        if armed[0] and (frame.seq != 0) == (frame_kind == "reply"):
            armed[0] = False
            raise KeyError("injected")
        dispatch(frame)

    driver._dispatch = failing_dispatch  # type: ignore[method-assign]
    try:
        await driver.connect_and_stop()
        driver.start()
        async with core_heartbeats(driver):
            driver.request_configure(1, SETTINGS)
            driver.request_amplitude(1, 10.0)
            driver.request_run(1)
            await wait_for(lambda: channel_state(es2_sim, 1) in ("RAMP", "ON"))
            armed[0] = True
            await wait_for(lambda: driver.io_task_restarts == 1, 5)
            await wait_for(lambda: channel_state(es2_sim, 1) == "IDLE")
            await wait_for(lambda: driver.connected and not driver.stop_pending, 5)
            await asyncio.sleep(0.5)
        assert driver.io_task_restarts == 1
        assert sum("I/O task failed (KeyError: 'injected')" in e for e in errors) == 1, errors
        assert not es2_sim.request({"op": "state"})["channels"][0]["faults"] & 0x01  # no WDG trip
    finally:
        await driver.close()
