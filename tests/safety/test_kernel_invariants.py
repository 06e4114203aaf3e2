"""Hypothesis stateful tests of the kernel's invariants against a modelled device and link.

The model device obeys what reaches it after a link latency; telemetry reaches the kernel
after the same latency and can stop arriving (link loss). Invariants checked every tick:
no start or setpoint goes out while a trip holds, no setpoint above a limit is ever sent,
every raised trip sends a stop to every device it covers in the same tick, no heartbeat
reaches a tripped device, no latched alarm clears without an acknowledgement, a stop not
obeyed always ends in a lock-out, and only biomedical staff's clear-lockout releases one; a
level never rises faster than its ramp limit, and the energy an output delivers in a
treatment never passes the plan's dose. Two ultrasound outputs and one stimulation output
(an ES-2 channel) share the kernel; the model units count energy as the US-1 does.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings, rms_ma
from sessionconsole.safety.rules import Action as RuleAction
from sessionconsole.safety.types import (
    Acknowledge,
    AlarmChanged,
    ClearLockout,
    Command,
    Configure,
    Refused,
    SendAmplitude,
    SendConfigure,
    SendHeartbeat,
    SendIntensity,
    SendResetFault,
    SendStart,
    SendStop,
    Start,
    Stop,
    StopAll,
)
from tests.safety.helpers import LIMITS as BASE_LIMITS
from tests.safety.helpers import STIM_LIMITS as BASE_STIM_LIMITS
from tests.safety.helpers import Harness, reading, stim_reading

US_DEVICES = ("us1", "us2")
STIM = "es2.ch1"
DEVICES = (*US_DEVICES, STIM)
LATENCY_TICKS = 2
ERA = 5.0
# As the controller builds them: shaped increases and the energy rules on.
LIMITS = replace(BASE_LIMITS, max_ramp_per_s=0.5, energy_mismatch=0.10)
STIM_LIMITS = replace(BASE_STIM_LIMITS, max_ramp_per_s=5.0, level_step=0.5)

settings_st = st.builds(
    UltrasoundSettings,
    frequency_khz=st.sampled_from([1000, 3000]),
    intensity_w_cm2=st.floats(0.0, 3.0, allow_nan=False).map(lambda x: round(x, 2)),
    duty_pct=st.sampled_from([10, 20, 50, 100]),
    time_s=st.integers(1, 1800),
    treated_area_cm2=st.sampled_from([None, 1.0, 5.0]),
).flatmap(
    # The plan's dose when the settings give an area: small, so runs reach it.
    lambda s: st.sampled_from([None, 0.01, 0.05, 0.2]).map(
        lambda dose: (
            s if s.treated_area_cm2 is None else s.model_copy(update={"max_dose_j_cm2": dose})
        )
    )
)


setup_st = st.builds(
    ChannelSetup,
    waveform=st.builds(
        StimulationSettings,
        mode=st.sampled_from(["SYM", "ASYM", "RUSS", "IFC", "HVPC"]),
        freq_hz=st.integers(1, 250),
        pw_us=st.integers(5, 400),
        ramp_s=st.integers(0, 10),
    ),
    amplitude_ma=st.integers(0, 200).map(lambda half: half / 2),
)


@dataclass
class ModelDevice:
    """A US-1 as the kernel sees it through a link with latency."""

    running: bool = False
    fault: str | None = None
    temp_c: float = 33.0
    switch: bool = False
    link_up: bool = True
    configured: bool = False
    ignore_stop: bool = False
    uncommanded_ticks: int = 0
    stuck_ticks: int = 0  # running after a stop the kernel has not seen confirmed
    level_ratio: float = 1.0  # measured over target while running (1.0: on target)
    level: float = 0.0  # the level last written to it (intensity or peak amplitude)
    driven: float = 0.0  # an ultrasound unit's ramped level: 0.5 W/cm² per s (ICD US-1)
    duty: float = 1.0
    run_energy_j: float = 0.0  # its counter: reset at each start
    treatment_energy_j: float = 0.0  # since the last configure reached it
    dose_limit_j: float | None = None  # the plan's dose x area of that configure
    disobeyed: bool = False  # it ignored a stop in this treatment: no kernel can hold its dose
    inbox: deque[tuple[int, object]] = field(default_factory=deque)
    telemetry: deque[tuple[int, object]] = field(default_factory=deque)


class KernelMachine(RuleBasedStateMachine):
    """Random operator commands and world events, one kernel tick per rule."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(DEVICES, {STIM: STIM_LIMITS})
        self.tick_no = 0
        self.devices = {d: ModelDevice() for d in DEVICES}
        self.latest: dict[str, object] = {d: None for d in DEVICES}
        self.pending: list[Command] = []
        self.last_level: dict[str, tuple[float, float]] = {}  # device -> (time, level) written

    # ---- world ----
    def _deliver(self) -> None:
        for name, dev in self.devices.items():
            while dev.inbox and dev.inbox[0][0] <= self.tick_no:
                _, action = dev.inbox.popleft()
                if isinstance(action, SendStop):
                    dev.disobeyed = dev.disobeyed or (dev.running and dev.ignore_stop)
                    dev.running = dev.running and dev.ignore_stop
                elif isinstance(action, SendStart) and dev.fault is None and dev.configured:
                    dev.running, dev.run_energy_j, dev.driven = True, 0.0, 0.0
                elif isinstance(action, SendConfigure):
                    dev.configured = True
                    s = action.settings
                    if isinstance(s, UltrasoundSettings):
                        dev.level, dev.duty = s.intensity_w_cm2, s.duty_pct / 100.0
                        dev.treatment_energy_j, dev.dose_limit_j = 0.0, s.dose_limit_j()
                        dev.disobeyed = False
                    else:
                        dev.level = s.amplitude_ma
                elif isinstance(action, SendIntensity):
                    dev.level = action.intensity_w_cm2
                elif isinstance(action, SendAmplitude):
                    dev.level = action.amplitude_ma
                elif isinstance(action, SendResetFault) and not dev.switch and dev.temp_c < 41:
                    dev.fault = None
            if dev.switch:
                dev.fault, dev.running = "PATIENT_STOP", False
            if dev.temp_c > 41.0:
                dev.fault, dev.running = "OVERTEMP", False
            if dev.running and name != STIM:  # as the US-1 counts: measured x ERA x duty x dt
                dev.driven = (
                    min(dev.level, dev.driven + 0.5 * 0.01) if dev.driven < dev.level else dev.level
                )
                delivered = dev.driven * dev.level_ratio * ERA * dev.duty * 0.01
                dev.run_energy_j += delivered
                dev.treatment_energy_j += delivered
            if dev.link_up:
                snap: object
                if name == STIM:
                    state = "FAULT" if dev.fault else ("ON" if dev.running else "IDLE")
                    snap = stim_reading(
                        self.h.now,
                        state=state,
                        running=dev.running,
                        fault=dev.fault,
                        output_active=dev.running,
                        patient_stop_pressed=dev.switch,
                        level_setpoint=dev.level,
                        level_measured=dev.level * dev.level_ratio if dev.running else 0.0,
                    )
                else:
                    state = "FAULT" if dev.fault else ("RUNNING" if dev.running else "IDLE")
                    snap = reading(
                        self.h.now,
                        state=state,
                        fault=dev.fault,
                        output_active=dev.running,
                        head_temperature_c=dev.temp_c,
                        patient_stop_pressed=dev.switch,
                        intensity_setpoint_w_cm2=dev.level,
                        intensity_measured_w_cm2=dev.driven * dev.level_ratio
                        if dev.running
                        else 0.0,
                        energy_j=math.floor(dev.run_energy_j),
                    )
                dev.telemetry.append((self.tick_no + LATENCY_TICKS, snap))
            while dev.telemetry and dev.telemetry[0][0] <= self.tick_no:
                self.latest[name] = dev.telemetry.popleft()[1]

    def _step(self, *commands: Command) -> None:
        self.tick_no += 1
        self._deliver()
        before = {a.id: a for a in self.h.state.alarms}
        actions = self.h.tick(dict(self.latest), *commands)  # type: ignore[arg-type]
        self._check_actions(actions, before)
        self._check_lockout()
        released = {
            c.device for c in commands if isinstance(c, ClearLockout) and c.role == "biomedical"
        }
        for action in actions:
            if (
                isinstance(action, AlarmChanged)
                and action.change == "cleared"
                and action.alarm.rule.id == "STOP_NOT_OBEYED"
            ):
                assert action.alarm.device in released, f"{action} without a biomedical clear"
        for action in actions:
            if isinstance(action, SendConfigure | SendStop):
                self.last_level.pop(action.device, None)  # a new base: the unit ramps from 0
            device = getattr(action, "device", None)
            if device in self.devices and self.devices[device].link_up:
                self.devices[device].inbox.append((self.tick_no + LATENCY_TICKS, action))

    def _check_actions(self, actions: list[object], before: dict[int, object]) -> None:
        tripped = {
            d
            for a in self.h.state.active_alarms()
            if a.rule.action in (RuleAction.STOP_ALL, RuleAction.STOP_DEVICE)
            for d in (DEVICES if a.rule.action is RuleAction.STOP_ALL else (a.device,))
        }
        stops = {a.device for a in actions if isinstance(a, SendStop)}
        for action in actions:
            if isinstance(action, SendStart | SendHeartbeat):
                assert action.device not in tripped, f"{action} while tripped"
            assert LIMITS.max_intensity is not None and LIMITS.max_time is not None
            assert STIM_LIMITS.max_amplitude is not None and STIM_LIMITS.max_rms is not None
            if isinstance(action, SendConfigure):
                s = action.settings
                if action.device == STIM:
                    assert isinstance(s, ChannelSetup), action
                    assert s.amplitude_ma <= STIM_LIMITS.max_amplitude.value
                    assert rms_ma(s.waveform, s.amplitude_ma) <= STIM_LIMITS.max_rms.value
                else:
                    assert isinstance(s, UltrasoundSettings), action
                    assert s.intensity_w_cm2 <= LIMITS.max_intensity.value
                    assert s.time_s <= LIMITS.max_time.value
            if isinstance(action, SendIntensity):
                assert action.device != STIM
                assert action.intensity_w_cm2 <= LIMITS.max_intensity.value
            if isinstance(action, SendAmplitude):
                assert action.device == STIM
                assert action.amplitude_ma <= STIM_LIMITS.max_amplitude.value
                setup = self.h.state.devices[STIM].settings
                assert isinstance(setup, ChannelSetup) and action.amplitude_ma <= setup.amplitude_ma
                assert rms_ma(setup.waveform, action.amplitude_ma) <= STIM_LIMITS.max_rms.value
            if isinstance(action, SendIntensity | SendAmplitude):
                self._check_rise(action)
            if isinstance(action, AlarmChanged) and action.change == "raised":
                rule = action.alarm.rule
                if rule.action is RuleAction.STOP_ALL:
                    assert stops >= set(DEVICES)
                elif rule.action is RuleAction.STOP_DEVICE:
                    assert action.alarm.device in stops
            if (
                isinstance(action, AlarmChanged)
                and action.change == "cleared"
                and action.alarm.rule.latched
            ):
                assert action.alarm.acknowledged_s is not None

    def _check_rise(self, action: SendIntensity | SendAmplitude) -> None:
        """A running level rises at most one step, a step's time after the write before it."""
        limits = STIM_LIMITS if action.device == STIM else LIMITS
        rate = limits.max_ramp_per_s
        assert rate is not None
        level = action.amplitude_ma if isinstance(action, SendAmplitude) else action.intensity_w_cm2
        step = max(
            limits.level_step, math.floor(rate * 0.1 / limits.level_step + 1e-9) * limits.level_step
        )
        last = self.last_level.get(action.device)
        if last is not None and level > last[1] + 1e-9:
            assert level - last[1] <= step + 1e-9, (action, last)
            assert self.h.now - last[0] >= step / rate - 1e-9, (action, last, self.h.now)
        self.last_level[action.device] = (self.h.now, level)

    # ---- rules ----
    @rule()
    def tick(self) -> None:
        self._step()

    @rule(device=st.sampled_from(DEVICES), s=settings_st)
    def configure(self, device: str, s: UltrasoundSettings) -> None:
        rid = self.h.next_id()
        self._step(Configure(rid, device, s))
        if device == STIM:  # ultrasound settings never reach a stimulation output
            refusals = [a for a in self.h.last_actions if isinstance(a, Refused)]
            assert [r.rule_id for r in refusals if r.request_id == rid] == ["WRONG_MODALITY"]

    @rule(setup=setup_st)
    def configure_stimulation(self, setup: ChannelSetup) -> None:
        self._step(Configure(self.h.next_id(), STIM, setup))

    @rule(device=st.sampled_from(DEVICES))
    def start(self, device: str) -> None:
        self._step(Start(self.h.next_id(), device))

    @rule(device=st.sampled_from(DEVICES))
    def stop(self, device: str) -> None:
        self._step(Stop(self.h.next_id(), device))

    @rule(
        cmds=st.lists(
            st.one_of(
                st.builds(lambda d: ("start", d), st.sampled_from(DEVICES)),
                st.builds(lambda d: ("stop", d), st.sampled_from(DEVICES)),
                st.just(("stop_all", None)),
                st.just(("ack", None)),
            ),
            min_size=2,
            max_size=4,
        )
    )
    def several_commands_in_one_tick(self, cmds: list[tuple[str, str | None]]) -> None:
        built: list[Command] = []
        for kind, device in cmds:
            rid = self.h.next_id()
            if kind == "start":
                built.append(Start(rid, str(device)))
            elif kind == "stop":
                built.append(Stop(rid, str(device)))
            elif kind == "stop_all":
                built.append(StopAll(rid))
            else:
                built.append(Acknowledge(rid, None, "tester"))
        self._step(*built)

    @rule(device=st.sampled_from(DEVICES), stuck=st.booleans())
    def stuck_relay(self, device: str, stuck: bool) -> None:
        self.devices[device].ignore_stop = stuck
        self._step()

    @rule(device=st.sampled_from(DEVICES), ratio=st.sampled_from([1.0, 1.0, 0.7, 1.3, 1.15]))
    def output_level(self, device: str, ratio: float) -> None:
        self.devices[device].level_ratio = ratio
        self._step()

    @rule(device=st.sampled_from(DEVICES), role=st.sampled_from(["therapist", "biomedical"]))
    def clear_lockout(self, device: str, role: str) -> None:
        self._step(ClearLockout(self.h.next_id(), device, "staff", role))

    @rule()
    def stop_all(self) -> None:
        self._step(StopAll(self.h.next_id()))

    @rule()
    def acknowledge(self) -> None:
        self._step(Acknowledge(self.h.next_id(), None, "tester"))

    @rule(device=st.sampled_from(DEVICES), pressed=st.booleans())
    def patient_switch(self, device: str, pressed: bool) -> None:
        self.devices[device].switch = pressed
        self._step()

    @rule(device=st.sampled_from(US_DEVICES), temp=st.floats(30.0, 43.0))
    def head_temperature(self, device: str, temp: float) -> None:
        self.devices[device].temp_c = round(temp, 1)
        self._step()

    @rule(device=st.sampled_from(DEVICES), up=st.booleans())
    def link(self, device: str, up: bool) -> None:
        self.devices[device].link_up = up
        self._step()

    @precondition(lambda self: any(not d.link_up for d in self.devices.values()))
    @rule(ticks=st.integers(10, 40))
    def let_time_pass(self, ticks: int) -> None:
        for _ in range(ticks):
            self._step()

    # ---- invariants on state ----
    @invariant()
    def no_clear_reported_while_latched(self) -> None:
        for alarm in self.h.state.alarms:
            if alarm.cleared_s is not None and alarm.rule.latched:
                assert alarm.acknowledged_s is not None
                assert alarm.acknowledged_s <= alarm.cleared_s

    @invariant()
    def an_output_running_without_command_is_soon_under_a_stop_alarm(self) -> None:
        # Allowed delay: link latency both ways plus the stop-confirm time, in ticks.
        allowed = 2 * LATENCY_TICKS + int(LIMITS.stop_confirm_s / 0.01) + 2
        for name, dev in self.devices.items():
            kstate = self.h.state.devices[name]
            if dev.running and not kstate.commanded_on and kstate.start_sent_s is None:
                dev.uncommanded_ticks += 1
            else:
                dev.uncommanded_ticks = 0
            if dev.uncommanded_ticks > allowed:
                tripped = [
                    a
                    for a in self.h.state.active_alarms()
                    if a.rule.action is RuleAction.STOP_ALL
                    or (a.rule.action is RuleAction.STOP_DEVICE and a.device == name)
                ]
                history = [(a.rule.id, a.cleared_s) for a in self.h.state.alarms]
                assert tripped, (
                    f"{name} runs uncommanded for {dev.uncommanded_ticks} ticks; "
                    f"now={self.h.now} kernel={kstate} alarms={history}"
                )

    def _check_lockout(self) -> None:
        """Every tick: an output still on after a stop is locked out within the allowed time."""
        allowed = 2 * LATENCY_TICKS + int(LIMITS.stop_confirm_s / 0.01) + 2
        for name, dev in self.devices.items():
            kstate = self.h.state.devices[name]
            stuck = dev.running and dev.link_up and kstate.unconfirmed_stop_s is not None
            dev.stuck_ticks = dev.stuck_ticks + 1 if stuck and not kstate.commanded_on else 0
            if dev.stuck_ticks > allowed:
                locked = [
                    a
                    for a in self.h.state.active_alarms()
                    if a.rule.id == "STOP_NOT_OBEYED" and a.device == name
                ]
                assert locked, f"{name} ignores a stop for {dev.stuck_ticks} ticks, not locked out"

    @rule(ticks=st.integers(10, 40))
    def let_time_pass_linked(self, ticks: int) -> None:
        for _ in range(ticks):
            self._step()

    @invariant()
    def no_treatment_passes_the_plans_dose(self) -> None:
        for name in US_DEVICES:
            dev = self.devices[name]
            if dev.dose_limit_j is not None and not dev.disobeyed:  # stuck: a lock-out instead
                assert dev.treatment_energy_j <= dev.dose_limit_j + 1e-9, (
                    f"{name} delivered {dev.treatment_energy_j:.3f} J of {dev.dose_limit_j} J"
                )

    @invariant()
    def stale_running_output_is_always_tripped(self) -> None:
        for name in DEVICES:
            r = self.latest[name]
            if r is None or not r.running:  # type: ignore[attr-defined]
                continue
            age = self.h.now - r.received_mono_s  # type: ignore[attr-defined]
            if age > self.h.state.limits[name].stale_limit_s:
                assert any(a.rule.id == "COMMS_LOSS" for a in self.h.state.active_alarms())


KernelMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestKernelInvariants = KernelMachine.TestCase


def test_stuck_relay_after_stop_all_and_repeated_acknowledgements() -> None:
    """A sequence hypothesis found (kept as a fixed example): the alarm must stay up."""
    m = KernelMachine()
    m.stuck_relay("us1", True)
    m.configure(
        "us1", UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=0.0, duty_pct=10, time_s=1)
    )
    m.start("us1")
    m.stop_all()
    m.stop_all()
    for _ in range(60):
        m.acknowledge()
        m.an_output_running_without_command_is_soon_under_a_stop_alarm()
        m.no_clear_reported_while_latched()
    assert any(a.rule.id == "OUTPUT_NOT_COMMANDED" for a in m.h.state.active_alarms())


def test_stop_pressed_again_on_a_stuck_relay_still_alarms_in_time() -> None:
    """A second sequence hypothesis found (kept as a fixed example): a Stop pressed again
    on a stuck relay must not restart the stop-confirm time."""
    m = KernelMachine()
    m.several_commands_in_one_tick([("start", "us1"), ("start", "us1")])
    m.configure(
        "us2", UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=0.0, duty_pct=10, time_s=1)
    )
    m.start("us2")
    m.stuck_relay("us2", True)
    m.several_commands_in_one_tick([("start", "us1"), ("stop_all", None)])
    for i in range(45):
        if i == 29:
            m.stop("us2")
        else:
            m.acknowledge()
        m.an_output_running_without_command_is_soon_under_a_stop_alarm()
    assert m.devices["us2"].running
    assert any(a.rule.id == "OUTPUT_NOT_COMMANDED" for a in m.h.state.active_alarms())


def test_a_stuck_relay_is_locked_out_and_only_biomedical_staff_release_it() -> None:
    """A fixed sequence through the machine's checks (random runs rarely reach it): stop
    ignored -> lock-out in time; acknowledgements and a therapist's clear do not release it;
    a biomedical clear does, once the output is off."""
    m = KernelMachine()
    m.let_time_pass_linked(10)
    m.configure(
        "us1", UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=10, time_s=100)
    )
    m.start("us1")
    m.let_time_pass_linked(10)
    m.stuck_relay("us1", True)
    m.stop("us1")
    m.let_time_pass_linked(40)  # _step checks the lock-out deadline every tick
    m.stuck_relay("us1", False)
    m.let_time_pass_linked(10)
    m.acknowledge()
    m.clear_lockout("us1", "therapist")
    m.let_time_pass_linked(10)
    m.no_clear_reported_while_latched()
    assert [a.rule.id for a in m.h.state.active_alarms()] == ["STOP_NOT_OBEYED"]
    m.clear_lockout("us1", "biomedical")
    assert m.h.state.active_alarms() == ()
