"""The pure interlock kernel: `step(state, inputs, now) -> (state, actions)`.

No I/O, no clocks, no asyncio: time is injected, so tests drive it tick by tick. Stops come
first in the returned actions; a latched trip withholds heartbeats (the charge pump) and
refuses starts until the operator has acknowledged it and its cause is gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, rms_ma
from sessionconsole.safety import energy, placement, rules, shaping
from sessionconsole.safety.conditions import Condition
from sessionconsole.safety.rules import Action as RuleAction
from sessionconsole.safety.rules import ClearPolicy, Rule
from sessionconsole.safety.types import (
    Accepted,
    Acknowledge,
    Action,
    Alarm,
    AlarmChanged,
    ClearLockout,
    Command,
    Configure,
    DeviceLimits,
    DeviceState,
    Inputs,
    JudgedReading,
    KernelState,
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

RESET_RETRY_S = 1.0
OUTPUT_ON_RULES = (rules.OUTPUT_FOUND_RUNNING, rules.OUTPUT_NOT_COMMANDED, rules.STOP_NOT_OBEYED)
# Rules whose cause is an event: gone the moment it is seen (they clear on acknowledgement).
EVENT_RULES = (rules.DEVICE_REBOOTED, rules.SETPOINT_NOT_WRITTEN, rules.ENERGY_MISMATCH)
BIOMEDICAL_ROLE = "biomedical"
TEMP_WARNING_HYSTERESIS_C = 0.5


class _Tick:
    """Working state of one step; local to `step`, so the kernel stays a pure function."""

    def __init__(self, state: KernelState, now: float) -> None:
        self.state = state
        self.now = now
        self.readings: Mapping[str, JudgedReading | None] = {}  # this tick's, set by step()
        self.limits = state.limits
        self.devices: dict[str, DeviceState] = dict(state.devices)
        self.alarms: list[Alarm] = list(state.alarms)
        self.next_alarm_id = state.next_alarm_id
        self.client_timeout_s = state.client_timeout_s
        self.consecutive_overruns = state.consecutive_overruns
        self.stops: list[Action] = []
        self.actions: list[Action] = []

    # -- alarms --

    def find_active(self, rule: Rule, device: str | None) -> int | None:
        for i, alarm in enumerate(self.alarms):
            if alarm.active and alarm.rule is rule and alarm.device == device:
                return i
        return None

    def raise_alarm(self, rule: Rule, device: str | None, message: str) -> Alarm:
        alarm = Alarm(self.next_alarm_id, rule, device, message, self.now)
        self.next_alarm_id += 1
        self.alarms.append(alarm)
        self.actions.append(AlarmChanged(alarm, "raised"))
        for target in self.stop_targets(alarm):
            self.send_stop(target, f"{rule.id}: {message}")
        return alarm

    def stop_targets(self, alarm: Alarm) -> Iterator[str]:
        if alarm.rule.action is RuleAction.STOP_ALL:
            yield from self.devices
        elif alarm.rule.action is RuleAction.STOP_DEVICE and alarm.device is not None:
            yield alarm.device

    def trips_on(self, device: str) -> list[Alarm]:
        """Active alarms that hold this device stopped."""
        return [a for a in self.alarms if a.active and device in set(self.stop_targets(a))]

    # -- device writes --

    def send_stop(self, device: str, reason: str) -> None:
        """Stop now; a start for this device earlier in the same tick is withdrawn, since
        stops go out before everything else and must not be followed by it."""
        self.stops.append(SendStop(device, reason))
        self.actions = [
            a for a in self.actions if not (isinstance(a, SendStart) and a.device == device)
        ]
        dev = shaping.stopped(self.devices[device])
        self.devices[device] = replace(
            dev,
            last_stop_s=self.now,
            start_sent_s=None,
            commanded_on=False,
            unconfirmed_stop_s=(
                dev.unconfirmed_stop_s if dev.unconfirmed_stop_s is not None else self.now
            ),
        )

    def result(self) -> tuple[KernelState, list[Action]]:
        state = replace(
            self.state,
            devices=self.devices,
            alarms=tuple(self.alarms),
            next_alarm_id=self.next_alarm_id,
            consecutive_overruns=self.consecutive_overruns,
        )
        return state, [*self.stops, *self.actions]


def step(state: KernelState, inputs: Inputs, now: float) -> tuple[KernelState, list[Action]]:
    """Advance the kernel one tick: judge readings, apply commands, emit device actions."""
    tick = _Tick(state, now)
    tick.readings = inputs.readings
    for device in tick.devices:
        _judge_device(tick, device, inputs.readings.get(device))
    _judge_clients(tick, inputs)
    _judge_loop(tick, inputs)
    _judge_techniques(tick, inputs)
    for command in inputs.commands:
        _apply_command(tick, command, inputs)
    _clear_alarms(tick)
    for device in tick.devices:
        _supervise_device(tick, device, inputs.readings.get(device))
    return tick.result()


def held_devices(state: KernelState) -> set[str]:
    """Devices (outputs) an active stopping alarm holds: no heartbeats, no starts for them."""
    held: set[str] = set()
    for alarm in state.alarms:
        if not alarm.active:
            continue
        if alarm.rule.action is RuleAction.STOP_ALL:
            held.update(state.devices)
        elif alarm.rule.action is RuleAction.STOP_DEVICE and alarm.device is not None:
            held.add(alarm.device)
    return held


def raise_found_running(
    state: KernelState, device: str, now: float
) -> tuple[KernelState, list[Action]]:
    """At controller start: an output was found running; stop it and latch an alarm."""
    tick = _Tick(state, now)
    tick.raise_alarm(
        rules.OUTPUT_FOUND_RUNNING, device, f"{device}: output was running when the console started"
    )
    return tick.result()


# ---- readings -> conditions -> alarms ----


def _output_may_be_on(tick: _Tick, device: str, reading: JudgedReading | None) -> bool:
    """Running by telemetry, or a start was sent that telemetry has not yet ruled out."""
    if reading is not None and reading.running:
        return True
    return tick.devices[device].start_sent_s is not None


def _fresh(tick: _Tick, device: str, reading: JudgedReading | None) -> bool:
    """Telemetry recent enough to judge the device by."""
    return (
        reading is not None
        and tick.now - reading.received_mono_s <= tick.limits[device].stale_limit_s
    )


def _conditions(tick: _Tick, device: str, reading: JudgedReading | None) -> list[Condition]:
    limits = tick.limits[device]
    age = None if reading is None else tick.now - reading.received_mono_s
    conditions: list[Condition] = []
    stale = age is None or age > limits.stale_limit_s
    if stale and _output_may_be_on(tick, device, reading):
        shown = "never" if age is None else f"{age * 1000:.0f} ms ago"
        conditions.append(
            Condition(
                rules.COMMS_LOSS,
                f"{device}: no telemetry since {shown} (limit "
                f"{limits.stale_limit_s * 1000:.0f} ms) while its output may be on",
                physical=True,
            )
        )
    settings = tick.devices[device].settings
    if isinstance(settings, ChannelSetup):
        conditions.extend(placement.density_conditions(device, settings, limits))
    if reading is None or stale:
        return conditions
    fault = reading.fault
    if reading.patient_stop_pressed or fault == "PATIENT_STOP":
        conditions.append(
            Condition(
                rules.PATIENT_STOP,
                f"{device}: patient stop switch pressed",
                physical=reading.patient_stop_pressed,
                device_latched=fault == "PATIENT_STOP",
            )
        )
    conditions.extend(_head_conditions(tick, device, reading, limits))
    if fault is not None and fault not in ("PATIENT_STOP", "OVERTEMP"):
        unplugged = fault == "HEAD_DISCONNECTED" and not reading.head_connected
        conditions.append(
            Condition(
                rules.DEVICE_FAULT,
                f"{device}: device fault {fault}",
                physical=unplugged,
                device_latched=True,
            )
        )
    dev = tick.devices[device]
    first_stop = dev.unconfirmed_stop_s
    stop_settled = first_stop is None or tick.now - first_stop > limits.stop_confirm_s
    uncommanded = reading.running and not dev.commanded_on and dev.start_sent_s is None
    if uncommanded and stop_settled:
        conditions.append(
            Condition(
                rules.OUTPUT_NOT_COMMANDED,
                f"{device}: output on ({reading.state}) although the console "
                + ("stopped it" if dev.last_stop_s is not None else "did not start it"),
                physical=True,
            )
        )
    if uncommanded and first_stop is not None and stop_settled:
        conditions.append(
            Condition(
                rules.STOP_NOT_OBEYED,
                f"{device}: output still on ({reading.state}) "
                f"{(tick.now - first_stop) * 1000:.0f} ms after the stop (limit "
                f"{limits.stop_confirm_s * 1000:.0f} ms): locked out",
                physical=True,
            )
        )
    conditions.extend(_level_conditions(tick, device, reading, limits))
    conditions.extend(
        energy.conditions(
            device, tick.devices[device], reading, limits, tick.now, tick.state.tick_period_s
        )
    )
    known_boot = tick.devices[device].boot_count
    if known_boot is not None and reading.boot_count != known_boot:
        conditions.append(
            Condition(
                rules.DEVICE_REBOOTED,
                f"{device}: device restarted (boot {known_boot} -> {reading.boot_count}); "
                "its settings are lost",
                physical=False,
            )
        )
    known_mismatches = dev.setpoint_mismatches
    if known_mismatches is not None and reading.setpoint_mismatches > known_mismatches:
        conditions.append(
            Condition(
                rules.SETPOINT_NOT_WRITTEN,
                f"{device}: the device holds a setpoint the console did not write "
                f"({reading.setpoint_mismatches} such read-backs this session)",
                physical=False,
            )
        )
    return conditions


def _level_conditions(
    tick: _Tick, device: str, reading: JudgedReading, limits: DeviceLimits
) -> list[Condition]:
    """Output deviation, electrode impedance and contact suspension."""
    dev = tick.devices[device]
    conditions = []
    since = dev.deviating_since_s
    if since is not None and tick.now - since >= limits.deviation_s:
        target = reading.level_setpoint or 0.0
        off = abs(reading.level_measured - target) / max(target, limits.deviation_floor)
        conditions.append(
            Condition(
                rules.OUTPUT_DEVIATION,
                f"{device}: measured {reading.level_measured:g} against a target of "
                f"{target:g} ({off * 100:.0f} % off) for {tick.now - since:.1f} s (limit "
                f"{limits.deviation_fraction * 100:.0f} % for {limits.deviation_s:g} s)",
                physical=True,
            )
        )
    ohm = reading.impedance_ohm
    if ohm is not None and limits.modality == "stimulation":
        out = ohm > limits.impedance_open_ohm or ohm < limits.impedance_short_ohm
        judged = (
            (reading.running and reading.state != "OFFPHASE")
            or reading.fault == "ELECTRODE"
            or tick.find_active(rules.ELECTRODE_IMPEDANCE, device) is not None
        )
        if out and judged:
            what = "open" if ohm > limits.impedance_open_ohm else "short"
            conditions.append(
                Condition(
                    rules.ELECTRODE_IMPEDANCE,
                    f"{device}: electrode impedance {ohm:.0f} Ohm ({what}; allowed "
                    f"{limits.impedance_short_ohm:.0f}-{limits.impedance_open_ohm:.0f} Ohm)",
                    physical=True,
                )
            )
    suspended = dev.suspended_since_s
    if suspended is not None and tick.now - suspended >= limits.contact_suspended_alarm_s:
        conditions.append(
            Condition(
                rules.CONTACT_SUSPENDED,
                f"{device}: no contact, output suspended for {tick.now - suspended:.0f} s "
                f"(alarm after {limits.contact_suspended_alarm_s:g} s)",
                physical=True,
            )
        )
    return conditions


def _track_levels(
    tick: _Tick, device: str, dev: DeviceState, reading: JudgedReading | None, fresh: bool
) -> DeviceState:
    """Update, from this tick's reading, where the device's ramp stands, since when its
    output deviates, and since when it is suspended for lost contact.

    The deviation is judged only while the device drives a steady level: a stimulation
    output in ON (the device itself reports RAMP while its level moves and OFFPHASE while it
    drives nothing); an ultrasound output in RUNNING once the ramp to the setpoint it reads
    back must be over. The US-1 reports only the end of its ramp, so the console times the
    ramp from the ICD's rate (from 0 at every entry into RUNNING; from the old level at a new
    setpoint) plus the link's stale limit for telemetry lag; the device's own deviation
    fault guards the ramp itself.
    """
    limits = tick.limits[device]
    if reading is None or not fresh:
        return replace(dev, deviating_since_s=None)  # unknown: COMMS_LOSS judges it
    target = reading.level_setpoint
    rate = limits.ramp_rate_per_s
    ramp_done, ramp_to = dev.ramp_done_s, dev.ramp_to
    if rate is None:
        steady = reading.state == "ON"
    elif reading.state != "RUNNING" or target is None:
        steady, ramp_done, ramp_to = False, None, None
    else:
        if ramp_done is None or ramp_to is None:  # the output starts again from 0
            start, level = reading.received_mono_s, 0.0
        else:
            start, level = max(ramp_done, reading.received_mono_s), ramp_to
        if ramp_done is None or target != ramp_to:
            ramp_done = start + abs(target - level) / rate + limits.stale_limit_s
            ramp_to = target
        steady = tick.now >= ramp_done
    deviating = False
    if steady and target is not None:
        allowed = limits.deviation_fraction * max(target, limits.deviation_floor)
        deviating = abs(reading.level_measured - target) > allowed
    since = dev.deviating_since_s if dev.deviating_since_s is not None else tick.now
    suspended = dev.suspended_since_s if dev.suspended_since_s is not None else tick.now
    return replace(
        dev,
        ramp_done_s=ramp_done,
        ramp_to=ramp_to,
        deviating_since_s=since if deviating else None,
        suspended_since_s=suspended if reading.state == "SUSPENDED" else None,
    )


def _head_conditions(
    tick: _Tick, device: str, reading: JudgedReading, limits: DeviceLimits
) -> list[Condition]:
    """Head over-temperature and the warning before it (outputs with an ultrasound head)."""
    temp, trip, warning = (
        reading.head_temperature_c,
        limits.head_temp_trip_c,
        limits.head_temp_warning_c,
    )
    fault = reading.fault
    if temp is None or trip is None or warning is None:
        if fault == "OVERTEMP":  # a unit that reports the fault without a temperature
            return [
                Condition(
                    rules.HEAD_OVERTEMP,
                    f"{device}: device reports head over-temperature",
                    physical=False,
                    device_latched=True,
                )
            ]
        return []
    conditions = []
    hot = temp >= trip
    if hot or fault == "OVERTEMP":
        conditions.append(
            Condition(
                rules.HEAD_OVERTEMP,
                f"{device}: head temperature {temp:.1f} °C (trip at {trip:.1f} °C)",
                physical=hot,
                device_latched=fault == "OVERTEMP",
            )
        )
    warm_limit = warning
    if tick.find_active(rules.HEAD_TEMP_WARNING, device) is not None:
        warm_limit -= TEMP_WARNING_HYSTERESIS_C
    if temp >= warm_limit:
        conditions.append(
            Condition(
                rules.HEAD_TEMP_WARNING,
                f"{device}: head temperature {temp:.1f} °C (warning at {warning:.1f} °C)",
                physical=True,
            )
        )
    return conditions


def _judge_device(tick: _Tick, device: str, reading: JudgedReading | None) -> None:
    dev = tick.devices[device]
    fresh = _fresh(tick, device, reading)
    if reading is not None and dev.start_sent_s is not None:
        confirmed = reading.running and reading.received_mono_s >= dev.start_sent_s
        ruled_out = (
            not reading.running
            and reading.received_mono_s > dev.start_sent_s + tick.limits[device].stale_limit_s
        )
        if confirmed:
            dev = replace(dev, start_sent_s=None, commanded_on=True)
        elif ruled_out:
            dev = replace(dev, start_sent_s=None, commanded_on=False)
    elif reading is not None and fresh and not reading.running:
        dev = replace(dev, commanded_on=False)  # finished or stopped by itself
    if reading is not None and fresh and not reading.running:
        dev = replace(dev, unconfirmed_stop_s=None)  # every stop so far is confirmed
    dev = _track_levels(tick, device, dev, reading, fresh)
    dev = energy.integrate(dev, reading, tick.limits[device])
    tick.devices[device] = dev
    conditions = _conditions(tick, device, reading)
    if any(c.rule is rules.ENERGY_MISMATCH for c in conditions):
        dev = replace(dev, energy_mismatch_reported=True)  # once a run
    if any(c.rule is rules.DEVICE_REBOOTED for c in conditions):
        dev = energy.interrupted(dev, reading)
        dev = replace(dev, settings=None, start_sent_s=None, commanded_on=False)
    if any(c.rule is rules.SETPOINT_NOT_WRITTEN for c in conditions):
        dev = replace(energy.interrupted(dev, reading), settings=None)  # configured again
    if reading is not None:
        dev = replace(
            dev, boot_count=reading.boot_count, setpoint_mismatches=reading.setpoint_mismatches
        )
    tick.devices[device] = dev

    present = {c.rule.id: c for c in conditions}
    for i, alarm in enumerate(tick.alarms):
        if alarm.active and alarm.device == device:
            cond = present.pop(alarm.rule.id, None)
            if alarm.rule is rules.COMMS_LOSS:
                # Gone only once fresh telemetry shows the output off.
                cause = not fresh or (reading is not None and reading.running)
            elif alarm.rule is rules.TECHNIQUE_OVER_ELECTRODES:
                # The therapist confirms by acknowledging, or pauses the channel.
                on = _output_may_be_on(tick, device, reading)
                cause = on and alarm.acknowledged_s is None
            elif not fresh:
                cause = alarm.cause_present  # unknown is not gone
            elif alarm.rule in OUTPUT_ON_RULES:
                # The settle time gates raising only: once raised, the cause is "output on"
                # (our own re-sent stop must not make it look gone).
                cause = reading is not None and reading.running
            else:
                cause = cond is not None and cond.present
            tick.alarms[i] = replace(alarm, cause_present=cause)
    for cond in present.values():
        tick.raise_alarm(cond.rule, device, cond.message)
    for rule in EVENT_RULES:
        # A reboot, a foreign setpoint: events, their cause is gone the moment it is seen.
        idx = tick.find_active(rule, device) if rule.id in present else None
        if idx is not None:
            tick.alarms[idx] = replace(tick.alarms[idx], cause_present=False)


def _judge_clients(tick: _Tick, inputs: Inputs) -> None:
    """CLIENT_LOST: nobody supervising (no client heartbeat) while any output may be on."""
    silence = inputs.client_silence_s
    if silence is None:
        return
    silent = silence > tick.client_timeout_s
    idx = tick.find_active(rules.CLIENT_LOST, None)
    if idx is not None:
        tick.alarms[idx] = replace(tick.alarms[idx], cause_present=silent)
        return
    outputs_on = any(
        _output_may_be_on(tick, device, inputs.readings.get(device)) for device in tick.devices
    )
    if silent and outputs_on:
        tick.raise_alarm(
            rules.CLIENT_LOST,
            None,
            f"no console client heard from for {silence:.1f} s "
            f"(limit {tick.client_timeout_s:.1f} s) while an output may be on",
        )


def _judge_loop(tick: _Tick, inputs: Inputs) -> None:
    """LOOP_OVERRUN: this tick ran later than `overrun_periods` periods; LOOP_OVERRUN_STOP:
    `overruns_to_stop` such ticks in a row. Both are events (their cause is this tick)."""
    late = inputs.lateness_s
    if late is None:
        return
    state = tick.state
    limit = state.overrun_periods * state.tick_period_s
    overrun = late > limit
    tick.consecutive_overruns = tick.consecutive_overruns + 1 if overrun else 0
    for rule in (rules.LOOP_OVERRUN, rules.LOOP_OVERRUN_STOP):
        idx = tick.find_active(rule, None)
        if idx is not None:
            tick.alarms[idx] = replace(tick.alarms[idx], cause_present=overrun)
    if overrun and tick.find_active(rules.LOOP_OVERRUN, None) is None:
        tick.raise_alarm(
            rules.LOOP_OVERRUN,
            None,
            f"core loop tick {late * 1000:.0f} ms late (limit {limit * 1000:.0f} ms)",
        )
    many = tick.consecutive_overruns >= state.overruns_to_stop
    if many and tick.find_active(rules.LOOP_OVERRUN_STOP, None) is None:
        tick.raise_alarm(
            rules.LOOP_OVERRUN_STOP,
            None,
            f"{tick.consecutive_overruns} core loop ticks in a row later than "
            f"{limit * 1000:.0f} ms (this one {late * 1000:.0f} ms)",
        )


def _judge_techniques(tick: _Tick, inputs: Inputs) -> None:
    """TECHNIQUE_OVER_ELECTRODES: a technique begun on a region where stimulation runs."""
    for region, side in inputs.techniques:
        for device, dev in tick.devices.items():
            setup = dev.settings
            if not isinstance(setup, ChannelSetup) or setup.electrode_region != region:
                continue
            if not _output_may_be_on(tick, device, inputs.readings.get(device)):
                continue
            sides = {side, setup.electrode_side}
            if sides == {"left", "right"}:
                continue  # the other side of the body
            if tick.find_active(rules.TECHNIQUE_OVER_ELECTRODES, device) is None:
                tick.raise_alarm(
                    rules.TECHNIQUE_OVER_ELECTRODES,
                    device,
                    f"{device}: a technique begun on {region} ({side}) where its electrodes "
                    "run: confirm (acknowledge) or stop the channel",
                )


# ---- commands ----


def _apply_command(tick: _Tick, command: Command, inputs: Inputs) -> None:
    match command:
        case StopAll(request_id=rid):
            idx = tick.find_active(rules.OPERATOR_STOP, None)
            if idx is None:
                alarm = tick.raise_alarm(rules.OPERATOR_STOP, None, "STOP ALL pressed")
                tick.alarms[-1] = replace(alarm, cause_present=False)
            else:
                for device in tick.devices:
                    tick.send_stop(device, "STOP ALL pressed")
            tick.actions.append(Accepted(rid))
        case Stop(request_id=rid, device=device):
            if device not in tick.devices:
                tick.actions.append(Refused(rid, device, "UNKNOWN_DEVICE", f"no device '{device}'"))
                return
            tick.send_stop(device, "operator stop")
            tick.actions.append(Accepted(rid))
        case Acknowledge(request_id=rid, alarm_id=alarm_id, operator=operator):
            _acknowledge(tick, rid, alarm_id, operator)
        case Configure():
            _configure(tick, command, inputs.readings.get(command.device))
        case Start():
            _start(tick, command, inputs.readings.get(command.device))
        case ClearLockout():
            _clear_lockout(tick, command, inputs.readings.get(command.device))


def _clear_lockout(tick: _Tick, command: ClearLockout, reading: JudgedReading | None) -> None:
    """Biomedical staff release a locked-out output, once telemetry shows it off."""
    rid, device = command.request_id, command.device
    if command.role != BIOMEDICAL_ROLE:
        tick.actions.append(
            Refused(rid, device, "ROLE", "only biomedical staff may clear a lock-out")
        )
        return
    idx = tick.find_active(rules.STOP_NOT_OBEYED, device)
    if idx is None:
        tick.actions.append(Refused(rid, device, "NOT_LOCKED_OUT", f"{device} is not locked out"))
        return
    if not _fresh(tick, device, reading) or reading is None or reading.running:
        tick.actions.append(
            Refused(
                rid,
                device,
                rules.STOP_NOT_OBEYED.id,
                f"{device}: no current telemetry showing its output off",
            )
        )
        return
    alarm = tick.alarms[idx]
    cleared = replace(
        alarm,
        cause_present=False,
        acknowledged_s=alarm.acknowledged_s if alarm.acknowledged_s is not None else tick.now,
        acknowledged_by=alarm.acknowledged_by or command.operator,
        cleared_s=tick.now,
    )
    tick.alarms[idx] = cleared
    tick.actions.append(AlarmChanged(cleared, "cleared"))
    tick.actions.append(Accepted(rid))


def _acknowledge(tick: _Tick, rid: int, alarm_id: int | None, operator: str) -> None:
    matched = False
    for i, alarm in enumerate(tick.alarms):
        if not alarm.active or (alarm_id is not None and alarm.id != alarm_id):
            continue
        matched = True
        if alarm.acknowledged_s is None:
            acked = replace(alarm, acknowledged_s=tick.now, acknowledged_by=operator)
            tick.alarms[i] = acked
            tick.actions.append(AlarmChanged(acked, "acknowledged"))
    if alarm_id is not None and not matched:
        tick.actions.append(Refused(rid, None, "UNKNOWN_ALARM", f"no active alarm {alarm_id}"))
    else:
        tick.actions.append(Accepted(rid))


def _configure(tick: _Tick, command: Configure, reading: JudgedReading | None) -> None:
    rid, device, settings = command.request_id, command.device, command.settings
    if device not in tick.devices:
        tick.actions.append(Refused(rid, device, "UNKNOWN_DEVICE", f"no device '{device}'"))
        return
    limits = tick.limits[device]
    if isinstance(settings, UltrasoundSettings):
        problem = _ultrasound_problem(settings, limits)
    else:
        problem = _stimulation_problem(settings, limits) or _path_problem(tick, device, settings)
    if problem is not None:
        rule_id, reason = problem
        tick.actions.append(Refused(rid, device, rule_id, f"{device}: {reason}"))
        return
    dev = tick.devices[device]
    if _output_may_be_on(tick, device, reading):
        if not _only_level_changes(dev.settings, settings):
            what = "intensity" if isinstance(settings, UltrasoundSettings) else "amplitude"
            tick.actions.append(
                Refused(
                    rid,
                    device,
                    "STATE",
                    f"{device} is running: only {what} may change; stop it to change the rest",
                )
            )
            return
        assert dev.settings is not None
        current = dev.level_sent if dev.level_sent is not None else _level(dev.settings)
        if _level(settings) > current:
            # Raising the level of an output that is held, or that the console has stopped
            # (telemetry shows it on until the stop takes): refused; lowering is always sent.
            held = _holding_trips(tick, device)
            if held or not (dev.commanded_on or dev.start_sent_s is not None):
                rule_id = held[0].rule.id if held else "STATE"
                why = f"held by {held[0].rule.id}" if held else "stopped"
                tick.actions.append(
                    Refused(rid, device, rule_id, f"{device} is {why}: its level may not rise")
                )
                return
        change = shaping.change_level(limits, dev, current, _level(settings), tick.now)
        if change.level is not None:
            tick.actions.append(_send_level(device, settings, change.level))
        dev = change.dev
    else:
        tick.actions.append(SendConfigure(device, settings))
        dev = shaping.stopped(energy.new_treatment(dev))
    peak = max(dev.treatment_peak_level, _level(settings))
    tick.devices[device] = replace(dev, settings=settings, treatment_peak_level=peak)
    tick.actions.append(Accepted(rid))


def _level(settings: UltrasoundSettings | ChannelSetup) -> float:
    """An output's level: intensity (W/cm²) or peak amplitude (mA)."""
    if isinstance(settings, UltrasoundSettings):
        return settings.intensity_w_cm2
    return settings.amplitude_ma


