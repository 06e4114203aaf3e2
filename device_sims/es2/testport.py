"""ES-2 test-port operations (`state`, `inject`, `set`, `link`, `reboot`, `clear`).

Requests may carry `"unit": i` (default 0) when the process runs several units (`--count`).
`{"op": "state"}` replies (besides `"ok": true`) with:

    model            "ES-2"
    unit             index of the unit;  serial: its ID? serial;  t_s: seconds since start
    endpoints        {serial_pty?, serial_url?} as in the READY line
    channels         [{ch, state ("IDLE"|"RAMP"|"ON"|"OFFPHASE"|"FAULT"), configured,
                       config: {mode, freq_hz, pw_us, on_s, off_s, ramp_s} | null,
                       target_ma (AMP target), output_ma (driven level, ramped),
                       meas_ma (measured, unrounded), impedance_ohm, faults (int bit mask),
                       faults_hex ("00"), relay_stuck_ma}]   for ch 1 and 2
    watchdog         {timeout_ms, armed, since_feed_ms (null unless armed),
                      last_feed_t_ms (when RUN armed it or an HB last fed it),
                      trip_t_ms (when it last fired: EVT,WATCHDOG)}  (device clock: ms
                      since the simulator started, the origin of t_s; null until it
                      happens; kept after the trip, so trip_t_ms - last_feed_t_ms is the
                      device's own interval)
    stream_hz        0 or 1-50
    patient_switch_pressed   bool (the switch is momentary: 0.2 s)
    physics_draws    random-draw periods elapsed (device_sims/draws.py); two runs with one
                     seed report the same impedances at the same count
    counters         {boot_counter, dropped, syntax, executed, repeats, heartbeats}
                     (executed: requests acted on; repeats: answered from memory)
    last_request     {content, reply: [fields]} | null  (the repeat memory)
    link             {mode: "ok"|"drop"|"delay"|"corrupt", delay_ms, corrupt_rate}
    injected         {electrode_off: [ch], overcurrent_pending: [ch], ignore_stop: bool,
                      impedance_ohm: {"ch": ohm}}

`inject`: `patient_stop`; `electrode_off` and `overcurrent` with `ch` (an over-current
injected while the channel drives nothing waits until it does); `ignore_stop` (STOP leaves
the output stage driving). `set`: `impedance_ohm` (number 0-1000000 or null) with `ch`.
A reboot keeps the physical world (impedance, injections) and the link mode; only `clear`
removes those. Endpoints stay the same and TCP clients stay connected (a serial cable does
not break when the device power-cycles).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..control import ControlError
from .channel import Channel
from .physics import CHANNELS, Injections
from .unit import ES2Unit

Clock = Callable[[], float]
FAULTS = ("patient_stop", "electrode_off", "overcurrent", "ignore_stop")
MAX_IMPEDANCE_OHM = 1_000_000


class ES2TestPort:
    """Handles decoded test-port requests for the ES-2 units of this process."""

    def __init__(self, units: list[ES2Unit], clock: Clock) -> None:
        """Steer `units`."""
        self.units = units
        self.clock = clock
        self.started = clock()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request; raise ControlError with a specific message to refuse it."""
        index = request.get("unit", 0)
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < len(self.units)
        ):
            raise ControlError(f"unknown unit {index!r}: units are 0..{len(self.units) - 1}")
        unit = self.units[index]
        handlers: dict[str, Callable[[ES2Unit, dict[str, Any]], dict[str, Any]]] = {
            "state": lambda u, _r: self.state(u),
            "inject": self._inject,
            "set": self._set,
            "link": self._link,
            "reboot": self._reboot,
            "clear": self._clear,
        }
        op = request["op"]
        if op not in handlers:
            raise ControlError(f"unknown op {op!r}; known: {sorted(handlers)}")
        unit.model.advance(self.clock())
        try:
            return handlers[op](unit, request)
        finally:
            unit.changed()

    @staticmethod
    def _channel(request: dict[str, Any], what: str) -> int:
        """The request's `ch`, 1 or 2."""
        ch = request.get("ch")
        if ch not in CHANNELS or isinstance(ch, bool):
            raise ControlError(f"{what} needs 'ch': 1 or 2, got {ch!r}")
        return int(ch)

    def _inject(self, unit: ES2Unit, request: dict[str, Any]) -> dict[str, Any]:
        """Inject one ES-2 fault."""
        fault = request.get("fault")
        injected = unit.model.physics.injected
        if fault == "patient_stop":
            unit.model.patient_stop(self.clock())
        elif fault == "electrode_off":
            injected.electrode_off.add(self._channel(request, "electrode_off"))
        elif fault == "overcurrent":
            injected.overcurrent_pending.add(self._channel(request, "overcurrent"))
        elif fault == "ignore_stop":
            injected.ignore_stop = True
        else:
            raise ControlError(f"unknown fault {fault!r} for ES-2; known: {list(FAULTS)}")
        return {}

    def _set(self, unit: ES2Unit, request: dict[str, Any]) -> dict[str, Any]:
        """Pin (number) or unpin (null) a channel's electrode impedance."""
        keys = sorted(key for key in request if key not in ("op", "unit", "ch"))
        if keys != ["impedance_ohm"]:
            raise ControlError(f"set on ES-2 takes 'impedance_ohm' with 'ch', got {keys}")
        ch = self._channel(request, "set impedance_ohm")
        value = request["impedance_ohm"]
        pinned = unit.model.physics.injected.impedance_ohm
        if value is None:
            pinned.pop(ch, None)
            return {}
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0 <= value <= MAX_IMPEDANCE_OHM
        ):
            raise ControlError(f"impedance_ohm must be a number in 0..{MAX_IMPEDANCE_OHM} or null")
        pinned[ch] = float(value)
        return {}

    def _link(self, unit: ES2Unit, request: dict[str, Any]) -> dict[str, Any]:
        """Change the link mode."""
        try:
            unit.link.set(request)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return {}

    def _reboot(self, unit: ES2Unit, _request: dict[str, Any]) -> dict[str, Any]:
        """Power-cycle the unit (endpoints stay the same)."""
        unit.reboot()
        return {"boot_counter": unit.model.boot_counter}

    def _clear(self, unit: ES2Unit, _request: dict[str, Any]) -> dict[str, Any]:
        """Remove every injected fault, pinned value and link mode."""
        unit.model.physics.injected = Injections()
        unit.model.physics.switch_pressed_s = 0.0
        for channel in unit.model.channels.values():
            channel.stuck_ma = 0.0
        unit.link.clear()
        return {}

    def _t_ms(self, at: float | None) -> float | None:
        """A device-clock instant as ms since the simulator started (None stays None)."""
        return None if at is None else (at - self.started) * 1000.0

    def state(self, unit: ES2Unit) -> dict[str, Any]:
        """The full simulated state (schema in the module docstring)."""
        m = unit.model
        since_feed = None if m.last_feed is None else (m.last_time - m.last_feed) * 1000.0
        memory = None
        if m.memory is not None:
            content = m.memory.content.decode("ascii", "replace")
            memory = {"content": content, "reply": list(m.memory.reply)}
        return {
            "model": "ES-2",
            "unit": unit.index,
            "serial": m.serial,
            "t_s": self.clock() - self.started,
            "endpoints": unit.endpoints,
            "channels": [self._channel_state(unit, c) for c in m.channels.values()],
            "watchdog": {
                "timeout_ms": m.watchdog_ms,
                "armed": m.last_feed is not None,
                "since_feed_ms": since_feed,
                "last_feed_t_ms": self._t_ms(m.fed_at),
                "trip_t_ms": self._t_ms(m.tripped_at),
            },
            "stream_hz": m.stream_hz,
            "patient_switch_pressed": m.physics.switch_pressed,
            "physics_draws": m.physics.grid.draws,
            "counters": {
                "boot_counter": m.boot_counter,
                "dropped": m.dropped,
                "syntax": m.syntax,
                "executed": m.executed,
                "repeats": m.repeats,
                "heartbeats": m.heartbeats,
            },
            "last_request": memory,
            "link": unit.link.describe(),
            "injected": m.physics.injected.describe(),
        }

    @staticmethod
    def _channel_state(unit: ES2Unit, c: Channel) -> dict[str, Any]:
        """One channel's entry of the `state` reply."""
        config = None if c.config is None else dict(vars(c.config))
        return {
            "ch": c.number,
            "state": c.state.value,
            "configured": c.config is not None,
            "config": config,
            "target_ma": c.target_ma,
            "output_ma": c.output_ma,
            "meas_ma": unit.model.measured[c.number],
            "impedance_ohm": unit.model.physics.impedance_ohm(c.number),
            "faults": c.faults,
            "faults_hex": f"{c.faults:02X}",
            "relay_stuck_ma": c.stuck_ma,
        }
