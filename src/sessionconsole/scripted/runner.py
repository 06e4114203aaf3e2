"""Runs a plan through the controller's API, step by step, judging expectations on snapshots.

A refused command is noted and the script goes on; a failed expectation ends it at once. At
the end every output still on is stopped (a plain stop, not STOP ALL, so no alarm is added).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from sessionconsole.api.client import ControllerClient, ControllerUnavailable
from sessionconsole.api.messages import (
    LogTechniqueCommand,
    NoteCommand,
    Side,
    Snapshot,
    StopCommand,
    UltrasoundSnapshot,
)
from sessionconsole.scripted.plan import Expect, Plan, Send, Sim, Technique, Wait
from sessionconsole.testing import split_hostport

LIVE_TIMEOUT_S = 10.0
POLL_S = 0.02
SIM_TIMEOUT_S = 5.0
FINAL_STOP_WAIT_S = 1.5


class ConsoleUnavailable(RuntimeError):
    """The controller or a simulator could not be reached: the run could not take place."""


@dataclass(frozen=True)
class Refusal:
    """A command (or test-port request) that was refused; the script went on."""

    step: int
    do: str
    device: str | None
    rule_id: str | None
    error: str


@dataclass(frozen=True)
class FailedExpectation:
    """The expectation that did not hold, and what was seen instead."""

    step: int
    condition: str
    within_s: float
    observed: str


@dataclass
class RunResult:
    """What the run saw: the session, refusals, the failed expectation, energies."""

    session_id: str = ""
    steps_run: int = 0
    refused: list[Refusal] = field(default_factory=list)
    failed: FailedExpectation | None = None
    energy_j: dict[str, int] = field(default_factory=dict)  # device counters, highest seen


async def sim_request(control: str, request: dict[str, Any]) -> dict[str, Any]:
    """One test-port request on a fresh connection (SIMULATORS.md); the reply."""
    host, port = split_hostport(control)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), SIM_TIMEOUT_S)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), SIM_TIMEOUT_S))
        return reply
    finally:
        writer.close()


def _current_step(snap: Snapshot) -> int | None:
    """The guide's current step (0 once the plan is finished; None without a plan)."""
    if snap.guide is None:
        return None
    return snap.guide.current or 0


