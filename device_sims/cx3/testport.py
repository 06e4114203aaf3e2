"""CX-3 test-port operations (`state`, `inject`, `set`, `link`, `reboot`, `clear`).

`{"op": "state"}` replies (besides `"ok": true`) with:

    model       "CX-3";  unit: index in this process;  serial;  root: "<root>/<serial>"
    t_s         seconds since the simulator started;  t_ms: milliseconds since boot
    online      connected to the broker and announced (status published)
    boot        boot counter (1 at process start, + 1 per reboot)
    us          {state, fault ("NONE" or a code), configured, frequency_khz, duty_pct, time_s,
                 setpoint_w_cm2, current_target_w_cm2 (ramped), emitted_w_cm2,
                 measured_intensity_w_cm2, measured_power_w, head_temp_c, coupling_pct,
                 coupled, head_connected, output_active, remaining_s, low_coupling_s,
                 deviation_s, emission_time_s, energy_j, draws}  (floats unrounded)
    stim        {state, faults [codes], config {mode, freq_hz, pw_us, on_s, off_s, ramp_s,
                 electrode} | null, target_ma, driven_ma, measured_ma, stuck_ma,
                 impedance_ohm, output_active, phase_s, draws}
                (draws: random-draw periods elapsed, device_sims/draws.py; two runs with one
                 seed report the same physics at the same count)
    faults      latched fault codes of the unit, ICD order (as in telemetry)
    patient_stop_pressed  bool
    watchdog    {timeout_ms, armed (an output runs), since_feed_ms, last_feed_t_ms (unit
                 time of the last heartbeat or first start, comparable with event t_ms)}
    counters    {commands, repeats, remembered, heartbeats, bad_heartbeats, watchdog_trips,
                 connection_losses, telemetry_seq, connects, sent, discarded_out,
                 discarded_in}
    link        {mode: "ok"|"drop"|"disconnect"|"delay"|"corrupt", delay_ms, corrupt_rate}
    injected    {faults: [names], coupling_pct, head_temp_c, impedance_ohm (null = not pinned)}

A reboot resets the device and breaks the broker connection abruptly (the last will fires),
then reconnects: new retained status with boot + 1, then a `BOOT` event. The physical world
(temperatures, impedance, injected faults, pinned values, link mode) survives; only `clear`
removes injections, pins and the link mode (reconnecting after `disconnect`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from device_sims.us1.physics import Injections

from ..control import ControlError
from .link import CX3LinkControl
from .model import CX3Unit
from .mqtt_io import MqttUnitLink

Clock = Callable[[], float]
US_FAULTS = ("overtemp", "output_deviation", "head_disconnect", "ignore_stop")
STIM_FAULTS = ("electrode_off", "overcurrent")
FAULTS = ("patient_stop", *US_FAULTS, *STIM_FAULTS)
PINNABLE = {
    "coupling_pct": (0.0, 100.0),
    "head_temp_c": (-20.0, 100.0),
    "impedance_ohm": (0.0, 1_000_000.0),
}


def _number_or_null(key: str, value: object) -> float | None:
    """Validate a `set` value: a number in range, or null to unpin."""
    if value is None:
        return None
    low, high = PINNABLE[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ControlError(f"{key} must be a number in {low:g}..{high:g} or null")
    return float(value)


def _check_channel(request: dict[str, Any]) -> None:
    """The CX-3 has one stimulation channel: `ch` may be omitted or 1."""
    if request.get("ch", 1) != 1:
        raise ControlError(f"unknown ch {request.get('ch')!r}: the CX-3 has stimulation ch 1 only")


class CX3TestPort:
    """Handles decoded test-port requests for one CX-3 unit."""

    def __init__(
        self, index: int, unit: CX3Unit, link: CX3LinkControl, mqtt: MqttUnitLink, clock: Clock
    ) -> None:
        """Steer `unit`, its link impairments and its broker connection."""
        self.index, self.unit, self.link, self.mqtt, self.clock = index, unit, link, mqtt, clock
        self.started = clock()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request; raise ControlError with a specific message to refuse it."""
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "state": lambda _r: self.state(),
            "inject": self._inject,
            "set": self._set,
            "link": self._link,
            "reboot": self._reboot,
            "clear": self._clear,
        }
        op = request["op"]
        if op not in handlers:
            raise ControlError(f"unknown op {op!r}; known: {sorted(handlers)}")
        self.unit.advance(self.clock())
        reply = handlers[op](request)
        self.mqtt.flush_events()
        return reply

    def _inject(self, request: dict[str, Any]) -> dict[str, Any]:
        """Inject one fault."""
        fault = request.get("fault")
        if fault not in FAULTS:
            raise ControlError(f"unknown fault {fault!r} for CX-3; known: {list(FAULTS)}")
        if fault in STIM_FAULTS:
            _check_channel(request)
        physics = self.unit.stim_physics
        if fault == "patient_stop":
            self.unit.patient_stop(self.clock())
        elif fault == "electrode_off":
            physics.electrode_off = True
        elif fault == "overcurrent":
            physics.overcurrent_pending = True
        else:
            setattr(self.unit.us.physics.injected, fault, True)
        return {}

    def _set(self, request: dict[str, Any]) -> dict[str, Any]:
        """Pin (number) or unpin (null) physical quantities."""
        keys = [key for key in request if key not in ("op", "unit", "ch")]
        if not keys:
            raise ControlError(f"set needs at least one of {sorted(PINNABLE)}")
        unknown = [key for key in keys if key not in PINNABLE]
        if unknown:
            raise ControlError(f"cannot set {unknown[0]!r} on CX-3; settable: {sorted(PINNABLE)}")
        if "impedance_ohm" in keys:
            _check_channel(request)
        values = {key: _number_or_null(key, request[key]) for key in keys}
        for key, value in values.items():
            if key == "impedance_ohm":
                self.unit.stim_physics.impedance_pin = value
            else:
                setattr(self.unit.us.physics.injected, key, value)
        return {}

    def _link(self, request: dict[str, Any]) -> dict[str, Any]:
        """Change the link mode (`disconnect` drops the broker connection, `ok` restores)."""
        try:
            self.link.set(request)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        self.mqtt.mode_changed()
        return {}

    def _reboot(self, _request: dict[str, Any]) -> dict[str, Any]:
        """Power-cycle: device state lost, connection dropped abruptly and re-made."""
        self.unit.reboot(self.clock())
        self.mqtt.abort()
        return {"boot": self.unit.boot}

    def _clear(self, _request: dict[str, Any]) -> dict[str, Any]:
        """Remove every injected fault, pinned value and link mode."""
        self.unit.us.physics.injected = Injections()
        self.unit.us.physics.switch_pressed_s = 0.0
        self.unit.us.stuck_w_cm2 = 0.0
        self.unit.stim_physics.clear()
        self.unit.stim.stuck_ma = 0.0
        self.link.clear()
        self.mqtt.mode_changed()
        return {}

    def state(self) -> dict[str, Any]:
        """The full simulated state (schema in the module docstring)."""
        u = self.unit
        since_feed = (u.last_time - u.last_feed) * 1000.0
        return {
            "model": "CX-3",
            "unit": self.index,
            "serial": u.serial,
            "root": self.mqtt.base,
            "t_s": self.clock() - self.started,
            "t_ms": u.t_ms(),
            "online": self.mqtt.online,
            "boot": u.boot,
            "us": self._us_state(),
            "stim": self._stim_state(),
            "faults": u.latched_faults(),
            "patient_stop_pressed": u.us.physics.switch_pressed,
            "watchdog": {
                "timeout_ms": u.watchdog_ms,
                "armed": u.any_running,
                "since_feed_ms": since_feed,
                "last_feed_t_ms": u.t_ms(u.last_feed),
            },
            "counters": {
                **u.counters,
                "remembered": len(u.memory),
                "telemetry_seq": u.seq,
                **self.mqtt.counters,
            },
            "link": self.link.describe(),
            "injected": {
                "faults": self._injected_faults(),
                "coupling_pct": u.us.physics.injected.coupling_pct,
                "head_temp_c": u.us.physics.injected.head_temp_c,
                "impedance_ohm": u.stim_physics.impedance_pin,
            },
        }

    def _injected_faults(self) -> list[str]:
        """Names of the injected faults currently active."""
        names = self.unit.us.physics.injected.active_names()
        if self.unit.stim_physics.electrode_off:
            names.append("electrode_off")
        if self.unit.stim_physics.overcurrent_pending:
            names.append("overcurrent")
        return names

    def _us_state(self) -> dict[str, Any]:
        """The ultrasound part of `state`."""
        us, p = self.unit.us, self.unit.us.physics
        return {
            "state": us.state.name,
            "fault": us.fault.name,
            "configured": self.unit.us_configured,
            "frequency_khz": us.holding[0],
            "duty_pct": us.holding[2],
            "time_s": us.holding[4],
            "setpoint_w_cm2": us.holding[1] / 100.0,
            "current_target_w_cm2": us.target_w_cm2,
            "emitted_w_cm2": us.emitted_w_cm2,
            "measured_intensity_w_cm2": us.measured_w_cm2,
            "measured_power_w": us.measured_power_w,
            "head_temp_c": p.head_temp_c,
            "coupling_pct": us.coupling_pct,
            "coupled": us.coupled,
            "head_connected": p.head_connected,
            "output_active": us.output_active,
            "remaining_s": us.remaining_s,
            "low_coupling_s": us.low_coupling_s,
            "deviation_s": us.deviation_s,
            "emission_time_s": us.emission_s,
            "energy_j": us.energy_j,
            "draws": p.grid.draws,
        }

    def _stim_state(self) -> dict[str, Any]:
        """The stimulation part of `state`."""
        stim = self.unit.stim
        config = stim.config
        return {
            "state": stim.state,
            "faults": sorted(stim.faults),
            "config": None if config is None else dict(config.__dict__),
            "target_ma": stim.target_ma,
            "driven_ma": stim.driven_ma,
            "measured_ma": stim.measured_ma,
            "stuck_ma": stim.stuck_ma,
            "impedance_ohm": stim.physics.impedance_ohm,
            "output_active": stim.output_ma > 0.0,
            "phase_s": stim.phase_s,
            "draws": stim.physics.grid.draws,
        }
