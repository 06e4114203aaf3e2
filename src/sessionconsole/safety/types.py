"""Kernel vocabulary: limits per device, operator commands in, actions out, alarms and state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sessionconsole.model.limits import DEFAULT_THORACIC_REGIONS, ClinicalLimits
from sessionconsole.model.profile import DeviceProfile
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup
from sessionconsole.model.telemetry import OutputReading, UltrasoundReading
from sessionconsole.safety.rules import Priority, Rule


@dataclass(frozen=True, slots=True)
class Limit:
    """A numeric cap and where it comes from, so a refusal can name it."""

    value: float
    source: str


class JudgedReading(Protocol):
    """What the kernel reads of an output's telemetry, whatever the unit.

    `UltrasoundReading` (US-1) and `OutputReading` (ES-2 channel, CX-3 output) both offer it.
    `head_temperature_c` is None for outputs without an ultrasound head, `impedance_ohm` for
    outputs without electrodes. `level_setpoint` is the level the unit holds as its target (the
    end of its own ramp), `level_measured` what it measures; `setpoint_mismatches` counts
    setpoints read back that the console did not write.
    """

    @property
    def received_mono_s(self) -> float: ...
    @property
    def state(self) -> str: ...
    @property
    def running(self) -> bool: ...
    @property
    def fault(self) -> str | None: ...
    @property
    def patient_stop_pressed(self) -> bool: ...
    @property
    def boot_count(self) -> int: ...
    @property
    def head_temperature_c(self) -> float | None: ...
    @property
    def head_connected(self) -> bool: ...
    @property
    def level_setpoint(self) -> float | None: ...
    @property
    def level_measured(self) -> float: ...
    @property
    def impedance_ohm(self) -> float | None: ...
    @property
    def setpoint_mismatches(self) -> int: ...
    @property
    def energy_j(self) -> int | None: ...
    @property
    def era_cm2(self) -> float | None: ...
    @property
    def counts_energy(self) -> bool: ...


Reading = UltrasoundReading | OutputReading
OutputSettings = UltrasoundSettings | ChannelSetup


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """Everything the kernel needs to judge one output.

    An ultrasound output has intensity, time and head-temperature limits; a stimulation
    output has amplitude (peak, from the profile) and rms-current (clinical) limits. The
    `modality` says which set applies; the others are None.
    """

    stale_limit_s: float
    heartbeat_interval_s: float
    max_intensity: Limit | None = None
    max_time: Limit | None = None
    head_temp_warning_c: float | None = None
    head_temp_trip_c: float | None = None
    max_amplitude: Limit | None = None
    max_rms: Limit | None = None
    modality: str = "ultrasound"
    unit: str = ""  # outputs of one unit share its watchdog; "" = a unit of its own
    stop_resend_interval_s: float = 0.1
    stop_confirm_s: float = 0.3  # telemetry must show the output off this soon after a stop
    # OUTPUT_DEVIATION: |measured - target| above this share of the target for this long.
    deviation_fraction: float = 0.20
    deviation_s: float = 2.0
    deviation_floor: float = 0.1  # targets below this count as this (W/cm² or mA)
    # The device's own ramp rate (W/cm² per s), from which the console knows when a ramp is
    # over; None when the device reports its ramp in its state (ES-2, CX-3 stim: RAMP).
    ramp_rate_per_s: float | None = 0.5
    impedance_open_ohm: float = 10_000.0
    impedance_short_ohm: float = 200.0
    contact_suspended_alarm_s: float = 30.0
    # Console ramp shaping: increases of the level never faster than this (W/cm² or mA per s);
    # None: not shaped (pure kernel tests that do not model it).
    max_ramp_per_s: float | None = None
    level_step: float = 0.01  # the unit's resolution of the level (0.5 mA for stimulation)
    # Ultrasound energy and time: the allowance over the settings' own energy, the console's
    # integration against the device's counter, the head's ERA when readings lack it, the
    # link's latency for the predictive stop and the time allowed past the set time.
    energy_allowance: float = 0.10
    energy_mismatch: float | None = None  # None: not judged (pure tests without a counter)
    era_cm2: float | None = None
    link_latency_s: float = 0.05
    time_allowance_s: float = 2.0
    # Stimulation placement: the profile's usual electrode area, the ultrasound head's ERA
    # when the output can use the head as its electrode (CX-3 combination mode), and the
    # current-density levels.
    electrode_area_cm2: float | None = None
    head_era_cm2: float | None = None
    density_warning_ma_cm2: float = 2.0
    max_density: Limit | None = None
    dc_density_advice_ma_cm2: float = 0.2


def stop_confirm_s(telemetry_hz: float, floor_s: float = 0.3) -> float:
    """The stop-confirm limit of a link: 300 ms and at least three telemetry periods."""
    return max(floor_s, 3.0 / telemetry_hz)


def ultrasound_limits(
    profile_name: str,
    max_intensity_w_cm2: float,
    max_time_s: int,
    stale_limit_s: float,
    heartbeat_interval_s: float,
    clinical: ClinicalLimits,
    era_cm2: float | None = None,
) -> DeviceLimits:
    """An ultrasound output: the tighter of profile and clinical caps, each with its source."""
    us = clinical.ultrasound
    intensity = min(
        Limit(us.max_intensity_w_cm2, "clinical limit ultrasound.max_intensity_w_cm2"),
        Limit(max_intensity_w_cm2, f"profile '{profile_name}' max_intensity_w_cm2"),
        key=lambda lim: lim.value,
    )
    time = min(
        Limit(us.max_time_s, "clinical limit ultrasound.max_time_s"),
        Limit(max_time_s, f"profile '{profile_name}' max_time_s"),
        key=lambda lim: lim.value,
    )
    return DeviceLimits(
        stale_limit_s=stale_limit_s,
        heartbeat_interval_s=heartbeat_interval_s,
        max_intensity=intensity,
        max_time=time,
        head_temp_warning_c=us.head_temp_warning_c,
        head_temp_trip_c=us.head_temp_trip_c,
        contact_suspended_alarm_s=us.contact_suspended_alarm_s,
        max_ramp_per_s=us.max_ramp_w_cm2_per_s,
        energy_allowance=us.energy_allowance_pct / 100.0,
        energy_mismatch=us.energy_mismatch_pct / 100.0,
        era_cm2=era_cm2,
    )


def stimulation_limits(
    profile_name: str,
    max_amplitude_ma: float,
    stale_limit_s: float,
    heartbeat_interval_s: float,
    clinical: ClinicalLimits,
    ramp_ma_per_s: float | None = None,
    electrode_area_cm2: float | None = None,
    head_era_cm2: float | None = None,
) -> DeviceLimits:
    """A stimulation output: the profile's peak cap and ramp, the clinical rms and density
    caps, and the electrode area to judge density by when a setup gives none."""
    st = clinical.stimulation
    return DeviceLimits(
        stale_limit_s=stale_limit_s,
        heartbeat_interval_s=heartbeat_interval_s,
        max_amplitude=Limit(max_amplitude_ma, f"profile '{profile_name}' max_amplitude_ma"),
        max_rms=Limit(clinical.stimulation.max_rms_ma, "clinical limit stimulation.max_rms_ma"),
        modality="stimulation",
        deviation_fraction=0.10,
        deviation_s=1.0,
        deviation_floor=1.0,
        ramp_rate_per_s=None,
        max_ramp_per_s=ramp_ma_per_s,
        level_step=0.5,
        electrode_area_cm2=electrode_area_cm2,
        head_era_cm2=head_era_cm2,
        density_warning_ma_cm2=st.current_density_warning_ma_cm2,
        max_density=Limit(
            st.max_current_density_ma_cm2, "clinical limit stimulation.max_current_density_ma_cm2"
        ),
        dc_density_advice_ma_cm2=st.dc_density_advice_ma_cm2,
    )


def device_limits(profile: DeviceProfile, clinical: ClinicalLimits) -> DeviceLimits:
    """Limits of a single-output ultrasound unit (the US-1 and Modbus units like it)."""
    return ultrasound_limits(
        profile.name,
        profile.limits.max_intensity_w_cm2,
        profile.limits.max_time_s,
        profile.link.stale_limit_s,
        profile.heartbeat_interval_ms / 1000.0,
        clinical,
    )


# ---- commands (operator intent, stamped on arrival by the controller) ----


@dataclass(frozen=True, slots=True)
class Configure:
    """Set a device's treatment settings (all at once while stopped, intensity while running)."""

    request_id: int
    device: str
    settings: OutputSettings


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


