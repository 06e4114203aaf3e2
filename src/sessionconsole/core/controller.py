"""The controller: owns the devices, runs the kernel every tick, records, and serves the API.

Each tick: take the newest reading of each output (core/units.py turns every unit's telemetry
into one reading per output), run the kernel, hand stops to the drivers first and then the
other writes, feed heartbeats (only from here: the charge pump), publish a snapshot, and pass
new readings to the recorder. Nothing on the tick waits for I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessionconsole import __version__
from sessionconsole.api.guide_messages import GUIDE_COMMANDS, GuideCommand
from sessionconsole.api.messages import (
    AcknowledgeCommand,
    AlarmSnapshot,
    ClearLockoutCommand,
    ConfigureCommand,
    GoalStatusCommand,
    HeartbeatCommand,
    Hello,
    LogTechniqueCommand,
    LoopStats,
    NoteCommand,
    PainScoreCommand,
    PatientCommand,
    RangeOfMotionCommand,
    Reply,
    Request,
    ScreeningCommand,
    Snapshot,
    StartCommand,
    StimulationSnapshot,
    StopAllCommand,
    StopCommand,
    TechniqueSnapshot,
    UltrasoundSnapshot,
)
from sessionconsole.core.guided import GuidedSession, Intent, guided_session
from sessionconsole.core.peers import PeerPolicy, group_id
from sessionconsole.core.server import ApiServer, ClientSession
from sessionconsole.core.stall import DEFAULT_THRESHOLD_S, StallWatch
from sessionconsole.core.ticker import Ticker
from sessionconsole.core.units import Unit, descriptor_keys, make_unit, reading_values
from sessionconsole.drivers.errors import DriverError
from sessionconsole.model.contraindication import Contraindications, load_contraindications
from sessionconsole.model.limits import ClinicalLimits
from sessionconsole.model.paths import config_dir
from sessionconsole.model.plan import ManualStep, PatientCondition, TreatmentPlan
from sessionconsole.model.session import SessionPeople
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup
from sessionconsole.model.telemetry import OutputReading, UltrasoundReading
from sessionconsole.model.validation import AnyProfile
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.plans.guide import GuideRefused
from sessionconsole.record.recorder import DEFAULT_FLUSH_INTERVAL_S, Recorder
from sessionconsole.record.sample_columns import SampleBatch
from sessionconsole.record.signing import RecordKey
from sessionconsole.safety import kernel
from sessionconsole.safety import types as k

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_TICKS = 5
SHUTDOWN_STOP_WAIT_S = 1.0
STOP_ENTRY_REPEAT_S = 5.0
STATS_EVERY_TICKS = 100
# Record entry kind of each observation command (what the therapist saw or measured).
_OBSERVATION_KINDS = {
    "pain": "pain_score",
    "note": "note",
    "rom": "range_of_motion",
    "goal": "goal_status",
}


def _screening_problem(
    command: ScreeningCommand, conditions: Mapping[str, str], vocabulary: Vocabulary
) -> str | None:
    """Why a screening cannot be recorded (an unknown condition or region), or None."""
    regions = vocabulary.region_ids()
    for condition in command.conditions:
        if condition.id not in conditions:
            known = ", ".join(sorted(conditions))
            return f"unknown condition {condition.id!r} (known: {known})"
        for region in condition.regions:
            if region not in regions:
                return f"{condition.id}: unknown body region {region!r}"
    return None


def wall_now() -> str:
    """Wall-clock time for display, ISO 8601 UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class _Pending:
    """A command between its arrival and the kernel's decision."""

    client: ClientSession
    client_request_id: int
    operator: str
    command: Any
    arrived_mono_ns: int
    role: str = "therapist"


@dataclass(frozen=True)
class ControllerConfig:
    """Everything the controller is built from."""

    room_name: str
    profiles: dict[str, AnyProfile]
    profile_hashes: dict[str, str]
    clinical: ClinicalLimits
    vocabulary: Vocabulary
    db_path: Path
    socket_path: Path
    people: SessionPeople | None = None
    plan: TreatmentPlan | None = None  # the plan this session follows, recorded at its start
    api_group: str | None = None  # besides the controller's own user, members may connect
    biomedical_pin: str | None = None  # $SESSIONCONSOLE_BIOMED_PIN: the biomedical role's PIN
    period_s: float = 0.01
    record_key: RecordKey | None = None  # None: the installation key (created on first use)
    # LOOP_OVERRUN: a tick later than this many periods; LOOP_OVERRUN_STOP: this many in a row
    overrun_periods: int = 5
    overruns_to_stop: int = 3
    stall_report_s: float | None = DEFAULT_THRESHOLD_S  # log the loop's stack past this; None: off
    rt_priority: int | None = None  # SCHED_FIFO priority of the loop's thread (main.py sets it)