def _send_level(device: str, settings: UltrasoundSettings | ChannelSetup, level: float) -> Action:
    """The write of a new level to a running output."""
    if isinstance(settings, UltrasoundSettings):
        return SendIntensity(device, level)
    return SendAmplitude(device, level)


def _path_problem(tick: _Tick, device: str, setup: ChannelSetup) -> tuple[str, str] | None:
    """TRANSTHORACIC: this setup with every other stimulation output's setup of the session."""
    others = {
        d: s.settings for d, s in tick.devices.items() if isinstance(s.settings, ChannelSetup)
    }
    why = placement.transthoracic_problem(device, setup, others, tick.state.thoracic_regions)
    return None if why is None else (rules.TRANSTHORACIC.id, why)


def _ultrasound_problem(
    settings: UltrasoundSettings, limits: DeviceLimits
) -> tuple[str, str] | None:
    """Why ultrasound settings may not be sent to this output (rule id, reason), if at all."""
    if limits.max_intensity is None or limits.max_time is None:
        return "WRONG_MODALITY", f"is a {limits.modality} output, not an ultrasound one"
    if settings.intensity_w_cm2 > limits.max_intensity.value:
        return rules.SETPOINT_LIMIT.id, (
            f"intensity {settings.intensity_w_cm2:.2f} W/cm² is above "
            f"{limits.max_intensity.value:.2f} W/cm² ({limits.max_intensity.source})"
        )
    if settings.time_s > limits.max_time.value:
        return rules.SETPOINT_LIMIT.id, (
            f"treatment time {settings.time_s} s is above "
            f"{limits.max_time.value:.0f} s ({limits.max_time.source})"
        )
    return None


