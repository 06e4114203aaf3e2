"""Timestamped device readings in the clinic's words, translated once from the wire."""

from __future__ import annotations

from dataclasses import dataclass

# States in which an ultrasound output counts as running for the console's rules: PAUSED and
# SUSPENDED still hold the unit armed and must be supervised.
ULTRASOUND_RUNNING_STATES = frozenset({"RUNNING", "PAUSED", "SUSPENDED"})
COUPLED_PCT = 50  # ICD US-1: coupling at or above this counts as coupled (energy counted)


@dataclass(frozen=True, slots=True)
class UltrasoundReading:
    """One poll of an ultrasound unit: setpoints read back and measured values side by side.

    A plain frozen dataclass, not a pydantic model: it is built 25+ times a second per device.
    """

    received_mono_s: float
    state: str
    fault: str | None
    output_active: bool
    frequency_khz: int
    intensity_setpoint_w_cm2: float
    duty_pct: int
    time_s: int
    watchdog_ms: int
    intensity_measured_w_cm2: float
    power_measured_w: float
    head_temperature_c: float
    coupling_pct: int
    remaining_s: int
    era_cm2: float
    bnr: float
    emission_s: int
    energy_j: int
    boot_count: int
    patient_stop_pressed: bool
    head_coupled: bool
    head_connected: bool
    # Setpoints read back that the console did not write, counted by the driver since connect.
    setpoint_mismatches: int = 0

    @property
    def running(self) -> bool:
        """True when the unit is armed: output on, paused or suspended for contact."""
        return self.output_active or self.state in ULTRASOUND_RUNNING_STATES

    @property
    def level_setpoint(self) -> float:
        """The intensity setpoint the unit holds (its ramp's end), W/cm²."""
        return self.intensity_setpoint_w_cm2

    @property
    def level_measured(self) -> float:
        """The measured effective intensity, W/cm²."""
        return self.intensity_measured_w_cm2

    @property
    def impedance_ohm(self) -> float | None:
        """An ultrasound unit reports no electrode impedance."""
        return None

    @property
    def counts_energy(self) -> bool:
        """The unit delivers (and counts) energy now: RUNNING and coupled (ICD US-1)."""
        return self.state == "RUNNING" and self.head_coupled


@dataclass(frozen=True, slots=True)
class OutputReading:
    """One output of a multi-output unit (an ES-2 channel, a CX-3 output) in the kernel's terms.

    The US-1 keeps its richer `UltrasoundReading`; both offer what the safety kernel judges
    (received time, state, running, fault, patient stop, boot count, head temperature).
    `level_*` is the output's own quantity: W/cm² for ultrasound, peak mA for stimulation.
    """

    received_mono_s: float
    modality: str  # "ultrasound" | "stimulation"
    state: str
    running: bool
    output_active: bool
    fault: str | None
    patient_stop_pressed: bool
    boot_count: int
    level_setpoint: float | None
    level_measured: float
    head_temperature_c: float | None = None
    head_connected: bool = True
    coupling_pct: int | None = None
    impedance_ohm: float | None = None
    remaining_s: int | None = None
    energy_j: int | None = None
    era_cm2: float | None = None  # an ultrasound output's head, as the unit reports it
    # Setpoints read back that the console did not write, counted by the unit's driver.
    setpoint_mismatches: int = 0

    @property
    def counts_energy(self) -> bool:
        """An ultrasound output delivers (and counts) energy now: RUNNING and coupled."""
        coupled = self.coupling_pct is None or self.coupling_pct >= COUPLED_PCT
        return self.modality == "ultrasound" and self.state == "RUNNING" and coupled
