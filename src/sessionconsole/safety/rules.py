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
        """Latched rules hold their stop until acknowledged and their cause is gone."""
        return self.clear is ClearPolicy.ACK_ONCE_GONE


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
)
RULES_BY_ID = {rule.id: rule for rule in CATALOGUE}
