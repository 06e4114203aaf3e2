"""The driver contract: one suite, run against every driver over every transport.

In the manner of python-can's `back2back_test.py`: the cases below know only the
`DeviceDriver` interface and a small adapter per target (`contract_targets.py`), which starts
the simulator, builds the profile, starts an output and reads from the simulator's test port
whether that output is on. Targets: US-1 over Modbus TCP and Modbus RTU (pty), ES-2 over a
pty and over `socket://`, CX-3 through a real mosquitto, and the generic drivers on profiles:
the US-1 over Modbus TCP and RTU, the vendor-b layout over TCP, the CX-3 over MQTT.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from sessionconsole.drivers.base import DeviceDriver
from tests.drivers.contract_targets import TARGET_IDS, Target, started_target
from tests.support import core_heartbeats, wait_for


@pytest.fixture(params=TARGET_IDS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A started simulator of one target and its adapter."""
    yield from started_target(request.param, request)


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> None:
    """Like `wait_for`, for an async predicate (test-port reads)."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s"
        await asyncio.sleep(0.03)


async def output_off(target: Target) -> bool:
    return not await target.output_on()


async def stop_taken(driver: Any, timeout_s: float = 3.0) -> None:
    await asyncio.wait_for(driver.wait_stop_taken(), timeout_s)
    assert not driver.stop_pending


async def test_conforms_to_the_interface_and_starts_with_a_stop_pending(target: Target) -> None:
    driver = target.make_driver()
    try:
        assert isinstance(driver, DeviceDriver)
        assert driver.stop_pending and not driver.connected
    finally:
        await driver.close()


async def test_connect_and_stop_returns_the_state_before_and_leaves_the_output_off(
    target: Target,
) -> None:
    first = target.make_driver(target.long_watchdog_ms)
    try:
        assert not await target.connect(first)
        async with core_heartbeats(first):
            target.start_output(first)
            await until(target.output_on)
    finally:
        await first.close()  # a controller that dies without stopping: the output runs on
    assert await target.output_on()
    second = target.make_driver(target.long_watchdog_ms)  # the restarted controller
    try:
        assert await target.connect(second)  # the reading from before the stop: running
        state = await target.state()
        assert not target.sim_output_on(state) and not target.sim_watchdog_tripped(state)
        assert not second.stop_pending
    finally:
        await second.close()


async def test_heartbeats_go_out_only_when_requested(target: Target) -> None:
    driver = target.make_driver()
    try:
        await target.connect(driver)
        base = target.heartbeats(await target.state())
        await asyncio.sleep(0.4)
        assert target.heartbeats(await target.state()) == base
        for _ in range(3):
            driver.request_heartbeat()
            await asyncio.sleep(0.05)

        async def three_more() -> bool:
            return target.heartbeats(await target.state()) == base + 3

        await until(three_more)
        await asyncio.sleep(0.2)
        assert target.heartbeats(await target.state()) == base + 3  # and no more
    finally:
        await driver.close()


async def test_a_running_output_stops_on_request(target: Target) -> None:
    driver = target.make_driver(target.long_watchdog_ms)
    try:
        await target.connect(driver)
        async with core_heartbeats(driver):
            target.start_output(driver)
            await until(target.output_on)
            driver.request_stop()
            assert driver.stop_pending
            await stop_taken(driver)
            await until(lambda: output_off(target), 1.0)
        assert not target.sim_watchdog_tripped(await target.state())
    finally:
        await driver.close()


async def test_a_stop_asked_for_during_a_dropped_link_goes_out_and_a_start_does_not(
    target: Target,
) -> None:
    driver = target.make_driver(target.long_watchdog_ms)
    try:
        await target.connect(driver)
        async with core_heartbeats(driver):
            target.start_output(driver)
            await until(target.output_on)
            await target.request({"op": "link", "mode": "drop"})
            driver.request_stop()
            await wait_for(lambda: target.noticed_silence(driver), 3)
            assert driver.stop_pending
            target.start_output(driver)  # asked for while the unit is silent: never replayed
            await asyncio.sleep(0.1)
            await target.request({"op": "link", "mode": "ok"})
            await stop_taken(driver, 5)
            await until(lambda: output_off(target))
            # The watchdog is the longest the ICD allows and did not trip: the stop did it.
            assert not target.sim_watchdog_tripped(await target.state())
            await asyncio.sleep(0.5)
            assert not await target.output_on(), "a start asked for meanwhile was replayed"
    finally:
        await driver.close()


async def test_a_reboot_is_reported_and_the_driver_keeps_working(target: Target) -> None:
    driver = target.make_driver(target.long_watchdog_ms)
    try:
        await target.connect(driver)
        boots = target.boots_seen(driver)
        async with core_heartbeats(driver):
            target.start_output(driver)
            await until(target.output_on)
            await target.request({"op": "reboot"})
            await wait_for(lambda: target.boots_seen(driver) == boots + 1, 5)
            await asyncio.sleep(0.3)
            assert not await target.output_on(), "a start was retried after the reboot"
            await wait_for(lambda: driver.connected, 5)

            async def watchdog_set_again() -> bool:
                return target.sim_watchdog_ms(await target.state()) == target.long_watchdog_ms

            await until(watchdog_set_again)  # the device forgot it at boot; the driver did not
            target.start_output(driver)
            await until(target.output_on)
            driver.request_stop()
            await stop_taken(driver)
            await until(lambda: output_off(target))
        # The unit came back at boot values, and the driver then wrote the same settings
        # again: neither is a setpoint "the console did not write".
        assert driver.setpoint_mismatches == 0, target.errors
    finally:
        await driver.close()


async def test_a_stop_goes_ahead_of_writes_queued_before_it(target: Target) -> None:
    # Issue #4: "Stop goes out at once, ahead of anything queued". Settings and a start are
    # queued and a stop asked for in the same turn: the stop is taken first (its ack comes
    # no later than any ack of what was queued before it), and the output never turns on.
    driver = target.make_driver(target.long_watchdog_ms)
    try:
        await target.connect(driver)
        async with core_heartbeats(driver):
            await asyncio.sleep(0.3)  # the connect's own stop is long confirmed
            asked = time.monotonic()
            target.start_output(driver)
            driver.request_stop()
            await stop_taken(driver)
            deadline = time.monotonic() + 0.6
            while time.monotonic() < deadline:
                assert not await target.output_on(), "the start queued before the stop ran"
                await asyncio.sleep(0.05)
        records = [r for r in driver.commands.values() if r.requested_mono_s >= asked]
        stops = [r for r in records if r.op == "stop" and r.acknowledged_mono_s is not None]
        assert stops, [(r.op, r.state) for r in records]
        stop_acked = min(r.acknowledged_mono_s for r in stops)
        for record in records:
            if record.op != "stop" and record.acknowledged_mono_s is not None:
                assert record.acknowledged_mono_s >= stop_acked, (record.op, record.state)
    finally:
        await driver.close()


async def test_an_unexpected_failure_of_the_io_task_is_reported_and_stops_first(
    target: Target,
) -> None:
    # A bug or a library surprise inside the I/O task (here: the driver's clock raises once
    # while the output runs) must not end the task silently: it is reported, the link is
    # dropped, and the task runs again with a stop as the device's first command.
    driver = target.make_driver(target.long_watchdog_ms)
    clock, armed = driver.clock, False

    def failing_clock() -> float:
        nonlocal armed
        if armed:
            armed = False
            raise RuntimeError("injected")
        value: float = clock()
        return value

    driver.clock = failing_clock
    try:
        await target.connect(driver)
        async with core_heartbeats(driver):
            target.start_output(driver)
            await until(target.output_on)
            armed = True
            await wait_for(lambda: driver.io_task_restarts == 1, 5)
            assert any("I/O task failed (RuntimeError: injected)" in e for e in target.errors)
            await until(lambda: output_off(target))  # stopped by the driver, not its watchdog
            assert not target.sim_watchdog_tripped(await target.state())
            await wait_for(lambda: driver.connected and not driver.stop_pending, 5)
            restarted = time.monotonic()
            await wait_for(lambda: target.reading_time(driver) > restarted, 5)
        # one failure, one report, one restart (not a second one on the way back)
        assert driver.io_task_restarts == 1
        assert sum("I/O task failed" in e for e in target.errors) == 1, target.errors
    finally:
        await driver.close()


async def test_corrupted_frames_are_survived_and_clear_recovers(target: Target) -> None:
    driver = target.make_driver()
    try:
        await target.connect(driver)
        target.errors.clear()
        await target.request({"op": "link", "mode": "corrupt", "rate": 0.3})
        await asyncio.sleep(1.0)
        assert target.bad_input_seen(driver)
        await target.request({"op": "clear"})
        cleared = time.monotonic()
        await wait_for(lambda: driver.connected and target.reading_time(driver) > cleared, 5)
        driver.request_stop()
        await stop_taken(driver)
    finally:
        await driver.close()


async def test_delayed_replies_follow_the_icd(target: Target) -> None:
    driver = target.make_driver()
    try:
        await target.connect(driver)
        target.errors.clear()
        await target.request({"op": "link", "mode": "delay", "ms": 150})
        if target.delay_loses_link:
            # ES-2: 150 ms is past the third 50 ms silence, so the link counts as lost. The
            # bound is liveness only (the driver's next exchange has to come round): 3 s was
            # too short once, with a CI run and other test runs on the 2 cores.
            await wait_for(lambda: any("after 3 sends" in e for e in target.errors), 10)
        else:
            await asyncio.sleep(0.3)
            delayed = time.monotonic()
            await wait_for(lambda: target.reading_time(driver) > delayed, 2)
            driver.request_stop()
            await stop_taken(driver)
            assert driver.connected and target.errors == []
        await target.request({"op": "clear"})
        cleared = time.monotonic()
        await wait_for(lambda: driver.connected and target.reading_time(driver) > cleared, 5)
        driver.request_stop()
        await stop_taken(driver)
    finally:
        await driver.close()


async def test_a_device_that_ignores_stop_still_shows_its_output_in_telemetry(
    target: Target,
) -> None:
    driver = target.make_driver(target.long_watchdog_ms)
    try:
        await target.connect(driver)
        async with core_heartbeats(driver):
            target.start_output(driver)
            await wait_for(lambda: target.measured(driver) > target.on_threshold, 5)
            await target.request({"op": "inject", "fault": "ignore_stop"})
            driver.request_stop()
            await stop_taken(driver)  # the device acknowledged the stop ...
            taken = time.monotonic()
            await wait_for(lambda: target.reading_time(driver) > taken + 0.1, 2)
            # ... but its telemetry shows the stuck output: how the core notices the relay.
            assert target.measured(driver) > target.on_threshold
            assert await target.output_on()
            await target.request({"op": "clear"})
    finally:
        await driver.close()