def _stimulation_problem(setup: ChannelSetup, limits: DeviceLimits) -> tuple[str, str] | None:
    """Why a stimulation setup may not be sent (peak and rms caps), if at all."""
    if limits.max_amplitude is None or limits.max_rms is None:
        return "WRONG_MODALITY", f"is a {limits.modality} output, not a stimulation one"
    if setup.amplitude_ma > limits.max_amplitude.value:
        return rules.SETPOINT_LIMIT.id, (
            f"amplitude {setup.amplitude_ma:.1f} mA peak is above "
            f"{limits.max_amplitude.value:.1f} mA ({limits.max_amplitude.source})"
        )
    rms = rms_ma(setup.waveform, setup.amplitude_ma)
    if rms > limits.max_rms.value:
        return rules.SETPOINT_LIMIT.id, (
            f"{setup.amplitude_ma:.1f} mA peak in {setup.waveform.mode} at "
            f"{setup.waveform.freq_hz} Hz, {setup.waveform.pw_us} us is {rms:.1f} mA rms, above "
            f"{limits.max_rms.value:.1f} mA rms ({limits.max_rms.source})"
        )
    return placement.setup_problem(setup, limits)


def _only_level_changes(
    old: UltrasoundSettings | ChannelSetup | None, new: UltrasoundSettings | ChannelSetup
) -> bool:
    """Whether `new` differs from `old` in the output level alone (all a running output may
    change: the waveform, the electrodes and the rest stay as they were sent)."""
    if isinstance(old, UltrasoundSettings) and isinstance(new, UltrasoundSettings):
        return old.model_copy(update={"intensity_w_cm2": new.intensity_w_cm2}) == new
    if isinstance(old, ChannelSetup) and isinstance(new, ChannelSetup):
        return old.model_copy(update={"amplitude_ma": new.amplitude_ma}) == new
    return False