class Controller:
    """Assembles drivers, kernel, recorder and API; see the module docstring for a tick."""

    def __init__(self, config: ControllerConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.units: dict[str, Unit] = {
            name: make_unit(name, profile, config.clinical, clock)
            for name, profile in config.profiles.items()
        }
        self.drivers = {name: unit.driver for name, unit in self.units.items()}
        self.unit_of = {output: unit for unit in self.units.values() for output in unit.outputs}
        limits = {o: lim for unit in self.units.values() for o, lim in unit.limits.items()}
        self.state = replace(
            k.initial_state(limits),
            tick_period_s=config.period_s,
            thoracic_regions=dict(config.clinical.thoracic_regions),
            overrun_periods=config.overrun_periods,
            overruns_to_stop=config.overruns_to_stop,
        )
        self.recorder = Recorder(config.db_path, key=config.record_key)
        group = None if config.api_group is None else group_id(config.api_group)
        policy = PeerPolicy(owner_uid=os.getuid(), group_gid=group)
        self.server = ApiServer(config.socket_path, self._on_request, policy=policy)
        self.ticker = Ticker(
            config.period_s, self._tick, clock=clock, overrun_periods=config.overrun_periods
        )
        self.stall_watch: StallWatch | None = None
        if config.stall_report_s is not None:
            self.stall_watch = StallWatch(self.ticker, config.stall_report_s)
        self.session_id = ""
        self._incoming: list[_Pending] = []
        self._awaiting: dict[int, _Pending] = {}
        self._next_rid = 1
        self._last_sample: dict[str, float] = {}
        people = config.people
        self._patient: str | None = people.patient_pseudonym if people else None
        self._samples = SampleBatch()  # new readings, handed to the recorder in bulk
        self._samples_handed_at = 0.0
        self._techniques: dict[tuple[str, str, str], TechniqueSnapshot] = {}
        self._begun: list[tuple[str, str]] = []  # (region, side) begun since the last tick
        self._tick_readings: dict[str, k.Reading | None] = {}  # the tick's, for its entries
        self._snapshot_seq = 0
        self._loop_stats = LoopStats(
            period_ms=config.period_s * 1000,
            ticks=0,
            lateness_p50_ms=0,
            lateness_p99_ms=0,
            lateness_max_ms=0,
            overruns=0,
        )
        self._background: set[asyncio.Future[Any]] = set()
        self._last_stop_entry: dict[str, tuple[str, float, int]] = {}
        self._last_client_heard = clock()  # any request of a client that said hello
        self._stopping = False
        self._running: dict[str, bool] = {}  # per output: running in the last reading
        self._attended: dict[str, bool] = {}  # per output: the newest start's attended mark
        # Guided session (core/guided.py): the plan's steps, when the session follows a plan.
        self.guided: GuidedSession | None = None
        if config.plan is not None:
            self.guided = guided_session(
                config.plan, config.profiles, config.clinical, config.vocabulary
            )
        # The rules a screening is checked with: the guide's own, else read once here (a file
        # that cannot be read refuses every screening with the reason, never the connection).
        self._rules: tuple[Contraindications | None, str] = (None, "")
        if self.guided is not None:
            self._rules = (self.guided.ctx.rules, "")
        else:
            try:
                self._rules = (load_contraindications(config_dir() / "contraindications.toml"), "")
            except (OSError, ValueError) as exc:
                self._rules = (None, str(exc))

    # ---- lifecycle ----

    async def start(self) -> None:
        """Stop every device first, close any interrupted session, open this one, serve."""
        found_running: list[str] = []
        startup: dict[str, dict[str, Any]] = {}
        for name, unit in self.units.items():
            try:
                running_before = await unit.connect_and_stop()
                startup[name] = {
                    "stop_sent": True,
                    "outputs_running_before_stop": sorted(
                        o for o, on in running_before.items() if on
                    ),
                }
                found_running.extend(o for o, on in running_before.items() if on)
            except DriverError as exc:
                # The stop stays pending in the driver: it is the first write once reached.
                startup[name] = {"stop_sent": False, "error": str(exc)}
                log.error("%s at start: %s", name, exc)
        mono, wall = self._stamp(), wall_now()
        interrupted = await asyncio.wrap_future(self.recorder.close_interrupted(mono, wall))
        meta = {
            "room": self.config.room_name,
            "software_version": __version__,
            **(self.config.people.model_dump() if self.config.people else {}),
            **({"plan": self.config.plan.model_dump(mode="json")} if self.config.plan else {}),
            "profiles": self.config.profile_hashes,
            "devices": sorted(self.drivers),
            "outputs": sorted(self.unit_of),
            "startup": startup,
            "closed_as_interrupted": interrupted,
            "loop": {  # a session run with wider overrun limits says so in its record
                "period_s": self.config.period_s,
                "overrun_periods": self.config.overrun_periods,
                "overruns_to_stop": self.config.overruns_to_stop,
                "rt_priority": self.config.rt_priority,
            },
        }
        self.session_id = await asyncio.wrap_future(self.recorder.open_session(meta, mono, wall))
        for unit in self.units.values():
            for output in unit.outputs:
                self._record(
                    "stream_descriptor", _descriptor(output, unit, self.state.limits[output])
                )
        for name in found_running:
            self.state, actions = kernel.raise_found_running(self.state, name, self.clock())
            self._dispatch(actions)
        for driver in self.drivers.values():
            driver.start()
        await self.server.start()
        log.info("controller serving on %s, session %s", self.config.socket_path, self.session_id)

    async def run(self) -> None:
        """Run the core loop until `shutdown`, watched for stalls (core/stall.py)."""
        if self.stall_watch is not None:
            self.stall_watch.start()
        try:
            await self.ticker.run()
        finally:
            if self.stall_watch is not None:
                self.stall_watch.stop()

    async def shutdown(
        self, reason: str = "controller stopped by operator", exit_status: str = "completed"
    ) -> None:
        """No more commands; stop every output and wait (bounded) for the stops to be taken;
        record the outcome; end the session; close everything."""
        if self._stopping:
            return
        self._stopping = True
        await self.server.close()
        self.ticker.stop()
        for driver in self.drivers.values():
            driver.request_stop()
        waits = {asyncio.ensure_future(d.wait_stop_taken()) for d in self.drivers.values()}
        _, late = await asyncio.wait(waits, timeout=SHUTDOWN_STOP_WAIT_S)
        for waiter in late:
            waiter.cancel()
        not_taken = sorted(n for n, d in self.drivers.items() if d.stop_pending)
        for driver in self.drivers.values():
            await driver.close()
        if self.session_id:
            if self.guided is not None:
                self._record_later(
                    "guide", {"action": "session_end", **self.guided.summary(self.clock())}
                )
            self._record_later(
                "shutdown",
                {
                    "reason": reason,
                    "stops_taken": sorted(set(self.drivers) - set(not_taken)),
                    "stops_not_taken": not_taken,
                },
            )
            summary = {"alarms": len(self.state.alarms), "stops_not_taken": not_taken}
            self._hand_over_samples()
            self.recorder.end_session(
                self.session_id, exit_status, reason, summary, self._stamp(), wall_now()
            )
        self.recorder.close()  # blocks until written; the loop no longer ticks

    # ---- API ----

    def _on_request(self, client: ClientSession, request: Request) -> None:
        command = request.command
        if isinstance(command, Hello):
            if command.role == kernel.BIOMEDICAL_ROLE and not self._biomedical_pin_ok(command):
                why = "the biomedical role needs the controller's PIN (SESSIONCONSOLE_BIOMED_PIN)"
                self._record_later(
                    "refusal",
                    {"operator": command.operator, "client": command.client, "reason": why},
                )
                client.reply(Reply(id=request.id, ok=False, error=why, rule_id="ROLE"))
                return
            client.operator, client.role, client.name = (
                command.operator,
                command.role,
                command.client,
            )
            self._record("client_connected", command.model_dump(exclude={"pin"}))
            client.reply(Reply(id=request.id, ok=True))
            return
        if client.operator is None:
            client.reply(Reply(id=request.id, ok=False, error="send hello (operator, role) first"))
            return
        self._last_client_heard = self.clock()
        if isinstance(command, HeartbeatCommand):
            client.reply(Reply(id=request.id, ok=True))
            return
        pending = _Pending(
            client, request.id, client.operator, command, self._stamp(), client.role or ""
        )
        if isinstance(command, ClearLockoutCommand) and pending.role != kernel.BIOMEDICAL_ROLE:
            # Checked here as well as in the kernel: the role comes from this client's hello.
            payload = {**command.model_dump(), "operator": pending.operator, "role": pending.role}
            payload.update(rule_id="ROLE", reason="only biomedical staff may clear a lock-out")
            reply = Reply(
                id=request.id,
                ok=False,
                error="only biomedical staff may clear a lock-out",
                rule_id="ROLE",
            )
            self._reply_when_recorded(pending, "refusal", payload, reply)
            return
        if isinstance(command, LogTechniqueCommand):
            self._log_technique(pending, command)
            return
        region = _electrode_region(command)
        if region is not None and region not in self.config.vocabulary.region_ids():
            why = f"unknown body region '{region}' for the electrodes"
            payload = {**command.model_dump(mode="json"), "operator": pending.operator}
            payload.update(rule_id="VOCABULARY", reason=why)
            reply = Reply(id=request.id, ok=False, error=why, rule_id="VOCABULARY")
            self._reply_when_recorded(pending, "refusal", payload, reply)
            return
        if isinstance(command, GUIDE_COMMANDS) and self.guided is None:
            why = "this session follows no plan (start the controller with --plan)"
            payload = {**command.model_dump(), "operator": pending.operator}
            payload.update(rule_id="NO_PLAN", reason=why)
            reply = Reply(id=request.id, ok=False, error=why, rule_id="NO_PLAN")
            self._reply_when_recorded(pending, "refusal", payload, reply)
            return
        if isinstance(command, PatientCommand):
            self._set_patient(pending, command.pseudonym)
            return
        if isinstance(command, ScreeningCommand):
            self._screening(pending, command)
            return
        if isinstance(command, PainScoreCommand | NoteCommand | GoalStatusCommand):
            self._record_observation(pending, command)
            return
        if isinstance(command, RangeOfMotionCommand):
            vocab = self.config.vocabulary
            problem = vocab.rom_problem(command.joint, command.movement, command.side)
            if problem is not None:
                pending.client.reply(Reply(id=pending.client_request_id, ok=False, error=problem))
                return
            self._record_observation(pending, command)
            return
        self._incoming.append(pending)

    def _record_observation(
        self,
        pending: _Pending,
        command: PainScoreCommand | NoteCommand | GoalStatusCommand | RangeOfMotionCommand,
    ) -> None:
        """Record what the therapist observed as a durable entry; reply once it is synced."""
        payload = {**command.model_dump(exclude={"type"}), "operator": pending.operator}
        reply = Reply(id=pending.client_request_id, ok=True)
        self._reply_when_recorded(pending, _OBSERVATION_KINDS[command.type], payload, reply)

    def _biomedical_pin_ok(self, hello: Hello) -> bool:
        """The hello carries the controller's biomedical PIN (none configured: nobody may)."""
        expected = self.config.biomedical_pin
        if not expected or hello.pin is None:
            return False
        return hmac.compare_digest(hello.pin.encode(), expected.encode())

    def _screening(self, pending: _Pending, command: ScreeningCommand) -> None:
        """Record the patient's contraindication screening (who, conditions, confirmations);
        a guided session checks every later step start against the newest one."""
        rules, unreadable = self._rules
        problem = (
            f"the contraindication rules could not be read: {unreadable}"
            if rules is None
            else _screening_problem(command, rules.conditions, self.config.vocabulary)
        )
        if problem is not None:
            payload = {**command.model_dump(), "operator": pending.operator}
            payload.update(rule_id="SCREENING", reason=problem)
            reply = Reply(
                id=pending.client_request_id, ok=False, error=problem, rule_id="SCREENING"
            )
            self._reply_when_recorded(pending, "refusal", payload, reply)
            return
        if self.guided is not None:
            conditions = [
                PatientCondition(id=c.id, regions=list(c.regions)) for c in command.conditions
            ]
            self.guided.screened(conditions, command.confirmed)
        payload = {**command.model_dump(exclude={"type"}), "operator": pending.operator}
        reply = Reply(id=pending.client_request_id, ok=True)
        self._reply_when_recorded(pending, "screening", payload, reply)

    def _set_patient(self, pending: _Pending, pseudonym: str) -> None:
        """Name the session's patient once, or confirm it; never switch patients mid-session
        (the record, the plan and the bill are one patient's). Recorded either way."""
        plan = self.config.plan
        payload: dict[str, Any] = {"pseudonym": pseudonym, "operator": pending.operator}
        problem = None
        if self._patient is not None and self._patient != pseudonym:
            problem = (
                f"this session is for {self._patient}; end it and start the controller with "
                f"--patient {pseudonym} for another patient"
            )
        elif plan is not None and plan.pseudonym != pseudonym:
            problem = f"the session follows a plan for {plan.pseudonym}, not for {pseudonym}"
        if problem is not None:
            payload.update(command="patient", rule_id="PATIENT", reason=problem)
            reply = Reply(id=pending.client_request_id, ok=False, error=problem, rule_id="PATIENT")
            self._reply_when_recorded(pending, "refusal", payload, reply)
            return
        payload["confirmed"] = self._patient is not None  # else: named now
        self._patient = pseudonym
        self._reply_when_recorded(
            pending, "patient", payload, Reply(id=pending.client_request_id, ok=True)
        )

    def _log_technique(self, pending: _Pending, command: LogTechniqueCommand) -> None:
        vocab = self.config.vocabulary
        problem = None
        if command.technique not in vocab.technique_ids():
            problem = f"unknown technique '{command.technique}'"
        elif command.region not in vocab.region_ids():
            problem = f"unknown body region '{command.region}'"
        key = (command.technique, command.region, command.side)
        if problem is None and command.action == "end" and key not in self._techniques:
            problem = f"{command.technique} on {command.region} ({command.side}) was not begun"
        if problem is not None:
            pending.client.reply(Reply(id=pending.client_request_id, ok=False, error=problem))
            return
        if command.action == "begin":
            self._begun.append((command.region, command.side))
            self._techniques[key] = TechniqueSnapshot(
                technique=command.technique,
                region=command.region,
                side=command.side,
                started_wall=wall_now(),
            )
        else:
            self._techniques.pop(key, None)
        payload = {**command.model_dump(exclude={"type"}), "operator": pending.operator}
        self._reply_when_recorded(
            pending, "technique", payload, Reply(id=pending.client_request_id, ok=True)
        )

    def _to_kernel(self, rid: int, pending: _Pending) -> k.Command | None:
        c = pending.command
        if isinstance(c, ConfigureCommand):
            return k.Configure(rid, c.device, c.settings)
        if isinstance(c, StartCommand):
            return k.Start(rid, c.device)
        if isinstance(c, StopCommand):
            return k.Stop(rid, c.device)
        if isinstance(c, StopAllCommand):
            return k.StopAll(rid)
        if isinstance(c, AcknowledgeCommand):
            return k.Acknowledge(rid, c.alarm_id, pending.operator)
        if isinstance(c, ClearLockoutCommand):
            return k.ClearLockout(rid, c.device, pending.operator, pending.role)
        return None

    # ---- the tick ----

    def _tick(self, now: float) -> None:
        readings: dict[str, k.Reading | None] = {}
        for unit in self.units.values():
            readings.update(unit.readings())
        silence = now - self._last_client_heard

        def inputs(cmds: list[k.Command]) -> k.Inputs:
            return k.Inputs(
                readings,
                tuple(cmds),
                client_silence_s=silence,
                lateness_s=self.ticker.last_lateness_s,  # LOOP_OVERRUN(_STOP)
                techniques=tuple(self._begun),
            )

        guided = self.guided
        commands: list[k.Command] = []
        if guided is not None:
            commands = self._guide_time_up(guided, commands, now)
        # In arrival order, guide requests among the others: a stop sent after a guide start
        # in the same tick is judged after it (and stops it), never before.
        for pending in self._incoming:
            command = pending.command
            if guided is not None and isinstance(command, (*GUIDE_COMMANDS, ConfigureCommand)):
                commands = self._guide_request(guided, pending, commands, inputs, now)
                continue
            if guided is not None and isinstance(command, StartCommand):
                try:
                    guided.plain_start(command.device)
                except GuideRefused as exc:
                    self._guide_refuse(pending, exc.rule_id, str(exc))
                    continue
            rid, self._next_rid = self._next_rid, self._next_rid + 1
            kernel_command = self._to_kernel(rid, pending)
            if kernel_command is None:
                pending.client.reply(
                    Reply(
                        id=pending.client_request_id,
                        ok=False,
                        error=f"command '{pending.command.type}' is not supported by the kernel",
                    )
                )
                continue
            self._awaiting[rid] = pending
            commands.append(kernel_command)
        self._incoming = []
        self.state, actions = kernel.step(self.state, inputs(commands), now)
        self._begun = []
        self._tick_readings = readings
        self._dispatch(actions)
        if self.guided is not None:
            self._guide_after(self.guided, actions, readings, now)
        self._record_output_edges(readings)
        self._sample(readings)
        if now - self._samples_handed_at >= DEFAULT_FLUSH_INTERVAL_S:
            self._hand_over_samples(now)
        ticks = self.ticker.stats.ticks
        if ticks % STATS_EVERY_TICKS == 0:
            s = self.ticker.stats.summary()
            self._loop_stats = LoopStats(
                period_ms=self.config.period_s * 1000,
                ticks=s.ticks,
                lateness_p50_ms=s.p50_ms,
                lateness_p99_ms=s.p99_ms,
                lateness_max_ms=s.max_ms,
                overruns=s.overruns,
            )
        if ticks % SNAPSHOT_EVERY_TICKS == 0:
            self.server.broadcast(self.snapshot().model_dump_json().encode() + b"\n")

    def _dispatch(self, actions: list[k.Action]) -> None:
        """Carry out the kernel's actions in order (stops are first in the list)."""
        held = kernel.held_devices(self.state)
        for action in actions:
            match action:
                case k.SendStop(device=device, reason=reason):
                    self.unit_of[device].stop(device)
                    self._record_stop(device, reason)
                case k.SendConfigure(device=device, settings=settings):
                    self.unit_of[device].configure(device, settings)
                case k.SendIntensity(device=device, intensity_w_cm2=value):
                    self.unit_of[device].level(device, value)
                case k.SendAmplitude(device=device, amplitude_ma=value):
                    self.unit_of[device].level(device, value)
                case k.SendStart(device=device):
                    self.unit_of[device].start(device)
                case k.SendResetFault(device=device):
                    self.unit_of[device].reset_fault(device)
                    self._record_later("reset_fault_sent", {"device": device})
                case k.SendHeartbeat(device=device):
                    unit = self.unit_of[device]
                    # A unit's watchdog is shared by its outputs: no heartbeat while any of
                    # them is held by a trip (the charge pump stops for the whole unit).
                    if not held & set(unit.outputs):
                        unit.heartbeat()
                case k.AlarmChanged(alarm=alarm, change=change):
                    payload = {"change": change, **_alarm_payload(alarm)}
                    reading = self._tick_readings.get(alarm.device or "")
                    if change == "raised" and reading is not None:
                        # When the reading that raised it arrived: telemetry-in to stop-out
                        # is then measurable from the record (bench/run.py fault_to_stop).
                        payload["reading_received_mono_ns"] = int(reading.received_mono_s * 1e9)
                    self._record_later("alarm", payload)
                case k.Accepted(request_id=rid):
                    self._settle(rid, None)
                case k.Refused(request_id=rid):
                    self._settle(rid, action)

    def _settle(self, rid: int, refusal: k.Refused | None) -> None:
        pending = self._awaiting.pop(rid, None)
        if pending is None:
            return
        payload = {
            "operator": pending.operator,
            "client": pending.client.name,
            "command": pending.command.model_dump(mode="json"),
            "arrived_mono_ns": pending.arrived_mono_ns,
        }
        if refusal is None:
            if isinstance(pending.command, StartCommand):  # only an accepted start marks it
                self._attended[pending.command.device] = pending.command.attended
            reply = Reply(id=pending.client_request_id, ok=True)
            self._reply_when_recorded(pending, "operator_action", payload, reply)
        else:
            payload.update(rule_id=refusal.rule_id, reason=refusal.reason)
            reply = Reply(
                id=pending.client_request_id,
                ok=False,
                error=refusal.reason,
                rule_id=refusal.rule_id,
            )
            self._reply_when_recorded(pending, "refusal", payload, reply)

    # ---- guided sessions (core/guided.py decides; the kernel judges every command) ----

    def _new_rid(self) -> int:
        rid, self._next_rid = self._next_rid, self._next_rid + 1
        return rid

    def _guide_time_up(
        self, guided: GuidedSession, commands: list[k.Command], now: float
    ) -> list[k.Command]:
        """End the current step if its time is up: its stops join this tick's commands."""
        ended = guided.time_up(now, self._new_rid)
        if ended is None:
            return commands
        self._guide_commit(guided, ended, now, None)
        return [*commands, *ended.commands]

    def _guide_request(
        self,
        guided: GuidedSession,
        pending: _Pending,
        commands: list[k.Command],
        inputs: Callable[[list[k.Command]], k.Inputs],
        now: float,
    ) -> list[k.Command]:
        """Turn one guide request (or a configure) into kernel commands after `commands`. They
        are first tried on the (pure) kernel with everything before them: one refusal refuses
        the whole request, recorded, and nothing of it is sent."""
        command = pending.command
        sent = {o: d.settings for o, d in self.state.devices.items()}
        try:
            if isinstance(command, ConfigureCommand):
                intent = guided.configure_as_adjust(command, now, pending.operator, self._new_rid)
                if intent is None:  # not an output of the current step: the kernel's alone
                    rid = self._new_rid()
                    self._awaiting[rid] = pending
                    return [*commands, k.Configure(rid, command.device, command.settings)]
            else:
                assert isinstance(command, GUIDE_COMMANDS)
                guide_command: GuideCommand = command
                intent = guided.prepare(guide_command, now, pending.operator, self._new_rid, sent)
        except GuideRefused as exc:
            self._guide_refuse(pending, exc.rule_id, str(exc))
            return commands
        if intent.commands:
            _, trial = kernel.step(self.state, inputs([*commands, *intent.commands]), now)
            rids = {c.request_id for c in intent.commands if hasattr(c, "request_id")}
            refused = [a for a in trial if isinstance(a, k.Refused) and a.request_id in rids]
            if refused:
                self._guide_refuse(pending, refused[0].rule_id, refused[0].reason)
                return commands
            commands = [*commands, *intent.commands]
        self._guide_commit(guided, intent, now, pending)
        return commands

    def _guide_after(
        self,
        guided: GuidedSession,
        actions: list[k.Action],
        readings: dict[str, k.Reading | None],
        now: float,
    ) -> None:
        """A stop, trip or STOP ALL of a running step's output, or the output turning off by
        itself, pauses the guide; it never restarts anything."""
        stops = {a.device: a.reason for a in actions if isinstance(a, k.SendStop)}
        paused = guided.stopped(stops, now)
        if paused is not None:
            self._guide_commit(guided, paused, now, None)
        running = {o: bool(r is not None and r.running) for o, r in readings.items()}
        paused = guided.readings(running, now)
        if paused is not None:
            self._guide_commit(guided, paused, now, None)

    def _guide_commit(
        self, guided: GuidedSession, intent: Intent, now: float, pending: _Pending | None
    ) -> None:
        """Make the intent the guide's state; record its deviations and its `guide` entry
        (naming who asked; `console` for the timer and stops); reply once recorded."""
        for deviation in guided.commit(intent):
            self._record_later(
                "deviation",
                {
                    "step": deviation.step,
                    "kind": deviation.kind,
                    "operator": deviation.operator,
                    "reason": deviation.reason,
                    "detail": dict(deviation.detail),
                },
            )
        self._attended.update(intent.attended)
        self._guide_technique(guided, intent, "console" if pending is None else pending.operator)
        payload = guided.entry(intent, now)
        if pending is None:
            self._record_later("guide", {**payload, "operator": "console"})
            return
        payload.update(operator=pending.operator, client=pending.client.name)
        reply = Reply(id=pending.client_request_id, ok=True)
        self._reply_when_recorded(pending, "guide", payload, reply)

    def _guide_technique(self, guided: GuidedSession, intent: Intent, operator: str) -> None:
        """A manual step's hands-on time is logged as the technique it names, as if the
        therapist had logged it: begun on start/resume, ended on pause, skip or time up (so
        the record, the summary and the bill see it)."""
        step = guided.steps[intent.step]
        if not isinstance(step, ManualStep):
            return
        key = (step.technique, step.region, step.side)
        if intent.action in ("start", "resume"):
            action = "begin"
            self._begun.append((step.region, step.side))
            self._techniques[key] = TechniqueSnapshot(
                technique=step.technique,
                region=step.region,
                side=step.side,
                started_wall=wall_now(),
            )
        elif self._techniques.pop(key, None) is not None:
            action = "end"
        else:
            return
        payload = {
            "action": action,
            "technique": step.technique,
            "region": step.region,
            "side": step.side,
            "pressure": None,
            "notes": f"plan step {intent.step + 1} ({intent.action})",
            "operator": operator,
        }
        self._record_later("technique", payload)

    def _guide_refuse(self, pending: _Pending, rule_id: str, reason: str) -> None:
        """A refused guide request: a durable `refusal` entry, then the reply with the rule."""
        payload = {
            "operator": pending.operator,
            "client": pending.client.name,
            "command": pending.command.model_dump(mode="json"),
            "rule_id": rule_id,
            "reason": reason,
        }
        reply = Reply(id=pending.client_request_id, ok=False, error=reason, rule_id=rule_id)
        self._reply_when_recorded(pending, "refusal", payload, reply)

    # ---- recording ----

    def _stamp(self) -> int:
        return int(self.clock() * 1e9)

    def _record(self, kind: str, payload: dict[str, Any]) -> Future[Any]:
        self._hand_over_samples()
        return self.recorder.submit(self.session_id, kind, payload, self._stamp(), wall_now())

    def _record_later(self, kind: str, payload: dict[str, Any]) -> None:
        """Durable entry whose outcome nobody waits for; failures are logged."""
        if not self.session_id:
            return
        future = self._record(kind, payload)
        future.add_done_callback(_log_failure(kind))

    def _reply_when_recorded(
        self, pending: _Pending, kind: str, payload: dict[str, Any], reply: Reply
    ) -> None:
        """Tell the operator only once the entry is synced to disk (DESIGN: durability)."""
        wrapped = asyncio.wrap_future(self._record(kind, payload))

        def done(fut: asyncio.Future[Any]) -> None:
            self._background.discard(fut)
            if fut.exception() is not None:
                pending.client.reply(
                    Reply(
                        id=reply.id,
                        ok=False,
                        error=f"carried out, but the record failed: {fut.exception()}",
                    )
                )
            else:
                pending.client.reply(reply)

        self._background.add(wrapped)
        wrapped.add_done_callback(done)

    def _record_stop(self, device: str, reason: str) -> None:
        """One entry per stop reason and device; repeats within 5 s are counted, not written."""
        now = self.clock()
        last = self._last_stop_entry.get(device)
        if last is not None and last[0] == reason and now - last[1] < STOP_ENTRY_REPEAT_S:
            self._last_stop_entry[device] = (reason, last[1], last[2] + 1)
            return
        repeats = last[2] if last is not None else 0
        self._last_stop_entry[device] = (reason, now, 0)
        self._record_later(
            "stop_sent", {"device": device, "reason": reason, "repeats_before": repeats}
        )

    def _record_output_edges(self, readings: dict[str, k.Reading | None]) -> None:
        """An `output_start` / `output_stop` entry when an output's telemetry turns on / off.

        From telemetry, not from commands: the record says when the patient received the
        output (billing counts these minutes), whoever or whatever started or stopped it.
        """
        for output, r in readings.items():
            if r is None:
                continue
            was, now_running = self._running.get(output, False), r.running
            if now_running == was:
                continue
            self._running[output] = now_running
            limits = self.state.limits[output]
            if now_running:
                settings = self.state.devices[output].settings
                payload: dict[str, Any] = {
                    "device": output,
                    "modality": limits.modality,
                    "settings": None if settings is None else settings.model_dump(mode="json"),
                }
                if limits.modality == "stimulation":
                    payload["attended"] = self._attended.get(output, False)
                self._record_later("output_start", payload)
            else:
                self._record_later(
                    "output_stop", {"device": output, "state": r.state, "fault": r.fault}
                )

    def _sample(self, readings: dict[str, k.Reading | None]) -> None:
        for name, r in readings.items():
            if r is None or self._last_sample.get(name) == r.received_mono_s:
                continue
            self._last_sample[name] = r.received_mono_s
            self._samples.add(name, int(r.received_mono_s * 1e9), reading_values(r))

    def _hand_over_samples(self, now: float | None = None) -> None:
        """Give the recorder the readings gathered since the last hand-over, to be written now:
        every flush interval and before every durable entry (so the record keeps the order
        things happened in)."""
        self._samples_handed_at = self.clock() if now is None else now
        if not self.session_id:
            self._samples.take()
        elif self._samples.count:
            self.recorder.add_batch(self.session_id, self._samples)

    # ---- snapshot ----

    def snapshot(self) -> Snapshot:
        """The whole state as clients see it."""
        self._snapshot_seq += 1
        now = self.clock()
        devices: list[UltrasoundSnapshot | StimulationSnapshot] = []
        for unit in self.units.values():
            for output, reading in unit.readings().items():
                devices.append(self._output_snapshot(unit, output, reading, now))
        alarms = [_alarm_snapshot(a, now) for a in self.state.alarms]
        return Snapshot(
            seq=self._snapshot_seq,
            wall=wall_now(),
            session_id=self.session_id,
            room=self.config.room_name,
            patient=self._patient,
            devices=devices,
            alarms=alarms,
            techniques=list(self._techniques.values()),
            loop=self._loop_stats,
            guide=None if self.guided is None else self.guided.snapshot(now),
        )

    def _output_snapshot(
        self, unit: Unit, output: str, r: k.Reading | None, now: float
    ) -> UltrasoundSnapshot | StimulationSnapshot:
        """One output for the screen: settings asked for next to what the unit reports."""
        driver = unit.driver
        age = None if r is None else (now - r.received_mono_s) * 1000
        settings = self.state.devices[output].settings
        common: dict[str, Any] = {
            "device": output,
            "name": unit.profile_name,
            "model": unit.model,
            "connected": driver.connected,
            "telemetry_age_ms": age,
            "state": None if r is None else r.state,
            "fault": None if r is None else r.fault,
            "output_active": bool(r and r.output_active),
            "last_error": driver.last_error,
        }
        if self.state.limits[output].modality == "stimulation":
            assert r is None or isinstance(r, OutputReading)
            return StimulationSnapshot(
                **common,
                settings=settings if isinstance(settings, ChannelSetup) else None,
                amplitude_setpoint_ma=None if r is None else r.level_setpoint,
                amplitude_measured_ma=None if r is None else r.level_measured,
                impedance_ohm=None if r is None else r.impedance_ohm,
            )
        us_settings = settings if isinstance(settings, UltrasoundSettings) else None
        if isinstance(r, UltrasoundReading):
            return UltrasoundSnapshot(
                **common,
                settings=us_settings,
                intensity_setpoint_w_cm2=r.intensity_setpoint_w_cm2,
                intensity_measured_w_cm2=r.intensity_measured_w_cm2,
                head_temperature_c=r.head_temperature_c,
                coupling_pct=r.coupling_pct,
                remaining_s=r.remaining_s,
                energy_j=r.energy_j,
                era_cm2=r.era_cm2,
            )
        return UltrasoundSnapshot(
            **common,
            settings=us_settings,
            intensity_setpoint_w_cm2=None if r is None else r.level_setpoint,
            intensity_measured_w_cm2=None if r is None else r.level_measured,
            head_temperature_c=None if r is None else r.head_temperature_c,
            coupling_pct=None if r is None else r.coupling_pct,
            remaining_s=None if r is None else r.remaining_s,
            energy_j=None if r is None else r.energy_j,
            era_cm2=_profile_era(unit),
        )


def _profile_era(unit: Unit) -> float | None:
    """The head's ERA from the unit's profile, if it gives one (cm²)."""
    era = getattr(unit.driver.profile, "era_cm2", None)
    return float(era) if isinstance(era, int | float) else None


def _descriptor(output: str, unit: Unit, limits: k.DeviceLimits) -> dict[str, Any]:
    return {
        "device": output,
        "unit": unit.name,
        "model": unit.model,
        "modality": limits.modality,
        "profile": unit.profile_name,
        "keys": descriptor_keys(limits),
        "stale_limit_s": limits.stale_limit_s,
    }


def _alarm_payload(alarm: k.Alarm) -> dict[str, Any]:
    return {
        "alarm_id": alarm.id,
        "rule_id": alarm.rule.id,
        "priority": alarm.rule.priority.value,
        "device": alarm.device,
        "message": alarm.message,
        "what_to_do": alarm.rule.what_to_do,
        "acknowledged_by": alarm.acknowledged_by,
    }


def _alarm_snapshot(alarm: k.Alarm, now: float) -> AlarmSnapshot:
    raised_wall = datetime.fromtimestamp(time.time() - (now - alarm.raised_s), UTC)
    return AlarmSnapshot(
        id=alarm.id,
        rule_id=alarm.rule.id,
        priority=alarm.rule.priority.value,
        device=alarm.device,
        message=alarm.message,
        what_to_do=alarm.rule.what_to_do,
        latched=alarm.rule.latched,
        cause_present=alarm.cause_present,
        active=alarm.active,
        acknowledged=alarm.acknowledged_s is not None,
        acknowledged_by=alarm.acknowledged_by,
        raised_wall=raised_wall.isoformat(timespec="seconds"),
    )


def _log_failure(kind: str) -> Callable[[Future[Any]], None]:
    def check(fut: Future[Any]) -> None:
        if fut.exception() is not None:
            log.error("could not record %s: %s", kind, fut.exception())

    return check


def profile_hash(path: Path) -> str:
    """SHA-256 of a profile file as read, for the session start entry."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _electrode_region(command: object) -> str | None:
    """The body region a stimulation configure places its electrodes on, if it names one."""
    if isinstance(command, ConfigureCommand) and isinstance(command.settings, ChannelSetup):
        return command.settings.electrode_region
    return None