class ScriptRunner:
    """One script run over one API connection."""

    def __init__(self, socket_path: str, plan: Plan, operator: str) -> None:
        self.plan = plan
        self.client = ControllerClient(
            socket_path, operator=operator, client_name="script", on_snapshot=self._on_snapshot
        )
        self.result = RunResult()
        self._last_refused = False
        self._techniques: dict[tuple[str, str, Side], asyncio.Task[None]] = {}

    def _on_snapshot(self, snap: Snapshot) -> None:
        self.result.session_id = snap.session_id
        for d in snap.devices:
            if isinstance(d, UltrasoundSnapshot) and d.energy_j is not None:
                self.result.energy_j[d.device] = max(
                    d.energy_j, self.result.energy_j.get(d.device, 0)
                )

    async def run(self) -> RunResult:
        """Connect, wait for every output's telemetry, run the steps, stop what still runs."""
        try:
            await self.client.connect()
        except ControllerUnavailable as exc:
            raise ConsoleUnavailable(str(exc)) from exc
        try:
            await self._wait_live()
            for planned in self.plan.steps:
                self.result.steps_run += 1
                if not await self._step(planned):
                    break
            await self._finish()
        except ControllerUnavailable as exc:
            raise ConsoleUnavailable(f"lost the controller: {exc}") from exc
        finally:
            await self.client.close()
        return self.result

    async def _wait_live(self) -> None:
        deadline = time.monotonic() + LIVE_TIMEOUT_S
        while True:
            snap = self.client.latest
            if snap and snap.devices and all(d.telemetry_age_ms is not None for d in snap.devices):
                return
            if time.monotonic() > deadline:
                silent = (
                    [d.device for d in snap.devices if d.telemetry_age_ms is None] if snap else []
                )
                raise ConsoleUnavailable(
                    f"no telemetry within {LIVE_TIMEOUT_S} s from {silent or 'the controller'}"
                )
            await asyncio.sleep(POLL_S)

    async def _step(self, planned: Send | Wait | Technique | Sim | Expect) -> bool:
        """Run one step; False when the script must end (a failed expectation)."""
        match planned:
            case Send():
                await self._send(planned)
            case Wait(s=seconds):
                await asyncio.sleep(seconds)
            case Technique():
                await self._technique(planned)
            case Sim():
                await self._sim(planned)
            case Expect():
                failure = await self._expect(planned)
                if failure is not None:
                    self.result.failed = failure
                    return False
        return True

    async def _send(self, planned: Send) -> None:
        self._last_refused = False
        for command in planned.commands:
            reply = await self.client.send(command)
            if not reply.ok:
                self._last_refused = True
                self.result.refused.append(
                    Refusal(
                        planned.number,
                        planned.do,
                        getattr(command, "device", None),
                        reply.rule_id,
                        reply.error or "refused",
                    )
                )
        if not self._last_refused:
            for text in planned.notes:
                await self.client.send(NoteCommand(text=text))

    async def _technique(self, planned: Technique) -> None:
        cmd = planned.begin_or_end
        key = (cmd.technique, cmd.region, cmd.side)
        if cmd.action == "end" and key in self._techniques:
            self._techniques.pop(key).cancel()
        reply = await self.client.send(cmd)
        self._last_refused = not reply.ok
        if not reply.ok:
            self.result.refused.append(
                Refusal(planned.number, "technique", None, reply.rule_id, reply.error or "")
            )
        elif planned.duration_s is not None:
            end = cmd.model_copy(update={"action": "end"})
            self._techniques[key] = asyncio.create_task(self._end_later(end, planned.duration_s))

    async def _end_later(self, end: LogTechniqueCommand, after_s: float) -> None:
        await asyncio.sleep(after_s)
        key = (end.technique, end.region, end.side)
        self._techniques.pop(key, None)
        with contextlib.suppress(ControllerUnavailable, TimeoutError):
            await self.client.send(end)

    async def _sim(self, planned: Sim) -> None:
        try:
            reply = await sim_request(planned.control, planned.request)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConsoleUnavailable(
                f"step {planned.number}: {planned.unit} test port {planned.control}: {exc}"
            ) from exc
        self._last_refused = not reply.get("ok", False)
        if self._last_refused:
            error = str(reply.get("error", "test port refused the request"))
            self.result.refused.append(
                Refusal(planned.number, "sim", planned.unit, "SIM_REQUEST", error)
            )

    async def _expect(self, planned: Expect) -> FailedExpectation | None:
        e = planned.step
        if e.refused:
            held = self._last_refused
            return None if held else self._failure(planned, "the previous step was accepted")
        baseline = {a.id for a in self._snap().alarms}
        deadline = time.monotonic() + e.within_s
        while True:
            snap = self._snap()
            by_output = {d.device: d for d in snap.devices}
            if e.alarm is not None and any(a.rule_id == e.alarm for a in snap.alarms):
                return None
            if e.no_alarm:
                new = [f"{a.rule_id} on {a.device}" for a in snap.alarms if a.id not in baseline]
                if new:
                    return self._failure(planned, f"raised: {', '.join(new)}")
            if e.current_step is not None and _current_step(snap) == e.current_step:
                return None
            wanted_on = e.output_on is not None
            if planned.outputs and all(
                by_output[o].output_active == wanted_on for o in planned.outputs
            ):
                return None
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        if e.no_alarm:
            return None
        if e.alarm is not None:
            seen = sorted({a.rule_id for a in snap.alarms})
            return self._failure(planned, f"alarms raised: {seen or 'none'}")
        if e.current_step is not None:
            return self._failure(planned, f"current step {_current_step(snap)}")
        states = ", ".join(
            f"{o} {by_output[o].state} output_active={by_output[o].output_active}"
            for o in planned.outputs
        )
        return self._failure(planned, states)

    def _snap(self) -> Snapshot:
        if self.client.latest is None or not self.client.connected:
            raise ControllerUnavailable("no snapshot from the controller")
        return self.client.latest

    @staticmethod
    def _failure(planned: Expect, observed: str) -> FailedExpectation:
        e = planned.step
        return FailedExpectation(planned.number, e.condition, e.within_s, observed)

    async def _finish(self) -> None:
        """End running techniques, stop outputs still on, wait (bounded) to see them off."""
        for (technique, region, side), task in list(self._techniques.items()):
            task.cancel()  # a technique with a duration still running ends with the script
            with contextlib.suppress(ControllerUnavailable, TimeoutError):
                await self.client.send(
                    LogTechniqueCommand(action="end", technique=technique, region=region, side=side)
                )
        self._techniques.clear()
        running = [d.device for d in self._snap().devices if d.output_active]
        for output in running:
            await self.client.send(StopCommand(device=output))
        deadline = time.monotonic() + FINAL_STOP_WAIT_S
        while running and time.monotonic() < deadline:
            if not any(d.output_active for d in self._snap().devices):
                break
            await asyncio.sleep(POLL_S)