def _holding_trips(tick: _Tick, device: str) -> list[Alarm]:
    """Active alarms holding this output, or another output of its unit, stopped."""
    unit = tick.limits[device].unit
    siblings = [d for d in tick.devices if unit and tick.limits[d].unit == unit and d != device]
    return tick.trips_on(device) + [a for d in siblings for a in tick.trips_on(d)]


def _start(tick: _Tick, command: Start, reading: JudgedReading | None) -> None:
    rid, device = command.request_id, command.device
    if device not in tick.devices:
        tick.actions.append(Refused(rid, device, "UNKNOWN_DEVICE", f"no device '{device}'"))
        return
    trips = _holding_trips(tick, device)
    unit = tick.limits[device].unit
    if trips:
        names = ", ".join(dict.fromkeys(f"{a.rule.id} (alarm {a.id})" for a in trips))
        held = "is held stopped" if tick.trips_on(device) else f"shares unit {unit}, held"
        tick.actions.append(Refused(rid, device, trips[0].rule.id, f"{device} {held} by {names}"))
        return
    dev = tick.devices[device]
    why = None
    if dev.settings is None:
        why = f"{device} is not configured in this session"
    elif reading is None or tick.now - reading.received_mono_s > tick.limits[device].stale_limit_s:
        why = f"no current telemetry from {device}"
    elif reading.fault is not None:
        why = f"{device} reports fault {reading.fault}"
    elif reading.running or dev.start_sent_s is not None:
        why = f"{device} is already running"
    if why is not None:
        tick.actions.append(Refused(rid, device, "STATE", why))
        return
    spent = energy.start_problem(dev, reading, tick.limits[device], tick.state.tick_period_s)
    if spent is not None:
        tick.actions.append(Refused(rid, device, rules.DOSE_LIMIT.id, f"{device}: {spent}"))
        return
    dev = replace(energy.started(dev, reading, tick.now), level_sent=None, level_goal=None)
    settings = dev.settings
    if isinstance(settings, ChannelSetup):
        limits = tick.limits[device]
        ramp_s = float(settings.waveform.ramp_s)
        lower = shaping.start_level(limits, dev, settings.amplitude_ma, ramp_s, tick.now)
        if lower is not None:
            assert lower.level is not None
            tick.actions.append(SendAmplitude(device, lower.level))  # before the start
            dev = lower.dev
    tick.actions.append(SendStart(device))
    tick.devices[device] = replace(dev, start_sent_s=tick.now, commanded_on=True)
    tick.actions.append(Accepted(rid))