@dataclass(frozen=True, slots=True)
class ClearLockout:
    """Biomedical staff release an output locked out by STOP_NOT_OBEYED (role checked here
    and by the controller)."""

    request_id: int
    device: str
    operator: str
    role: str


Command = Configure | Start | Stop | StopAll | Acknowledge | ClearLockout


# ---- actions (what the controller must do, stops first) ----


@dataclass(frozen=True, slots=True)
class SendStop:
    """Write a stop to the device now."""

    device: str
    reason: str


@dataclass(frozen=True, slots=True)
class SendConfigure:
    """Write the full settings block (ultrasound settings, or waveform and amplitude)."""

    device: str
    settings: OutputSettings


@dataclass(frozen=True, slots=True)
class SendIntensity:
    """Write a new intensity setpoint to a running device (it ramps by itself)."""

    device: str
    intensity_w_cm2: float


@dataclass(frozen=True, slots=True)
class SendAmplitude:
    """Write a new peak amplitude to a running stimulation output (it ramps by itself)."""

    device: str
    amplitude_ma: float


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
    | SendAmplitude
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

    settings: OutputSettings | None = None
    commanded_on: bool = False  # the console started the output and has not stopped it since
    start_sent_s: float | None = None
    last_heartbeat_s: float | None = None
    last_stop_s: float | None = None
    # First stop not yet confirmed by telemetry showing the output off: the stop-confirm time
    # runs from here, so repeating a stop does not postpone the alarm.
    unconfirmed_stop_s: float | None = None
    last_reset_s: float | None = None
    boot_count: int | None = None
    setpoint_mismatches: int | None = None  # the driver's count when last seen
    # OUTPUT_DEVIATION: when the device's ramp toward the level it holds is over (ultrasound,
    # modelled from the ramp rate), the level it was ramping to, and since when the measured
    # value has been off it.
    ramp_done_s: float | None = None
    ramp_to: float | None = None
    deviating_since_s: float | None = None
    suspended_since_s: float | None = None  # ultrasound SUSPENDED (no contact) since
    # Console ramp shaping: the level the operator asked for, the level last written and when.
    level_goal: float | None = None
    level_sent: float | None = None
    level_sent_s: float | None = None
    # Ultrasound energy: this run's (since the last start) console integration and time
    # delivering, the treatment's (since the last full configure) energy before this run, the
    # last reading integrated (time, W delivered then) and whether a mismatch was reported.
    run_energy_j: float = 0.0
    run_delivering_s: float = 0.0
    treatment_base_j: float = 0.0
    treatment_peak_level: float = 0.0  # the highest level set in this treatment
    integrated_at_s: float | None = None
    integrated_power_w: float | None = None  # None: not delivering at that reading
    run_unseen: bool = False  # started, and no reading has shown it delivering yet
    counter_valid: bool = False  # the unit's energy counter counts this treatment's run
    carry_treatment: bool = False  # the next configure continues the treatment (reboot etc.)
    energy_mismatch_reported: bool = False


