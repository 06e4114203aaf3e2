"""Pure CX-3 unit: ultrasound (the US-1 model reused) + one stimulation channel + unit rules.

No clock, no I/O: every entry point takes `now` (seconds, any monotonic origin) and advances
the unit to that instant first in steps of at most 20 ms. Unit-wide rules live here: the
heartbeat watchdog over both outputs, the patient stop, combination mode (electrode
`US_HEAD`), broker-connection loss, and events. Commands are executed by `commands.py`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from device_sims.us1.model import US1Model
from device_sims.us1.registers import ACTIVE_STATES, BNR_DECI, ERA_DECI_CM2, Command, Fault, State

from .protocol import is_int, load_object
from .stim import StimChannel, StimPhysics

FIRMWARE = "2.0.0-sim"
STEP_S = 0.02
MEMORY_SIZE = 64
DEFAULT_WATCHDOG_MS = 1000
FAULT_ORDER = (
    "PATIENT_STOP",
    "WATCHDOG",
    "OVERTEMP",
    "OUTPUT_DEVIATION",
    "HEAD_DISCONNECTED",
    "ELECTRODE",
    "OVERCURRENT",
    "INTERNAL",
)
US_OWN_FAULT_EVENTS = (Fault.OVERTEMP, Fault.OUTPUT_DEVIATION, Fault.HEAD_DISCONNECTED)
Event = dict[str, Any]


class CX3Ultrasound(US1Model):
    """The US-1 ultrasound rules; the watchdog is the CX-3's unit-wide one, not this one's."""

    def watchdog_expired(self) -> bool:
        """Never: `CX3Unit` supervises both outputs with one heartbeat watchdog."""
        return False


class CX3Unit:
    """One simulated CX-3; `us.physics` and `stim.physics` are the world and survive reboot."""

    def __init__(self, serial: str, seed: int = 0, now: float = 0.0) -> None:
        """Power the unit on at `now` (boot counter 1)."""
        self.serial = serial
        self.us = CX3Ultrasound(seed=seed, now=now)
        self.stim_physics = StimPhysics(seed=seed + 1)
        self.boot = 0
        self.reboot(now)

    def reboot(self, now: float) -> None:
        """Power-cycle: all device state lost, outputs off, boot counter + 1."""
        self.boot += 1
        self.boot_time = now
        self.last_time = now
        self.us.reboot(now)
        self.stim = StimChannel(self.stim_physics)
        self.us_configured = False
        self.watchdog_ms = DEFAULT_WATCHDOG_MS
        self.last_feed = now
        self.memory: OrderedDict[int, tuple[str, dict[str, Any]]] = OrderedDict()  # id: key, reply
        self.outbox: list[Event] = []
        self.boot_announced = False
        self.seq = 0
        self.counters = {"commands": 0, "repeats": 0, "heartbeats": 0, "bad_heartbeats": 0}
        self.counters |= {"watchdog_trips": 0, "connection_losses": 0}

    # ---- time ---------------------------------------------------------------------------
    def t_ms(self, at: float | None = None) -> int:
        """Milliseconds since boot."""
        return int(((self.last_time if at is None else at) - self.boot_time) * 1000.0)

    def advance(self, now: float) -> None:
        """Advance both outputs and the unit rules to `now` in steps of at most STEP_S."""
        while now > self.last_time:
            dt = min(STEP_S, now - self.last_time)
            t = now if now - (self.last_time + dt) < 1e-9 else self.last_time + dt
            before = self.us.state
            self.last_time = t
            self.us.advance(t)
            self._us_transitions(before)
            fault = self.stim.step(dt)
            if fault is not None:
                self.emit(fault, "stim")
            self._check_watchdog()
            self.enforce_combination()

    def _us_transitions(self, state: State) -> None:
        """Events for ultrasound transitions the US-1 rules made during a step."""
        new = self.us.state
        if state == State.RUNNING and new == State.SUSPENDED:
            self.emit("CONTACT_LOST", "us")
        elif state == State.SUSPENDED and new == State.RUNNING:
            self.emit("CONTACT_RESTORED", "us")
        elif new == State.FAULT and state != State.FAULT and self.us.fault in US_OWN_FAULT_EVENTS:
            self.emit(self.us.fault.name, "us")

    # ---- unit-wide rules ------------------------------------------------------------------
    @property
    def us_running(self) -> bool:
        """RUNNING, PAUSED and SUSPENDED count as running (US-1)."""
        return self.us.state in ACTIVE_STATES

    @property
    def any_running(self) -> bool:
        """Whether any output runs (the watchdog supervises only then)."""
        return self.us_running or self.stim.running

    def arm_watchdog_if_idle(self, now: float) -> None:
        """Starting the first output arms the watchdog from `now`."""
        if not self.any_running:
            self.last_feed = now

    def _check_watchdog(self) -> None:
        """No heartbeat within the timeout while an output runs: stop all, latch WATCHDOG."""
        if self.any_running and self.last_time - self.last_feed > self.watchdog_ms / 1000.0:
            self.counters["watchdog_trips"] += 1
            self.latch_all(Fault.WATCHDOG)
            self.emit("WATCHDOG", None)

    def latch_all(self, fault: Fault) -> None:
        """Stop both outputs at once and latch `fault` on both (US keeps an earlier fault)."""
        if self.us.state != State.FAULT:
            self.us.enter_fault(fault)
        self.stim.latch(fault.name)

    def enforce_combination(self) -> None:
        """US_HEAD stimulation runs only while the ultrasound runs and is coupled."""
        config = self.stim.config
        if not self.stim.running or config is None or config.electrode != "US_HEAD":
            return
        if self.us.state == State.RUNNING and self.us.coupled:
            return
        self.stim.stop()
        self.emit("CONTACT_LOST", "stim")

    def emit(self, event: str, output: str | None) -> None:
        """Queue an event for the `event` topic, stamped with the unit's time."""
        self.outbox.append({"event": event, "output": output, "t_ms": self.t_ms()})

    def take_events(self) -> list[Event]:
        """Hand the queued events to the transport."""
        events, self.outbox = self.outbox, []
        return events

    def heartbeat(self, payload: bytes, now: float) -> bool:
        """A heartbeat-topic message; only a `{"n": <int>}` object feeds the watchdog."""
        self.advance(now)
        message = load_object(payload)
        if message is None or not is_int(message.get("n")):
            self.counters["bad_heartbeats"] += 1
            return False
        self.counters["heartbeats"] += 1
        self.last_feed = now
        return True

    def patient_stop(self, now: float) -> None:
        """The patient's hand switch: both outputs stop at once, PATIENT_STOP latched."""
        self.advance(now)
        self.us.physics.press_patient_stop()
        self.latch_all(Fault.PATIENT_STOP)
        self.emit("PATIENT_STOP", None)

    def connection_lost(self, now: float) -> None:
        """Broker connection lost: stop every output at once (no supervision possible)."""
        self.advance(now)
        self.counters["connection_losses"] += 1
        self.stop_outputs(("us", "stim"), now)

    def stop_outputs(self, outputs: tuple[str, ...], now: float) -> None:
        """Stop the named outputs at once (a stuck relay, if injected, keeps driving)."""
        if "stim" in outputs:
            self.stim.stop(ignore_stop=self.us.physics.injected.ignore_stop)
        if "us" in outputs:
            self.us.execute(Command.STOP, now)
        self.enforce_combination()

    # ---- reporting ------------------------------------------------------------------------
    def latched_faults(self) -> list[str]:
        """Codes of latched faults, in the ICD's order."""
        codes = set(self.stim.faults)
        if self.us.fault != Fault.NONE:
            codes.add(self.us.fault.name)
        return [code for code in FAULT_ORDER if code in codes]

    def status(self) -> dict[str, Any]:
        """The retained `status` payload."""
        return {"online": True, "boot": self.boot, "fw": FIRMWARE, "model": "CX-3"}

    def telemetry(self, now: float) -> dict[str, Any]:
        """One telemetry message (ICD shape); increments `seq`."""
        self.advance(now)
        self.seq += 1
        us, stim = self.us, self.stim
        config = stim.config
        return {
            "seq": self.seq,
            "t_ms": self.t_ms(),
            "us": {
                "state": us.state.name,
                "intensity_set_w_cm2": us.holding[1] / 100.0,
                "intensity_w_cm2": round(us.measured_w_cm2, 2),
                "power_w": round(us.measured_power_w, 2),
                "head_temp_c": round(us.physics.head_temp_c, 1),
                "coupling_pct": round(us.coupling_pct),
                "remaining_s": math.ceil(us.remaining_s - 1e-9),
                "energy_j": math.floor(us.energy_j),
                "era_cm2": ERA_DECI_CM2 / 10.0,
                "bnr": BNR_DECI / 10.0,
            },
            "stim": {
                "state": stim.state,
                "mode": config.mode if config else None,
                "electrode": config.electrode if config else None,
                "ma_set": stim.target_ma,
                "ma": round(stim.measured_ma, 1),
                "impedance_ohm": round(stim.physics.impedance_ohm),
            },
            "faults": self.latched_faults(),
        }