# ---- clearing and supervision ----


def _clear_alarms(tick: _Tick) -> None:
    for i, alarm in enumerate(tick.alarms):
        if not alarm.active or alarm.cause_present:
            continue
        if alarm.rule.clear is ClearPolicy.BIOMEDICAL_CLEAR:
            continue  # only ClearLockout
        if alarm.rule.clear is ClearPolicy.CONDITION_GONE or alarm.acknowledged_s is not None:
            cleared = replace(alarm, cleared_s=tick.now)
            tick.alarms[i] = cleared
            tick.actions.append(AlarmChanged(cleared, "cleared"))


def _supervise_device(tick: _Tick, device: str, reading: JudgedReading | None) -> None:
    dev = tick.devices[device]
    limits = tick.limits[device]
    trips = tick.trips_on(device)
    if trips:
        # Keep re-sending stop while telemetry still shows the output on.
        # A stop not obeyed is re-sent every tick; other stops at the resend interval.
        locked = any(a.rule is rules.STOP_NOT_OBEYED for a in trips)
        interval = 0.0 if locked else limits.stop_resend_interval_s
        resend_due = dev.last_stop_s is None or tick.now - dev.last_stop_s >= interval
        fresh = _fresh(tick, device, reading)
        if fresh and reading is not None and reading.running and resend_due:
            tick.send_stop(device, f"{trips[0].rule.id}: output still on after stop")
        _maybe_reset(tick, device, reading, trips)
        return  # no heartbeats while a trip holds: the device's watchdog backs up the stop
    if reading is not None and reading.fault is not None:
        _maybe_reset(tick, device, reading, trips)
    if dev.commanded_on and dev.settings is not None:
        up = shaping.due(limits, dev, tick.now)
        if up is not None and up.level is not None:
            tick.actions.append(_send_level(device, dev.settings, up.level))
            tick.devices[device] = dev = up.dev
    if (
        dev.last_heartbeat_s is None
        or tick.now - dev.last_heartbeat_s >= limits.heartbeat_interval_s
    ):
        tick.actions.append(SendHeartbeat(device))
        tick.devices[device] = replace(tick.devices[device], last_heartbeat_s=tick.now)


