"""Kernel vocabulary: limits per device, operator commands in, actions out, alarms and state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sessionconsole.model.limits import ClinicalLimits
from sessionconsole.model.profile import DeviceProfile
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.telemetry import UltrasoundReading
from sessionconsole.safety.rules import Priority, Rule


@dataclass(frozen=True, slots=True)
class Limit:
    """A numeric cap and where it comes from, so a refusal can name it."""

    value: float
    source: str


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """Everything the kernel needs to judge one ultrasound device."""

    max_intensity: Limit
    max_time: Limit
    head_temp_warning_c: float
    head_temp_trip_c: float
    stale_limit_s: float
    heartbeat_interval_s: float
    stop_resend_interval_s: float = 0.1
    stop_confirm_s: float = 0.3  # telemetry must show the output off this soon after a stop


def device_limits(profile: DeviceProfile, clinical: ClinicalLimits) -> DeviceLimits:
    """The tighter of profile and clinical caps, each with its source."""
    us = clinical.ultrasound
    intensity = min(
        Limit(us.max_intensity_w_cm2, "clinical limit ultrasound.max_intensity_w_cm2"),
        Limit(profile.limits.max_intensity_w_cm2, f"profile '{profile.name}' max_intensity_w_cm2"),
        key=lambda lim: lim.value,
    )
    time = min(
        Limit(us.max_time_s, "clinical limit ultrasound.max_time_s"),
        Limit(profile.limits.max_time_s, f"profile '{profile.name}' max_time_s"),
        key=lambda lim: lim.value,
    )
    return DeviceLimits(
        max_intensity=intensity,
        max_time=time,
        head_temp_warning_c=us.head_temp_warning_c,
        head_temp_trip_c=us.head_temp_trip_c,
        stale_limit_s=profile.link.stale_limit_s,
        heartbeat_interval_s=profile.heartbeat_interval_ms / 1000.0,
    )


# ---- commands (operator intent, stamped on arrival by the controller) ----


@dataclass(frozen=True, slots=True)
class Configure:
    """Set a device's treatment settings (all at once while stopped, intensity while running)."""

    request_id: int
    device: str
    settings: UltrasoundSettings


@dataclass(frozen=True, slots=True)
class Start:
    """Start a device's output."""

    request_id: int
    device: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop one device's output (not latched)."""

    request_id: int
    device: str


@dataclass(frozen=True, slots=True)
class StopAll:
    """The operator's STOP ALL: every output stops and a latch holds until acknowledged."""

    request_id: int


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """The operator saw an alarm (`alarm_id`) or every active alarm (None)."""

    request_id: int
    alarm_id: int | None
    operator: str


Command = Configure | Start | Stop | StopAll | Acknowledge


# ---- actions (what the controller must do, stops first) ----


@dataclass(frozen=True, slots=True)
class SendStop:
    """Write a stop to the device now."""

    device: str
    reason: str


@dataclass(frozen=True, slots=True)
class SendConfigure:
    """Write the full settings block."""

    device: str
    settings: UltrasoundSettings


@dataclass(frozen=True, slots=True)
class SendIntensity:
    """Write a new intensity setpoint to a running device (it ramps by itself)."""

    device: str
    intensity_w_cm2: float


@dataclass(frozen=True, slots=True)
class SendStart:
    """Write a start command."""

    device: str


@dataclass(frozen=True, slots=True)
class SendResetFault:
    """Reset the device's latched fault (only ever after an operator's acknowledgement)."""

    device: str


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """Feed the device's watchdog (the charge pump: only a tick that ran the kernel sends it)."""

    device: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """A command was accepted and its device writes are among this tick's actions."""

    request_id: int


@dataclass(frozen=True, slots=True)
class Refused:
    """A command was refused before anything reached a device."""

    request_id: int
    device: str | None
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm condition as it stands; replaced, never mutated, as it moves on."""

    id: int
    rule: Rule
    device: str | None
    message: str
    raised_s: float
    cause_present: bool = True
    acknowledged_s: float | None = None
    acknowledged_by: str | None = None
    cleared_s: float | None = None

    @property
    def active(self) -> bool:
        """Not yet cleared."""
        return self.cleared_s is None

    @property
    def priority(self) -> Priority:
        """The rule's IEC 60601-1-8 priority."""
        return self.rule.priority


@dataclass(frozen=True, slots=True)
class AlarmChanged:
    """An alarm was raised, acknowledged or cleared this tick (the recorder writes each)."""

    alarm: Alarm
    change: str  # "raised" | "acknowledged" | "cleared"


Action = (
    SendStop
    | SendConfigure
    | SendIntensity
    | SendStart
    | SendResetFault
    | SendHeartbeat
    | Accepted
    | Refused
    | AlarmChanged
)


# ---- state ----


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the kernel remembers of one device between ticks."""

    settings: UltrasoundSettings | None = None
    commanded_on: bool = False  # the console started the output and has not stopped it since
    start_sent_s: float | None = None
    last_heartbeat_s: float | None = None
    last_stop_s: float | None = None
    # First stop not yet confirmed by telemetry showing the output off: the stop-confirm time
    # runs from here, so repeating a stop does not postpone the alarm.
    unconfirmed_stop_s: float | None = None
    last_reset_s: float | None = None
    boot_count: int | None = None


@dataclass(frozen=True, slots=True)
class KernelState:
    """The whole kernel state: per-device memory and every alarm of the session."""

    limits: Mapping[str, DeviceLimits]
    devices: Mapping[str, DeviceState]
    alarms: tuple[Alarm, ...] = ()
    next_alarm_id: int = 1
    client_timeout_s: float = 2.0  # no client heard from this long while outputs may run

    def active_alarms(self) -> tuple[Alarm, ...]:
        """Alarms not yet cleared."""
        return tuple(a for a in self.alarms if a.active)


@dataclass(frozen=True, slots=True)
class Inputs:
    """One tick's inputs: newest reading per device (None if never read) and new commands."""

    readings: Mapping[str, UltrasoundReading | None]
    commands: tuple[Command, ...] = field(default=())
    # Seconds since the newest heartbeat of any API client; None disables the rule (pure
    # kernel tests that do not model clients).
    client_silence_s: float | None = None


def initial_state(limits: Mapping[str, DeviceLimits]) -> KernelState:
    """A fresh kernel for these devices."""
    return KernelState(limits=dict(limits), devices={d: DeviceState() for d in limits})
