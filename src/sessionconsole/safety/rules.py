"""The interlock catalogue: every rule the kernel enforces, with priority, action and clear policy.

Kept as data so docs and the UI read the same table the kernel uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Priority(StrEnum):
    """IEC 60601-1-8 alarm priorities."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Action(StrEnum):
    """What the kernel does when a rule fires."""

    REFUSE = "refuse"
    WARN = "warn"
    STOP_DEVICE = "stop_device"
    STOP_ALL = "stop_all"


class ClearPolicy(StrEnum):
    """When an alarm may clear."""

    CONDITION_GONE = "condition_gone"
    ACK_ONCE_GONE = "ack_once_gone"
    BIOMEDICAL_CLEAR = "biomedical_clear"  # only a biomedical user's clear-lockout, output off


@dataclass(frozen=True, slots=True)
class Rule:
    """One interlock rule."""

    id: str
    description: str
    priority: Priority
    action: Action
    clear: ClearPolicy
    what_to_do: str

    @property
    def latched(self) -> bool:
        """Latched rules hold their stop until acknowledged (or cleared by biomedical staff)
        and their cause is gone."""
        return self.clear in (ClearPolicy.ACK_ONCE_GONE, ClearPolicy.BIOMEDICAL_CLEAR)


OPERATOR_STOP = Rule(
    "OPERATOR_STOP",
    "The operator pressed STOP ALL: every output of every device stops at once.",
    Priority.LOW,
    Action.STOP_ALL,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the patient, then acknowledge to allow outputs again.",
)
PATIENT_STOP = Rule(
    "PATIENT_STOP",
    "The patient pressed the hand switch: every output of every device stops at once.",
    Priority.HIGH,
    Action.STOP_ALL,
    ClearPolicy.ACK_ONCE_GONE,
    "Attend to the patient; acknowledge once the switch is released.",
)
COMMS_LOSS = Rule(
    "COMMS_LOSS",
    "Telemetry older than the link's stale limit while an output runs: every output stops.",
    Priority.HIGH,
    Action.STOP_ALL,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the device's cable or network; the device's watchdog stops it if the link is dead.",
)
HEAD_OVERTEMP = Rule(
    "HEAD_OVERTEMP",
    "Ultrasound head temperature at or above the trip limit: that device stops.",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Lift the head from the patient and check the skin; acknowledge once it has cooled.",
)
HEAD_TEMP_WARNING = Rule(
    "HEAD_TEMP_WARNING",
    "Ultrasound head temperature at or above the warning level.",
    Priority.MEDIUM,
    Action.WARN,
    ClearPolicy.CONDITION_GONE,
    "Check coupling gel and move the head; lower intensity or duty if it keeps rising.",
)
DEVICE_FAULT = Rule(
    "DEVICE_FAULT",
    "The device reports a latched fault of its own: that device is stopped.",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Read the fault, remove its cause, then acknowledge to reset the device.",
)
DEVICE_REBOOTED = Rule(
    "DEVICE_REBOOTED",
    "The device restarted during the session: its configuration is lost, nothing restarts.",
    Priority.MEDIUM,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the device's power; acknowledge, configure again and start by hand.",
)
OUTPUT_FOUND_RUNNING = Rule(
    "OUTPUT_FOUND_RUNNING",
    "At controller start an output was found running: it was stopped first thing.",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the patient and why the output ran unsupervised; acknowledge to continue.",
)
OUTPUT_NOT_COMMANDED = Rule(
    "OUTPUT_NOT_COMMANDED",
    "Telemetry shows an output on that the console did not start, or still on after a stop: "
    "that device is stopped again and gets no heartbeats.",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Lift the applicator, switch the device off at its mains switch if it does not stop, "
    "and have biomedical staff check it.",
)
CLIENT_LOST = Rule(
    "CLIENT_LOST",
    "No console client (TUI or script) has been heard from within the client timeout while "
    "an output may be on: every output stops.",
    Priority.HIGH,
    Action.STOP_ALL,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the terminal: restart the console UI; acknowledge from it once it is back.",
)
SETPOINT_LIMIT = Rule(
    "SETPOINT_LIMIT",
    "A setpoint beyond a device, profile or clinical limit is refused before it is sent.",
    Priority.LOW,
    Action.REFUSE,
    ClearPolicy.CONDITION_GONE,
    "Choose a value within the limit named in the message.",
)
OUTPUT_DEVIATION = Rule(
    "OUTPUT_DEVIATION",
    "Measured output off the level the device is driving now by more than the allowed share "
    "for longer than allowed (ultrasound 20 % for 2 s, stimulation 10 % for 1 s), once the "
    "device's own ramp is over: that output stops.",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the applicator, its cable and coupling; if it repeats, have biomedical staff "
    "check the device's output calibration.",
)
ELECTRODE_IMPEDANCE = Rule(
    "ELECTRODE_IMPEDANCE",
    "Electrode impedance out of range while a stimulation output drives current (open above "
    "10 kOhm, short below 200 Ohm): that channel stops.",
    Priority.MEDIUM,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the electrodes: contact, gel, cable; pads must not touch each other. Acknowledge "
    "once the impedance is back in range.",
)
STOP_NOT_OBEYED = Rule(
    "STOP_NOT_OBEYED",
    "A stop was not confirmed by telemetry showing the output off within the stop-confirm "
    "limit: the output is locked out (stop re-sent, no heartbeats, starts refused).",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.BIOMEDICAL_CLEAR,
    "Lift the applicator and switch the device off at its mains switch; biomedical staff "
    "must check it and clear the lock-out before it is used again.",
)
SETPOINT_NOT_WRITTEN = Rule(
    "SETPOINT_NOT_WRITTEN",
    "The device holds a setpoint the console did not write (changed at its front panel or "
    "by another client): that device stops.",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Make sure nobody else controls the device; acknowledge, configure it again from the "
    "console and start by hand.",
)
CONTACT_SUSPENDED = Rule(
    "CONTACT_SUSPENDED",
    "The ultrasound head has had no contact (output suspended) for longer than the "
    "configured time.",
    Priority.LOW,
    Action.WARN,
    ClearPolicy.CONDITION_GONE,
    "Put the head back on the skin with enough gel, or pause or stop the treatment.",
)
CURRENT_DENSITY = Rule(
    "CURRENT_DENSITY",
    "A stimulation output's rms current density over its electrode is above the level that "
    "needs attention (2 mA rms/cm2); above the configured cap it is refused.",
    Priority.MEDIUM,
    Action.WARN,
    ClearPolicy.CONDITION_GONE,
    "Check the skin under the electrode; use larger electrodes or a lower amplitude.",
)
DC_DENSITY = Rule(
    "DC_DENSITY",
    "A monophasic (HVPC) waveform's average (DC) current density is above the maker's "
    "advice of 0.2 mA/cm2.",
    Priority.LOW,
    Action.WARN,
    ClearPolicy.CONDITION_GONE,
    "Use larger electrodes, a lower amplitude, rate or pulse width, and watch the skin.",
)
TRANSTHORACIC = Rule(
    "TRANSTHORACIC",
    "Stimulation electrodes (of one or several devices) placed so current could cross the "
    "chest, front and back of the thorax or both its sides, are refused before sending.",
    Priority.MEDIUM,
    Action.REFUSE,
    ClearPolicy.CONDITION_GONE,
    "Place the electrodes on one side and one face of the thorax, or treat another region.",
)
DOSE_LIMIT = Rule(
    "DOSE_LIMIT",
    "An ultrasound output's delivered energy would pass its treatment's limit (the plan's dose "
    "over the treated area, else the settings' own energy plus the allowance) by the next "
    "tick plus the link's latency: that output stops before it does.",
    Priority.MEDIUM,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "The planned dose is delivered: record the outcome; configure a new treatment to go on.",
)
TREATMENT_TIME = Rule(
    "TREATMENT_TIME",
    "An ultrasound output has delivered for longer than its set treatment time plus the "
    "allowance, so the device's own timer did not end it: that output stops.",
    Priority.HIGH,
    Action.STOP_DEVICE,
    ClearPolicy.ACK_ONCE_GONE,
    "Lift the head; have biomedical staff check the device's timer before it is used again.",
)
ENERGY_MISMATCH = Rule(
    "ENERGY_MISMATCH",
    "The console's own integration of delivered energy and the device's energy counter "
    "differ by more than 10 %.",
    Priority.MEDIUM,
    Action.WARN,
    ClearPolicy.ACK_ONCE_GONE,
    "Check coupling and the head; have biomedical staff check the device's output "
    "calibration if it repeats.",
)
TECHNIQUE_OVER_ELECTRODES = Rule(
    "TECHNIQUE_OVER_ELECTRODES",
    "A manual technique was logged on a body region where stimulation electrodes are "
    "running: the therapist confirms (acknowledge) or pauses the channel (stop).",
    Priority.MEDIUM,
    Action.WARN,
    ClearPolicy.CONDITION_GONE,
    "Acknowledge to confirm working over the electrodes, or stop that channel first.",
)
LOOP_OVERRUN = Rule(
    "LOOP_OVERRUN",
    "A console core-loop tick came later than 5 periods (the default): supervision was late.",
    Priority.MEDIUM,
    Action.WARN,
    ClearPolicy.ACK_ONCE_GONE,
    "Close other programs on the console computer; if it repeats, have it checked.",
)
LOOP_OVERRUN_STOP = Rule(
    "LOOP_OVERRUN_STOP",
    "Three console core-loop ticks in a row (the default) came later than 5 periods: every "
    "output stops.",
    Priority.HIGH,
    Action.STOP_ALL,
    ClearPolicy.ACK_ONCE_GONE,
    "Check the patient; close other programs on the console computer and acknowledge; "
    "have the computer checked if it repeats.",
)

CATALOGUE: tuple[Rule, ...] = (
    OPERATOR_STOP,
    PATIENT_STOP,
    COMMS_LOSS,
    HEAD_OVERTEMP,
    HEAD_TEMP_WARNING,
    DEVICE_FAULT,
    DEVICE_REBOOTED,
    OUTPUT_FOUND_RUNNING,
    OUTPUT_NOT_COMMANDED,
    CLIENT_LOST,
    SETPOINT_LIMIT,
    OUTPUT_DEVIATION,
    ELECTRODE_IMPEDANCE,
    STOP_NOT_OBEYED,
    SETPOINT_NOT_WRITTEN,
    CONTACT_SUSPENDED,
    CURRENT_DENSITY,
    DC_DENSITY,
    TRANSTHORACIC,
    DOSE_LIMIT,
    TREATMENT_TIME,
    ENERGY_MISMATCH,
    TECHNIQUE_OVER_ELECTRODES,
    LOOP_OVERRUN,
    LOOP_OVERRUN_STOP,
)
RULES_BY_ID = {rule.id: rule for rule in CATALOGUE}
