"""CX-3 command execution: ranges, allowed states, the 64-command memory, replies.

Check order per command: shape (`SYNTAX`/`UNKNOWN`, in `protocol`), then value ranges
(`RANGE`), then state (`FAULT`, `NOCFG`, `STATE`). A refused command changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from device_sims.us1.registers import ACTIVE_STATES, Fault, State
from device_sims.us1.registers import Command as USCommand

from .model import MEMORY_SIZE, CX3Unit
from .protocol import Command, CommandError, Reply, error_reply, ok_reply, parse_command
from .stim import ELECTRODES, MODES, StimConfig

OUTPUTS = {"us": ("us",), "stim": ("stim",), "both": ("us", "stim")}
Op = Callable[[CX3Unit, dict[str, Any], float], None]


def handle_command(unit: CX3Unit, payload: bytes, now: float) -> Reply:
    """Answer one `cmd` payload: parse, recognise a repeat, execute, remember."""
    unit.advance(now)
    unit.counters["commands"] += 1
    try:
        cmd = parse_command(payload)
    except CommandError as exc:
        if _names_stop(payload):
            # A stop that cannot be read is still a stop: every output off, then refuse it
            # (the safest reading; the ICD says stop is accepted "always").
            unit.stop_outputs(OUTPUTS["both"], now)
        return error_reply(exc.cmd_id, exc.code, exc.detail)
    remembered = unit.memory.get(cmd.id)
    if remembered is not None and remembered[0] == cmd.key() and cmd.op != "stop":
        unit.counters["repeats"] += 1
        return dict(remembered[1])
    reply = execute(unit, cmd, now)
    unit.memory.pop(cmd.id, None)
    unit.memory[cmd.id] = (cmd.key(), dict(reply))
    while len(unit.memory) > MEMORY_SIZE:
        unit.memory.popitem(last=False)
    return reply


def execute(unit: CX3Unit, cmd: Command, now: float) -> Reply:
    """Run a well-shaped command; a CommandError becomes an error reply."""
    try:
        OPS[cmd.op](unit, cmd.args, now)
    except CommandError as exc:
        return error_reply(cmd.id, exc.code, exc.detail)
    unit.enforce_combination()
    return ok_reply(cmd.id)


def require(condition: bool, code: str, detail: str) -> None:
    """Raise CommandError(code, detail) unless `condition`."""
    if not condition:
        raise CommandError(code, detail)


def _write(unit: CX3Unit, address: int, values: list[int], now: float) -> None:
    """Write US-1 holding registers the checks above have already validated."""
    refused = unit.us.write_holding(address, values, now)
    if refused is not None:  # a bug in the checks above, never a client error
        raise RuntimeError(f"US registers {address}+{values} refused: {refused!r}")


def outputs_of(args: dict[str, Any]) -> tuple[str, ...]:
    """The outputs an `output` argument names; RANGE for anything else."""
    output = args["output"]
    require(output in OUTPUTS, "RANGE", f"output must be one of {sorted(OUTPUTS)}")
    return OUTPUTS[output]


def configure_us(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """Frequency, intensity setpoint, duty and treatment time, while the US is stopped."""
    require(args["frequency_khz"] in (1000, 3000), "RANGE", "frequency_khz must be 1000 or 3000")
    require(0.0 <= args["intensity_w_cm2"] <= 3.0, "RANGE", "intensity_w_cm2 must be 0-3.0")
    require(args["duty_pct"] in (10, 20, 50, 100), "RANGE", "duty_pct must be 10, 20, 50 or 100")
    require(1 <= args["time_s"] <= 1800, "RANGE", "time_s must be 1-1800")
    require(not unit.us_running, "STATE", "configure_us needs the ultrasound stopped")
    intensity = round(args["intensity_w_cm2"] * 100.0)
    _write(unit, 0, [args["frequency_khz"], intensity, args["duty_pct"], 100, args["time_s"]], now)
    unit.us.remaining_s = float(args["time_s"])
    unit.us_configured = True


def configure_stim(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """Waveform, timing and electrode, while the stimulation is stopped."""
    require(args["mode"] in MODES, "RANGE", f"mode must be one of {list(MODES)}")
    require(1 <= args["freq_hz"] <= 250, "RANGE", "freq_hz must be 1-250")
    require(5 <= args["pw_us"] <= 400, "RANGE", "pw_us must be 5-400")
    for name, high in (("on_s", 60.0), ("off_s", 60.0), ("ramp_s", 10.0)):
        require(0.0 <= args[name] <= high, "RANGE", f"{name} must be 0-{high:g}")
    require(args["electrode"] in ELECTRODES, "RANGE", f"electrode must be one of {ELECTRODES}")
    require(not unit.stim.running, "STATE", "configure_stim needs the stimulation stopped")
    unit.stim.config = StimConfig(**{name: args[name] for name in StimConfig.__annotations__})


def set_intensity(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """New ultrasound setpoint (0.01 W/cm² resolution); the output ramps to it."""
    require(0.0 <= args["intensity_w_cm2"] <= 3.0, "RANGE", "intensity_w_cm2 must be 0-3.0")
    _write(unit, 1, [round(args["intensity_w_cm2"] * 100.0)], now)


def set_amplitude(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """New stimulation target; the output moves to it at the ramp rate."""
    ma = args["ma"]
    require(0.0 <= ma <= 100.0 and (ma * 2) == int(ma * 2), "RANGE", "ma must be 0-100 in 0.5")
    unit.stim.target_ma = float(ma)


def _start_refusal(unit: CX3Unit, output: str, with_us: bool) -> None:
    """Raise the reason `output` may not start (with_us: the US starts in the same command)."""
    if output == "us":
        require(unit.us.fault == Fault.NONE, "FAULT", f"us: latched {unit.us.fault.name}")
        require(unit.us_configured, "NOCFG", "us: configure_us first")
        require(not unit.us_running, "STATE", "us: already running")
        return
    stim = unit.stim
    require(not stim.faults, "FAULT", f"stim: latched {sorted(stim.faults)}")
    require(stim.config is not None, "NOCFG", "stim: configure_stim first")
    require(not stim.running, "STATE", "stim: already running")
    if stim.config is not None and stim.config.electrode == "US_HEAD":
        us_runs = with_us or unit.us.state == State.RUNNING
        require(
            us_runs and unit.us.coupled, "STATE", "stim on US_HEAD needs the US running, coupled"
        )


def start(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """Start the named outputs: all of them or none."""
    outputs = outputs_of(args)
    for output in outputs:
        _start_refusal(unit, output, with_us="us" in outputs)
    unit.arm_watchdog_if_idle(now)
    if "us" in outputs:
        unit.us.execute(USCommand.START, now)
    if "stim" in outputs:
        unit.stim.start()


def stop(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """Output off at once, never ramped; allowed in every state. A stop whose `output` is not
    one of the ICD's stops every output before it is refused with RANGE (safest reading)."""
    try:
        outputs = outputs_of(args)
    except CommandError:
        unit.stop_outputs(OUTPUTS["both"], now)
        raise
    unit.stop_outputs(outputs, now)


