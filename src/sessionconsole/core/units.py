"""Units and their outputs: the drivers behind the kernel's one-output-per-device view.

The kernel judges outputs. A US-1 (or a generic Modbus ultrasound unit) is one output named
after the device. An ES-2 has two, `<id>.ch1` and `<id>.ch2`; a CX-3 (or a generic MQTT unit
described like it) has `<id>.us` and `<id>.stim`. A `Unit` owns one driver, turns its newest
telemetry into one reading per output, and carries the kernel's actions for an output to the
driver's requests.

Two choices on the safe side, where one unit has several outputs:
- A stop for one CX-3 output stops both (the driver's stop is the ICD's `stop both`): the
  combination unit is one applicator on one patient.
- A unit gets heartbeats only while none of its outputs is held by a trip: its watchdog is
  shared, so the charge pump stops for the whole unit (see Controller._dispatch).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sessionconsole.drivers.cx3_mqtt import Cx3MqttDriver
from sessionconsole.drivers.es2_serial import Es2SerialDriver
from sessionconsole.drivers.generic_modbus import GenericModbusDriver
from sessionconsole.drivers.generic_mqtt import GenericMqttDriver
from sessionconsole.drivers.us1_modbus import Us1ModbusDriver
from sessionconsole.model.combination import Cx3Profile, Cx3Reading
from sessionconsole.model.limits import ClinicalLimits
from sessionconsole.model.modbus_map import ModbusGenericProfile
from sessionconsole.model.mqtt_map import GenericMqttProfile
from sessionconsole.model.profile import Us1Profile
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.model.stimulation import ChannelSetup, Es2Profile
from sessionconsole.model.telemetry import OutputReading, UltrasoundReading
from sessionconsole.model.validation import AnyProfile
from sessionconsole.safety import types as k

Clock = Callable[[], float]

ES2_CHANNELS = (1, 2)
CX3_US_FAULTS = frozenset(
    {"PATIENT_STOP", "WATCHDOG", "OVERTEMP", "OUTPUT_DEVIATION", "HEAD_DISCONNECTED", "INTERNAL"}
)
CX3_STIM_FAULTS = frozenset({"PATIENT_STOP", "WATCHDOG", "ELECTRODE", "OVERCURRENT", "INTERNAL"})
STIM_ON_MA = 0.5  # measured current above this counts as output on (noise floor)
US_ON_W_CM2 = 0.05


def with_stop_confirm(limits: k.DeviceLimits, link: Any) -> k.DeviceLimits:
    """The output's stop-confirm limit from its link: 300 ms and at least three telemetry
    periods (a period is the telemetry interval or, on a slow serial line, a poll's wire time);
    and the link's latency for the predictive dose stop.
    """
    period_s = max(1.0 / link.telemetry_hz, getattr(link, "poll_wire_ms", 0.0) / 1000.0)
    # The predictive dose stop looks this far past the reading's age: the network allowance
    # and, on a slow serial line, a poll's wire time (the stop's way to the unit).
    latency_s = (link.network_allowance_ms + getattr(link, "poll_wire_ms", 0.0)) / 1000.0
    return replace(
        limits, stop_confirm_s=k.stop_confirm_s(1.0 / period_s), link_latency_s=latency_s
    )


class Unit(ABC):
    """One device at the terminal: its driver and the outputs the kernel judges."""

    model: str

    def __init__(self, name: str, driver: Any, limits: dict[str, k.DeviceLimits]) -> None:
        self.name = name
        self.driver = driver
        # kernel device (output) name -> limits; each output names its unit, so the kernel
        # refuses to start one while a sibling is held (they share the unit's watchdog)
        self.limits = {output: replace(lim, unit=name) for output, lim in limits.items()}

    @property
    def outputs(self) -> list[str]:
        """The kernel's device names of this unit's outputs."""
        return list(self.limits)

    @abstractmethod
    async def connect_and_stop(self) -> dict[str, bool]:
        """Connect, stop every output; return which outputs were running before the stop."""

    @abstractmethod
    def readings(self) -> dict[str, k.Reading | None]:
        """The newest reading of each output (None when none yet)."""

    @abstractmethod
    def stop(self, output: str) -> None:
        """Stop the output now (ahead of anything queued in the driver)."""

    @abstractmethod
    def configure(self, output: str, settings: k.OutputSettings) -> None:
        """Send full settings to a stopped output."""

    @abstractmethod
    def level(self, output: str, value: float) -> None:
        """A new intensity (W/cm²) or amplitude (mA) for a running output."""

    @abstractmethod
    def start(self, output: str) -> None:
        """Start the output."""

    @abstractmethod
    def reset_fault(self, output: str) -> None:
        """Reset the output's latched device fault."""

    def heartbeat(self) -> None:
        """Feed the unit's watchdog once."""
        self.driver.request_heartbeat()

    @property
    def profile_name(self) -> str:
        """The profile's name, for the screen and the record."""
        return str(self.driver.profile.name)


class UltrasoundUnit(Unit):
    """A single-output ultrasound unit: the US-1, or a Modbus unit described by a profile."""

    driver: Us1ModbusDriver | GenericModbusDriver

    def __init__(
        self,
        name: str,
        profile: Us1Profile | ModbusGenericProfile,
        clinical: ClinicalLimits,
        clock: Clock,
    ) -> None:
        driver: Us1ModbusDriver | GenericModbusDriver
        if isinstance(profile, Us1Profile):
            driver = Us1ModbusDriver(name, profile, clock=clock)
            self.model = "US-1"
        else:
            driver = GenericModbusDriver(name, profile, clock=clock)
            self.model = profile.name
        limits = k.ultrasound_limits(
            profile.name,
            profile.limits.max_intensity_w_cm2,
            profile.limits.max_time_s,
            profile.link.stale_limit_s,
            profile.heartbeat_interval_ms / 1000.0,
            clinical,
            era_cm2=profile.era_cm2,
        )
        super().__init__(name, driver, {name: with_stop_confirm(limits, profile.link)})

    async def connect_and_stop(self) -> dict[str, bool]:
        before, _ = await self.driver.connect_and_stop()
        return {self.name: before.running}

    def readings(self) -> dict[str, k.Reading | None]:
        latest = self.driver.latest
        mismatches = getattr(self.driver, "setpoint_mismatches", 0)
        if latest is not None and mismatches != latest.setpoint_mismatches:
            latest = replace(latest, setpoint_mismatches=mismatches)
        return {self.name: latest}

    def stop(self, output: str) -> None:
        self.driver.request_stop()

    def configure(self, output: str, settings: k.OutputSettings) -> None:
        assert isinstance(settings, UltrasoundSettings)
        self.driver.request_configure(settings)

    def level(self, output: str, value: float) -> None:
        self.driver.request_intensity(value)

    def start(self, output: str) -> None:
        self.driver.request_start()

    def reset_fault(self, output: str) -> None:
        self.driver.request_reset_fault()


class Es2Unit(Unit):
    """An ES-2: two stimulation channels, `<name>.ch1` and `<name>.ch2`."""

    model = "ES-2"
    driver: Es2SerialDriver

    def __init__(
        self, name: str, profile: Es2Profile, clinical: ClinicalLimits, clock: Clock
    ) -> None:
        limits = k.stimulation_limits(
            profile.name,
            profile.limits.max_amplitude_ma,
            profile.link.stale_limit_s,
            profile.heartbeat_interval_ms / 1000.0,
            clinical,
            ramp_ma_per_s=profile.limits.ramp_ma_per_s,
            electrode_area_cm2=profile.limits.electrode_area_cm2,
        )
        limits = with_stop_confirm(limits, profile.link)
        outputs = {f"{name}.ch{ch}": limits for ch in ES2_CHANNELS}
        super().__init__(name, Es2SerialDriver(name, profile, clock=clock), outputs)

    @staticmethod
    def channel(output: str) -> int:
        """`es2.ch2` -> 2."""
        return int(output.rsplit(".ch", 1)[1])

    async def connect_and_stop(self) -> dict[str, bool]:
        before = await self.driver.connect_and_stop()
        return {f"{self.name}.ch{ch}": r.running for ch, r in before.items()}

    def readings(self) -> dict[str, k.Reading | None]:
        boots = self.driver.boot_events
        result: dict[str, k.Reading | None] = {}
        for ch in ES2_CHANNELS:
            r = self.driver.latest.get(ch)
            result[f"{self.name}.ch{ch}"] = (
                None
                if r is None
                else OutputReading(
                    received_mono_s=r.received_mono_s,
                    modality="stimulation",
                    state=r.state,
                    # a stuck relay drives current under an IDLE state: measured counts too
                    running=r.running or r.measured_ma > STIM_ON_MA,
                    output_active=r.running or r.measured_ma > STIM_ON_MA,
                    fault=r.faults[0] if r.faults else None,
                    patient_stop_pressed=False,  # the ES-2 reports only the latched fault
                    boot_count=boots,
                    level_setpoint=r.target_ma,
                    level_measured=r.measured_ma,
                    impedance_ohm=r.impedance_ohm,
                    # One count for the unit: a foreign setpoint stops both channels.
                    setpoint_mismatches=self.driver.setpoint_mismatches,
                )
            )
        return result

    def stop(self, output: str) -> None:
        self.driver.request_stop(self.channel(output))

    def configure(self, output: str, settings: k.OutputSettings) -> None:
        assert isinstance(settings, ChannelSetup)
        ch = self.channel(output)
        self.driver.request_configure(ch, settings.waveform)
        self.driver.request_amplitude(ch, settings.amplitude_ma)

    def level(self, output: str, value: float) -> None:
        self.driver.request_amplitude(self.channel(output), value)

    def start(self, output: str) -> None:
        self.driver.request_run(self.channel(output))

    def reset_fault(self, output: str) -> None:
        self.driver.request_reset_fault(self.channel(output))


class CombinationUnit(Unit):
    """A CX-3 (or an MQTT unit described like it): `<name>.us` and `<name>.stim`."""

    driver: Cx3MqttDriver | GenericMqttDriver

    def __init__(
        self,
        name: str,
        profile: Cx3Profile | GenericMqttProfile,
        clinical: ClinicalLimits,
        clock: Clock,
    ) -> None:
        driver: Cx3MqttDriver | GenericMqttDriver
        if isinstance(profile, Cx3Profile):
            driver = Cx3MqttDriver(name, profile, clock=clock)
            self.model = "CX-3"
        else:
            driver = GenericMqttDriver(name, profile, clock=clock)
            self.model = profile.name
        stale = profile.link.stale_limit_s
        heartbeat = profile.heartbeat_interval_ms / 1000.0
        limits = profile.limits
        super().__init__(
            name,
            driver,
            {
                f"{name}.us": with_stop_confirm(
                    k.ultrasound_limits(
                        profile.name,
                        limits.max_intensity_w_cm2,
                        limits.max_time_s,
                        stale,
                        heartbeat,
                        clinical,
                        era_cm2=profile.era_cm2,
                    ),
                    profile.link,
                ),
                f"{name}.stim": with_stop_confirm(
                    k.stimulation_limits(
                        profile.name,
                        limits.max_amplitude_ma,
                        stale,
                        heartbeat,
                        clinical,
                        ramp_ma_per_s=limits.ramp_ma_per_s,
                        electrode_area_cm2=limits.electrode_area_cm2,
                        head_era_cm2=profile.era_cm2,  # combination mode: the head
                    ),
                    profile.link,
                ),
            },
        )

    @staticmethod
    def part(output: str) -> str:
        """`cx3.us` -> "us"."""
        return output.rsplit(".", 1)[1]

    async def connect_and_stop(self) -> dict[str, bool]:
        before, _ = await self.driver.connect_and_stop()
        return {
            f"{self.name}.us": before.ultrasound.running,
            f"{self.name}.stim": before.stimulation.running,
        }

    def readings(self) -> dict[str, k.Reading | None]:
        r = self.driver.latest
        if r is None:
            return {output: None for output in self.outputs}
        return {f"{self.name}.us": self._us(r), f"{self.name}.stim": self._stim(r)}

    def _us(self, r: Cx3Reading) -> OutputReading:
        us = r.ultrasound
        faults = [f for f in r.faults if f in CX3_US_FAULTS]
        return OutputReading(
            received_mono_s=r.received_mono_s,
            modality="ultrasound",
            state=us.state,
            running=us.running or us.intensity_measured_w_cm2 > US_ON_W_CM2,  # stuck relay too
            output_active=us.running or us.intensity_measured_w_cm2 > US_ON_W_CM2,
            fault=faults[0] if faults else None,
            patient_stop_pressed=False,  # the CX-3 reports only the latched fault
            boot_count=self.driver.boot_changes,
            level_setpoint=us.intensity_setpoint_w_cm2,
            level_measured=us.intensity_measured_w_cm2,
            head_temperature_c=us.head_temperature_c,
            head_connected="HEAD_DISCONNECTED" not in r.faults,
            coupling_pct=us.coupling_pct,
            remaining_s=us.remaining_s,
            energy_j=us.energy_j,
            era_cm2=us.era_cm2,
            setpoint_mismatches=getattr(self.driver, "setpoint_mismatches", 0),
        )

    def _stim(self, r: Cx3Reading) -> OutputReading:
        stim = r.stimulation
        faults = [f for f in r.faults if f in CX3_STIM_FAULTS]
        return OutputReading(
            received_mono_s=r.received_mono_s,
            modality="stimulation",
            state=stim.state,
            running=stim.running or stim.amplitude_measured_ma > STIM_ON_MA,  # stuck relay too
            output_active=stim.running or stim.amplitude_measured_ma > STIM_ON_MA,
            fault=faults[0] if faults else None,
            patient_stop_pressed=False,
            boot_count=self.driver.boot_changes,
            level_setpoint=stim.amplitude_setpoint_ma,
            level_measured=stim.amplitude_measured_ma,
            impedance_ohm=stim.impedance_ohm,
            setpoint_mismatches=getattr(self.driver, "setpoint_mismatches", 0),
        )

    def stop(self, output: str) -> None:
        self.driver.request_stop()  # both outputs: one applicator, one patient

    def configure(self, output: str, settings: k.OutputSettings) -> None:
        if self.part(output) == "us":
            assert isinstance(settings, UltrasoundSettings)
            self.driver.request_configure_us(settings)
        else:
            assert isinstance(settings, ChannelSetup)
            self.driver.request_configure_stim(settings.waveform, settings.electrode)
            self.driver.request_amplitude(settings.amplitude_ma)

    def level(self, output: str, value: float) -> None:
        if self.part(output) == "us":
            self.driver.request_intensity(value)
        else:
            self.driver.request_amplitude(value)

    def start(self, output: str) -> None:
        self.driver.request_start("us" if self.part(output) == "us" else "stim")

    def reset_fault(self, output: str) -> None:
        self.driver.request_reset_fault("us" if self.part(output) == "us" else "stim")


def make_unit(name: str, profile: AnyProfile, clinical: ClinicalLimits, clock: Clock) -> Unit:
    """The unit for a profile of any kind."""
    if isinstance(profile, Us1Profile | ModbusGenericProfile):
        return UltrasoundUnit(name, profile, clinical, clock)
    if isinstance(profile, Es2Profile):
        return Es2Unit(name, profile, clinical, clock)
    return CombinationUnit(name, profile, clinical, clock)


def reading_values(r: k.Reading) -> dict[str, float | int | str | bool | None]:
    """One reading as a record sample (keys as in the stream descriptor)."""
    if isinstance(r, UltrasoundReading):
        return {
            "state": r.state,
            "fault": r.fault,
            "output_active": r.output_active,
            "intensity_setpoint_w_cm2": r.intensity_setpoint_w_cm2,
            "intensity_measured_w_cm2": r.intensity_measured_w_cm2,
            "power_measured_w": r.power_measured_w,
            "head_temperature_c": r.head_temperature_c,
            "coupling_pct": r.coupling_pct,
            "remaining_s": r.remaining_s,
            "energy_j": r.energy_j,
        }
    values: dict[str, float | int | str | bool | None] = {
        "state": r.state,
        "fault": r.fault,
        "output_active": r.output_active,
    }
    if r.modality == "ultrasound":
        values.update(
            intensity_setpoint_w_cm2=r.level_setpoint,
            intensity_measured_w_cm2=r.level_measured,
            head_temperature_c=r.head_temperature_c,
            coupling_pct=r.coupling_pct,
            remaining_s=r.remaining_s,
            energy_j=r.energy_j,
        )
    else:
        values.update(
            amplitude_setpoint_ma=r.level_setpoint,
            amplitude_measured_ma=r.level_measured,
            impedance_ohm=r.impedance_ohm,
        )
    return values


def descriptor_keys(limits: k.DeviceLimits) -> dict[str, dict[str, Any]]:
    """The stream descriptor's keys of one output, with units (UCUM) and limits."""
    common: dict[str, dict[str, Any]] = {
        "state": {"unit": None},
        "fault": {"unit": None},
        "output_active": {"unit": None},
    }
    if limits.modality == "stimulation":
        assert limits.max_amplitude is not None
        return {
            "amplitude_setpoint_ma": {"unit": "mA", "max": limits.max_amplitude.value},
            "amplitude_measured_ma": {"unit": "mA"},
            "impedance_ohm": {"unit": "Ohm"},
            **common,
        }
    assert limits.max_intensity is not None
    return {
        "intensity_setpoint_w_cm2": {"unit": "W/cm2", "max": limits.max_intensity.value},
        "intensity_measured_w_cm2": {"unit": "W/cm2"},
        "power_measured_w": {"unit": "W"},
        "head_temperature_c": {"unit": "Cel", "trip": limits.head_temp_trip_c},
        "coupling_pct": {"unit": "%"},
        "remaining_s": {"unit": "s"},
        "energy_j": {"unit": "J"},
        **common,
    }
