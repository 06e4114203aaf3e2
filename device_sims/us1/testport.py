"""US-1 test-port operations (`state`, `inject`, `set`, `link`, `reboot`, `clear`).

`{"op": "state"}` replies (besides `"ok": true`) with:

    model        "US-1"
    unit         this unit's index in the process (0 unless started with --count)
    t_s          seconds since the simulator started
    state        "IDLE" | "RUNNING" | "PAUSED" | "SUSPENDED" | "FAULT" | "DONE"
    state_code   input register 0
    fault        "NONE" | "OVERTEMP" | "WATCHDOG" | "PATIENT_STOP" | "OUTPUT_DEVIATION" |
                 "HEAD_DISCONNECTED" | "INTERNAL";  fault_code: input register 6
    holding      [8 ints]  holding registers 0-7 as a Modbus read returns them
    input        [16 ints] input registers 0-15
    discrete     [4 bools] discrete inputs 0-3
    physics      {head_temp_c, coupling_pct, head_connected, patient_stop_pressed,
                  setpoint_w_cm2, current_target_w_cm2 (the ramped value),
                  emitted_w_cm2, measured_intensity_w_cm2, measured_power_w,
                  output_active, duty_fraction, draws}  (floats unrounded; draws: the
                  random-draw periods elapsed, device_sims/draws.py: two runs with one seed
                  report the same coupling at the same count)
    timer        {remaining_s, low_coupling_s, deviation_s}
    counters     {boot_counter, emission_time_s, energy_j, heartbeat_writes}
    watchdog     {armed, timeout_ms, since_feed_ms (null unless armed),
                  last_feed_t_ms (when START armed it or a register-6 write last fed it),
                  trip_t_ms (when it last latched WATCHDOG)}  (device clock: ms since the
                  simulator started, the origin of t_s; null until it happens; kept after
                  the trip so trip_t_ms - last_feed_t_ms is the device's own interval)
    link         {mode: "ok"|"drop"|"delay"|"corrupt", delay_ms, corrupt_rate}
    injected     {faults: [names], coupling_pct: float|null, head_temp_c: float|null}

A reboot resets the device (registers, state, timers, counters except the boot counter),
closes its TCP connections and forgets half-received RTU requests and delayed replies; the
physical world (temperatures, injected faults, pinned values, link mode) is kept, since only
`clear` removes those.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..control import ControlError
from ..link import LinkControl
from .model import US1Model
from .physics import Injections
from .registers import Fault, State

Clock = Callable[[], float]
FAULTS = ("patient_stop", "overtemp", "output_deviation", "head_disconnect", "ignore_stop")
PINNABLE = {"coupling_pct": (0.0, 100.0), "head_temp_c": (-20.0, 100.0)}


class US1TestPort:
    """Handles decoded test-port requests for one US-1 unit."""

    def __init__(
        self,
        model: US1Model,
        link: LinkControl,
        clock: Clock,
        on_reboot: Callable[[], None] = lambda: None,
        unit: int = 0,
    ) -> None:
        """Steer `model` and `link` of unit `unit`; `on_reboot` resets its transports."""
        self.unit = unit
        self.model = model
        self.link = link
        self.clock = clock
        self.started = clock()
        self.on_reboot = on_reboot

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request (already routed to this unit); raise ControlError to refuse it."""
        op = request["op"]
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "state": lambda _r: self.state(),
            "inject": self._inject,
            "set": self._set,
            "link": self._link,
            "reboot": self._reboot,
            "clear": self._clear,
        }
        if op not in handlers:
            raise ControlError(f"unknown op {op!r}; known: {sorted(handlers)}")
        self.model.advance(self.clock())
        return handlers[op](request)

    def _inject(self, request: dict[str, Any]) -> dict[str, Any]:
        """Inject one US-1 fault."""
        fault = request.get("fault")
        if fault not in FAULTS:
            raise ControlError(f"unknown fault {fault!r} for US-1; known: {list(FAULTS)}")
        if fault == "patient_stop":
            self.model.physics.press_patient_stop()
        else:
            setattr(self.model.physics.injected, fault, True)
        return {}

    def _set(self, request: dict[str, Any]) -> dict[str, Any]:
        """Pin (number) or unpin (null) physical quantities."""
        keys = [key for key in request if key not in ("op", "unit")]
        if not keys:
            raise ControlError(f"set needs at least one of {sorted(PINNABLE)}")
        for key in keys:
            if key not in PINNABLE:
                raise ControlError(f"cannot set {key!r} on US-1; settable: {sorted(PINNABLE)}")
            value = request[key]
            low, high = PINNABLE[key]
            if value is not None and (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not low <= value <= high
            ):
                raise ControlError(f"{key} must be a number in {low}..{high} or null")
        for key in keys:
            value = request[key]
            setattr(self.model.physics.injected, key, None if value is None else float(value))
        return {}

    def _link(self, request: dict[str, Any]) -> dict[str, Any]:
        """Change the link mode."""
        try:
            self.link.set(request)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return {}

    def _reboot(self, _request: dict[str, Any]) -> dict[str, Any]:
        """Power-cycle the device (endpoints stay the same)."""
        self.model.reboot(self.clock())
        self.on_reboot()
        return {"boot_counter": self.model.boot_counter}

    def _clear(self, _request: dict[str, Any]) -> dict[str, Any]:
        """Remove every injected fault, pinned value and link mode."""
        self.model.physics.injected = Injections()
        self.model.physics.switch_pressed_s = 0.0
        self.model.stuck_w_cm2 = 0.0
        self.link.clear()
        return {}

    def _t_ms(self, at: float | None) -> float | None:
        """A device-clock instant as ms since the simulator started (None stays None)."""
        return None if at is None else (at - self.started) * 1000.0

    def state(self) -> dict[str, Any]:
        """The full simulated state (schema in the module docstring)."""
        m, p = self.model, self.model.physics
        since_feed = None if m.last_feed is None else (m.last_time - m.last_feed) * 1000.0
        return {
            "model": "US-1",
            "unit": self.unit,
            "t_s": self.clock() - self.started,
            "state": State(m.state).name,
            "state_code": int(m.state),
            "fault": Fault(m.fault).name,
            "fault_code": int(m.fault),
            "holding": list(m.holding),
            "input": m.input_registers(),
            "discrete": m.discrete_inputs(),
            "physics": {
                "head_temp_c": p.head_temp_c,
                "coupling_pct": m.coupling_pct,
                "head_connected": p.head_connected,
                "patient_stop_pressed": p.switch_pressed,
                "setpoint_w_cm2": m.holding[1] / 100.0,
                "current_target_w_cm2": m.target_w_cm2,
                "emitted_w_cm2": m.emitted_w_cm2,
                "measured_intensity_w_cm2": m.measured_w_cm2,
                "measured_power_w": m.measured_power_w,
                "output_active": m.output_active,
                "duty_fraction": m.duty_fraction,
                "draws": p.grid.draws,
            },
            "timer": {
                "remaining_s": m.remaining_s,
                "low_coupling_s": m.low_coupling_s,
                "deviation_s": m.deviation_s,
            },
            "counters": {
                "boot_counter": m.boot_counter,
                "emission_time_s": m.emission_s,
                "energy_j": m.energy_j,
                "heartbeat_writes": m.heartbeats,
            },
            "watchdog": {
                "armed": m.last_feed is not None,
                "timeout_ms": m.holding[5],
                "since_feed_ms": since_feed,
                "last_feed_t_ms": self._t_ms(m.fed_at),
                "trip_t_ms": self._t_ms(m.tripped_at),
            },
            "link": self.link.describe(),
            "injected": {
                "faults": p.injected.active_names(),
                "coupling_pct": p.injected.coupling_pct,
                "head_temp_c": p.injected.head_temp_c,
            },
        }
