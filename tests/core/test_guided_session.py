"""A guided session on a real controller process and a real US-1 simulator: steps in order with
timers, the therapist's start, pause, resume, skip and adjust through the API, stops pausing the
guide, out-of-limit adjustments refused, and every deviation in the record with who did it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.guide_messages import (
    GuideAdjustCommand,
    GuidePauseCommand,
    GuideResumeCommand,
    GuideSkipCommand,
    GuideSnapshot,
    GuideStartCommand,
)
from sessionconsole.api.messages import (
    AcknowledgeCommand,
    ConfigureCommand,
    ScreenedCondition,
    ScreeningCommand,
    StartCommand,
    StopAllCommand,
    StopCommand,
)
from sessionconsole.model.plan import UltrasoundValues
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.testing import SimProcess
from tests.support import ControllerProcess, connected, entries, running, wait_for, write_room

PLAN = """
pseudonym = "PT-0042"
title = "Guided test plan"
author = "T-01"
[limits]
max_intensity_w_cm2 = 1.5

[[steps]]
kind = "manual"
technique = "myofascial_release"
region = "lumbar"
side = "bilateral"
duration_s = 2

[[steps]]
kind = "ultrasound"
region = "lumbar"
side = "left"
duration_s = 3
[steps.ultrasound]
output = "us1"
preset = "us_chronic_1mhz"
settings = { intensity_w_cm2 = 1.0 }

[[steps]]
kind = "ultrasound"
region = "lumbar"
side = "right"
duration_s = 600
[steps.ultrasound]
output = "us1"
settings = { frequency_khz = 1000, intensity_w_cm2 = 0.5, duty_pct = 50 }
"""


@pytest.fixture
def guided_controller(sim: SimProcess, tmp_path: Path) -> Iterator[ControllerProcess]:
    """A controller on the US-1 simulator following PLAN."""
    _, port = sim.modbus_tcp
    room = write_room(tmp_path, port)
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    args = ("--plan", str(plan))
    with running(ControllerProcess(room, tmp_path / "s.db", tmp_path / "api.sock", args)) as ctl:
        yield ctl


@pytest.fixture
async def guided(guided_controller: ControllerProcess) -> AsyncIterator[ControllerClient]:
    async with connected(guided_controller.socket_path, operator="T-07") as c:
        yield c


def guide_of(client: ControllerClient) -> GuideSnapshot | None:
    return client.latest.guide if client.latest is not None else None


def us1_state(sim: SimProcess) -> str:
    return str(sim.request({"op": "state"})["state"])


def console_sees_us1_off(client: ControllerClient) -> bool:
    """The controller's newest reading of us1 shows no output (the kernel judges by it)."""
    snap = client.latest
    return snap is not None and not any(d.output_active for d in snap.devices if d.device == "us1")


def us1_off(sim: SimProcess) -> bool:
    """No output from the unit (stopped, or its own timer done)."""
    return not sim.request({"op": "state"})["physics"]["output_active"]


