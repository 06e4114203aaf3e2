"""LOOP_OVERRUN at the controller: a blocked core loop is judged by the kernel.

The controller runs in this test's event loop (so the test can block that loop on purpose)
against a real US-1 simulator over Modbus TCP. A blocking call right after a tick makes the
next tick come more than 5 periods late: LOOP_OVERRUN, a warning, and the output runs on.
Three such ticks in a row: LOOP_OVERRUN_STOP stops every output and holds them stopped until
acknowledged. The product defaults (5 periods, 3 in a row) are used. The link's network
allowance is 1 s so that the blocked loop's late telemetry does not also raise COMMS_LOSS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import AcknowledgeCommand, StartCommand
from sessionconsole.core.controller import Controller
from sessionconsole.core.main import build_config
from sessionconsole.testing import SimProcess
from tests.core.test_controller_us1 import start_output
from tests.support import (
    PROFILE,
    ControllerProcess,
    connected,
    controller_refusal,
    entries,
    running,
    wait_for,
    write_room,
)

BLOCK_S = 0.08  # 8 periods at 100 Hz: the tick after it is > 5 periods late however we run


def blocking_call() -> None:
    """A call that blocks the event loop (what no driver or handler may ever do)."""
    time.sleep(BLOCK_S)


def block_after_ticks(controller: Controller, blocks: int) -> None:
    """Run `blocking_call` on the loop right after each of the next `blocks` ticks, so the
    tick after each of them is late (`blocks` overruns in a row)."""
    loop = asyncio.get_running_loop()
    tick = controller.ticker.on_tick
    left = blocks

    def then_block(now: float) -> None:
        nonlocal left
        tick(now)
        if left == 0:
            controller.ticker.on_tick = tick
            return
        left -= 1
        loop.call_soon(blocking_call)

    controller.ticker.on_tick = then_block


@pytest.fixture
async def in_process(sim: SimProcess, tmp_path: Path) -> AsyncIterator[Controller]:
    """A controller on the US-1 simulator, in this event loop, with the default loop limits."""
    profile = PROFILE.format(port=sim.modbus_tcp[1], watchdog_ms=300)
    (tmp_path / "us1.toml").write_text(
        profile.replace("network_allowance_ms = 100", "network_allowance_ms = 1000")
    )
    room = tmp_path / "room.toml"
    room.write_text('name = "Test room"\n[devices.us1]\nprofile = "us1.toml"\n')
    config = build_config(room, tmp_path / "s.db", tmp_path / "api.sock")
    assert (config.overrun_periods, config.overruns_to_stop) == (5, 3)
    controller = Controller(config)
    await controller.start()
    runner = asyncio.create_task(controller.run())
    try:
        yield controller
    finally:
        await controller.shutdown()
        await asyncio.wait_for(runner, 5)


def active(client: ControllerClient, rule_id: str) -> bool:
    snap = client.latest
    return snap is not None and any(a.rule_id == rule_id and a.active for a in snap.alarms)


def output_on(sim: SimProcess) -> bool:
    return bool(sim.request({"op": "state"})["physics"]["output_active"])


async def test_one_late_tick_warns_and_three_in_a_row_stop_every_output(
    in_process: Controller, sim: SimProcess
) -> None:
    db = in_process.config.db_path
    async with connected(in_process.config.socket_path) as client:
        await start_output(client, sim)

        block_after_ticks(in_process, 1)
        await wait_for(lambda: active(client, "LOOP_OVERRUN"), 5)
        [alarm] = [a for a in (await client.wait_snapshot()).alarms if a.rule_id == "LOOP_OVERRUN"]
        assert alarm.priority == "medium" and "late" in alarm.message
        await asyncio.sleep(0.3)
        assert output_on(sim)  # a warning: nothing stops
        assert not [e for e in entries(db) if e.kind == "stop_sent"]
        assert (await client.send(AcknowledgeCommand())).ok
        await wait_for(lambda: not active(client, "LOOP_OVERRUN"), 5)

        block_after_ticks(in_process, 3)
        await wait_for(lambda: active(client, "LOOP_OVERRUN_STOP"), 5)
        await wait_for(lambda: not output_on(sim), 3)
        stops = [e.payload for e in entries(db) if e.kind == "stop_sent"]
        assert any(str(s["reason"]).startswith("LOOP_OVERRUN_STOP") for s in stops), stops
        refused = await client.send(StartCommand(device="us1"))
        assert not refused.ok and refused.rule_id == "LOOP_OVERRUN_STOP"
        # The ticks are on time again: acknowledged, the latch clears and starts are allowed.
        assert (await client.send(AcknowledgeCommand())).ok
        await wait_for(lambda: not active(client, "LOOP_OVERRUN_STOP"), 5)
        assert (await client.send(StartCommand(device="us1"))).ok
    raised = [
        e.payload["rule_id"]
        for e in entries(db)
        if e.kind == "alarm" and e.payload["change"] == "raised"
    ]
    assert "COMMS_LOSS" not in raised, raised


async def test_the_loop_limits_come_from_the_command_line_and_are_recorded(
    sim: SimProcess, tmp_path: Path
) -> None:
    room = write_room(tmp_path, sim.modbus_tcp[1])
    args = ("--overrun-periods", "8", "--overruns-to-stop", "4")
    with running(ControllerProcess(room, tmp_path / "s.db", tmp_path / "a.sock", args)):
        await wait_for(lambda: [e for e in entries(tmp_path / "s.db") if e.kind == "session_start"])
    [start] = [e.payload for e in entries(tmp_path / "s.db") if e.kind == "session_start"]
    assert start["loop"] == {
        "period_s": 0.01,
        "overrun_periods": 8,
        "overruns_to_stop": 4,
        "rt_priority": None,
    }


@pytest.mark.parametrize("option", ["--overrun-periods", "--overruns-to-stop"])
def test_a_loop_limit_below_one_is_refused(tmp_path: Path, option: str) -> None:
    result = controller_refusal(tmp_path, option, "0")
    assert result.returncode == 2
    assert f"{option}: 0: must be 1 or more" in result.stderr