def _names_stop(payload: bytes) -> bool:
    """True when a payload that failed to parse still says op "stop"."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("op") == "stop"


def reset_fault(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """Clear latched faults of stopped outputs whose cause is gone: all named or none."""
    outputs = outputs_of(args)
    if "us" in outputs:
        require(unit.us.state not in ACTIVE_STATES, "STATE", "us: stop it first")
        cause = unit.us.live_fault()
        require(cause == Fault.NONE, "STATE", f"us: cause still present ({cause.name})")
    if "stim" in outputs:
        require(not unit.stim.running, "STATE", "stim: stop it first")
        require(not unit.stim.cause_present(), "STATE", "stim: electrode still open")
        require(not unit.us.physics.switch_pressed, "STATE", "stim: patient switch still pressed")
    if "us" in outputs and unit.us.state == State.FAULT:
        unit.us.execute(USCommand.RESET_FAULT, now)
    if "stim" in outputs:
        unit.stim.reset()


def set_watchdog(unit: CX3Unit, args: dict[str, Any], now: float) -> None:
    """Heartbeat watchdog timeout, 200-5000 ms; allowed in every state."""
    require(200 <= args["timeout_ms"] <= 5000, "RANGE", "timeout_ms must be 200-5000")
    unit.watchdog_ms = args["timeout_ms"]


OPS: dict[str, Op] = {
    "configure_us": configure_us,
    "configure_stim": configure_stim,
    "set_intensity": set_intensity,
    "set_amplitude": set_amplitude,
    "start": start,
    "stop": stop,
    "reset_fault": reset_fault,
    "set_watchdog": set_watchdog,
}