async def test_a_plan_runs_step_by_step_and_every_deviation_names_who(
    guided: ControllerClient, sim: SimProcess, guided_controller: ControllerProcess
) -> None:
    client, db = guided, guided_controller.db
    first = await wait_for(lambda: guide_of(client))
    assert (first.title, first.current, first.next, first.paused) == (
        "Guided test plan",
        1,
        2,
        False,
    )
    assert [s.state for s in first.steps] == ["pending"] * 3
    assert first.steps[1].label == "ultrasound lumbar (left) us1"
    # Nothing runs by itself, and a pending step cannot be paused.
    refused = await client.send(GuidePauseCommand())
    assert not refused.ok and refused.rule_id == "GUIDE_STATE"
    assert (await client.send(ScreeningCommand())).ok  # screened: no conditions

    # Step 1, manual: the timer only; the guide moves on and waits for the therapist.
    assert (await client.send(GuideStartCommand())).ok
    at_2 = await wait_for(lambda: (g := guide_of(client)) and g.current == 2 and g, timeout_s=10)
    assert at_2.steps[0].state == "done" and at_2.steps[1].state == "pending"
    assert us1_state(sim) == "IDLE" and us1_off(sim)

    # Adjust step 2 beyond the plan's cap: refused with the rule and the limit, nothing sent.
    too_high = GuideAdjustCommand(
        ultrasound=UltrasoundValues(intensity_w_cm2=1.8), reason="good tolerance"
    )
    reply = await client.send(too_high)
    assert not reply.ok and reply.rule_id == "PLAN_LIMIT"
    assert "1.5" in (reply.error or "") and "plan limits" in (reply.error or "")
    # Within it: accepted and recorded as a deviation by T-07.
    lower = GuideAdjustCommand(
        ultrasound=UltrasoundValues(intensity_w_cm2=0.8), reason="tender over the site"
    )
    assert (await client.send(lower)).ok

    # Step 2: the therapist starts it; the unit runs the adjusted settings; time up stops it.
    assert (await client.send(GuideStartCommand())).ok
    await wait_for(lambda: us1_state(sim) == "RUNNING", timeout_s=5)
    assert sim.request({"op": "state"})["holding"][1] == 80  # 0.8 W/cm² in 0.01 steps
    at_3 = await wait_for(lambda: (g := guide_of(client)) and g.current == 3 and g, timeout_s=10)
    assert at_3.steps[1].state == "done"
    await wait_for(lambda: us1_off(sim), timeout_s=5)
    await wait_for(lambda: console_sees_us1_off(client), timeout_s=5)  # its reading too

    # Step 3: STOP ALL pauses the guide; nothing restarts; resume waits for the acknowledgement.
    assert (await client.send(GuideStartCommand())).ok
    await wait_for(lambda: us1_state(sim) == "RUNNING", timeout_s=5)
    assert (await client.send(StopAllCommand())).ok
    await wait_for(lambda: (g := guide_of(client)) and g.paused, timeout_s=5)
    await wait_for(lambda: us1_off(sim), timeout_s=5)
    await wait_for(lambda: console_sees_us1_off(client), timeout_s=5)  # its reading too
    held = await client.send(GuideResumeCommand())
    assert not held.ok and held.rule_id == "OPERATOR_STOP"
    assert (await client.send(AcknowledgeCommand())).ok
    assert (await client.send(GuideResumeCommand())).ok
    await wait_for(lambda: us1_state(sim) == "RUNNING", timeout_s=5)
    # While it runs, a configure of its output is an adjustment held to the plan's limits.
    over = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.6, duty_pct=50, time_s=600)
    form = await client.send(ConfigureCommand(device="us1", settings=over, why="form"))
    assert not form.ok and form.rule_id == "PLAN_LIMIT"
    # The therapist ends it early: shortened, output stopped, plan finished.
    assert not (await client.send(GuideSkipCommand(reason=" "))).ok
    assert (await client.send(GuideSkipCommand(reason="patient asked to stop"))).ok
    done = await wait_for(lambda: (g := guide_of(client)) and g.current is None and g, 5)
    assert [s.state for s in done.steps] == ["done", "done", "shortened"]
    assert done.deviations == 2
    await wait_for(lambda: us1_off(sim), timeout_s=5)
    await wait_for(lambda: console_sees_us1_off(client), timeout_s=5)  # its reading too

    record = entries(db)
    deviations = [e.payload for e in record if e.kind == "deviation"]
    assert [(d["step"], d["kind"], d["operator"]) for d in deviations] == [
        (2, "settings_changed", "T-07"),
        (3, "shortened", "T-07"),
    ]
    assert deviations[0]["reason"] == "tender over the site"
    changed = deviations[0]["detail"]["settings"]["us1"]
    assert (changed["from"]["intensity_w_cm2"], changed["to"]["intensity_w_cm2"]) == (1.0, 0.8)
    assert deviations[1]["reason"] == "patient asked to stop"
    guide = [
        (e.payload["action"], e.payload["step"], e.payload["operator"])
        for e in record
        if e.kind == "guide"
    ]
    assert ("step_end", 1, "console") in guide and ("step_end", 2, "console") in guide
    assert ("paused_by_stop", 3, "console") in guide and ("resume", 3, "T-07") in guide
    refusals = {e.payload["rule_id"] for e in record if e.kind == "refusal"}
    assert {"GUIDE_STATE", "PLAN_LIMIT", "OPERATOR_STOP"} <= refusals


async def test_guide_commands_without_a_plan_are_refused(client: ControllerClient) -> None:
    reply = await client.send(GuideStartCommand())
    assert not reply.ok and reply.rule_id == "NO_PLAN" and "--plan" in (reply.error or "")
    snap = await client.wait_snapshot()
    assert snap.guide is None