@dataclass(frozen=True, slots=True)
class KernelState:
    """The whole kernel state: per-device memory and every alarm of the session."""

    limits: Mapping[str, DeviceLimits]
    devices: Mapping[str, DeviceState]
    alarms: tuple[Alarm, ...] = ()
    next_alarm_id: int = 1
    client_timeout_s: float = 2.0  # no client heard from this long while outputs may run
    tick_period_s: float = 0.01  # the core loop's period, for LOOP_OVERRUN
    overrun_periods: int = 5  # a tick later than this many periods is an overrun
    overruns_to_stop: int = 3  # this many overruns in a row stop everything
    consecutive_overruns: int = 0
    # Regions over the thorax and their face ("front" / "back"): TRANSTHORACIC.
    thoracic_regions: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_THORACIC_REGIONS)
    )

    def active_alarms(self) -> tuple[Alarm, ...]:
        """Alarms not yet cleared."""
        return tuple(a for a in self.alarms if a.active)


@dataclass(frozen=True, slots=True)
class Inputs:
    """One tick's inputs: newest reading per device (None if never read) and new commands."""

    readings: Mapping[str, Reading | None]
    commands: tuple[Command, ...] = field(default=())
    # Seconds since the newest heartbeat of any API client; None disables the rule (pure
    # kernel tests that do not model clients).
    client_silence_s: float | None = None
    # How late this tick ran against its deadline (the ticker measures it); None disables
    # LOOP_OVERRUN (pure kernel tests that do not model the loop).
    lateness_s: float | None = None
    # Manual techniques begun this tick: (region, side), for TECHNIQUE_OVER_ELECTRODES.
    techniques: tuple[tuple[str, str], ...] = ()


def initial_state(limits: Mapping[str, DeviceLimits]) -> KernelState:
    """A fresh kernel for these devices."""
    return KernelState(limits=dict(limits), devices={d: DeviceState() for d in limits})