def _maybe_reset(
    tick: _Tick, device: str, reading: JudgedReading | None, trips: list[Alarm]
) -> None:
    """Reset the device's own fault latch once every alarm on it is acknowledged and gone."""
    if reading is None or reading.fault is None or reading.running:
        return
    conditions = {c.rule.id: c for c in _conditions(tick, device, reading)}
    on_device = [a for a in tick.alarms if a.active and a.device == device]
    for alarm in [*on_device, *trips]:
        if alarm.acknowledged_s is None:
            return
        if alarm.device is None:
            if alarm.cause_present:
                return  # a global trip still holds
            continue
        if alarm.device != device:
            # Another output's alarm blocks this reset only while its cause is in the world
            # (a held switch, a hot head). Its cause being that output's own fault latch must
            # not: each output would wait for the other's reset (both ES-2 channels, or both
            # CX-3 outputs, latch PATIENT_STOP together) and neither could ever restart.
            other = tick.readings.get(alarm.device)
            if other is None or not _fresh(tick, alarm.device, other):
                if alarm.cause_present:
                    return  # unknown is not gone
                continue
            other_conditions = {c.rule.id: c for c in _conditions(tick, alarm.device, other)}
            cond = other_conditions.get(alarm.rule.id)
            if cond is not None and cond.physical:
                return
            continue
        cond = conditions.get(alarm.rule.id)
        if cond is not None and cond.physical:
            return
    dev = tick.devices[device]
    if dev.last_reset_s is None or tick.now - dev.last_reset_s >= RESET_RETRY_S:
        tick.actions.append(SendResetFault(device))
        tick.devices[device] = replace(dev, last_reset_s=tick.now)