async def test_each_step_is_screened_again_blocked_or_waiting_for_its_confirmation(
    guided: ControllerClient, sim: SimProcess, guided_controller: ControllerProcess
) -> None:
    client = guided
    await wait_for(lambda: guide_of(client))
    not_screened = await client.send(GuideStartCommand())
    assert not not_screened.ok and not_screened.rule_id == "NOT_SCREENED"
    gout = await client.send(ScreeningCommand(conditions=[ScreenedCondition(id="gout")]))
    assert not gout.ok and gout.rule_id == "SCREENING"
    assert "unknown condition 'gout'" in (gout.error or "")
    pregnant = ScreeningCommand(conditions=[ScreenedCondition(id="pregnancy")])
    assert (await client.send(pregnant)).ok
    assert (await client.send(GuideStartCommand())).ok  # step 1, manual lumbar: no rule
    await wait_for(lambda: (g := guide_of(client)) and g.current == 2, timeout_s=10)
    # Step 2, ultrasound over the lumbar region: blocked for pregnancy, checked at the step.
    blocked = await client.send(GuideStartCommand())
    assert not blocked.ok and blocked.rule_id == "CONTRAINDICATED"
    assert "step 2: ultrasound on lumbar (pregnancy)" in (blocked.error or "")
    assert us1_off(sim) and us1_state(sim) == "IDLE"
    # Nor around the guide: a plain start of that output is screened for the plan's steps.
    around = await client.send(StartCommand(device="us1"))
    assert not around.ok and around.rule_id == "CONTRAINDICATED"
    assert us1_off(sim) and us1_state(sim) == "IDLE"
    implant = ScreenedCondition(id="metal_implant", regions=["lumbar"])
    assert (await client.send(ScreeningCommand(conditions=[implant]))).ok
    unconfirmed = await client.send(GuideStartCommand())
    assert not unconfirmed.ok and unconfirmed.rule_id == "CONFIRM_NEEDED"
    assert "us_metal_implant" in (unconfirmed.error or "") and us1_off(sim)
    confirmed = ScreeningCommand(
        conditions=[implant], confirmed=["us_metal_implant@step 2:ultrasound"]
    )
    assert (await client.send(confirmed)).ok
    assert (await client.send(GuideStartCommand())).ok
    await wait_for(lambda: us1_state(sim) == "RUNNING", timeout_s=5)
    busy = await client.send(StartCommand(device="us1"))  # the running step's output
    assert not busy.ok and busy.rule_id == "GUIDE_OUTPUT"
    record = entries(guided_controller.db)
    screenings = [e.payload for e in record if e.kind == "screening"]
    assert [len(p["conditions"]) for p in screenings] == [1, 1, 1]
    assert screenings[-1]["confirmed"] == ["us_metal_implant@step 2:ultrasound"]
    assert {p["operator"] for p in screenings} == {"T-07"}
    refusals = [e.payload["rule_id"] for e in record if e.kind == "refusal"]
    assert refusals == [
        "NOT_SCREENED",
        "SCREENING",
        "CONTRAINDICATED",
        "CONTRAINDICATED",
        "CONFIRM_NEEDED",
        "GUIDE_OUTPUT",
    ]


async def test_a_stop_sent_right_after_a_guide_start_stops_what_it_started(
    guided: ControllerClient, sim: SimProcess
) -> None:
    client = guided
    await wait_for(lambda: guide_of(client))
    assert (await client.send(ScreeningCommand())).ok
    assert (await client.send(GuideStartCommand())).ok  # step 1, manual
    await wait_for(lambda: (g := guide_of(client)) and g.current == 2, timeout_s=10)
    # Both at once: the stop comes last, so it wins, whether the two land in one tick (the
    # controller judges requests in arrival order) or, as mostly here, in two.
    started, stopped = await asyncio.gather(
        client.send(GuideStartCommand()), client.send(StopCommand(device="us1"))
    )
    assert started.ok and stopped.ok
    await wait_for(lambda: (g := guide_of(client)) and g.paused, timeout_s=5)
    await wait_for(lambda: console_sees_us1_off(client) and us1_off(sim), timeout_s=5)
    await asyncio.sleep(0.5)  # and it stays off: nothing restarts by itself
    assert us1_off(sim) and console_sees_us1_off(client)
