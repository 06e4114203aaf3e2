"""Pure US-1 unit model: registers, state machine, watchdog, faults, timers and counters.

No clock, no I/O: every entry point takes `now` (seconds, any monotonic origin) and the model
advances itself to that instant first, so tests drive it with made-up times and never sleep.
Register access returns either values or an `ExcCode`, which the Modbus adapter turns into a
Modbus exception response.
"""

from __future__ import annotations

import math

from .physics import Physics
from .registers import (
    ACTIVE_STATES,
    BNR_DECI,
    DISCRETE_COUNT,
    ERA_DECI_CM2,
    HOLDING_COUNT,
    HOLDING_DEFAULTS,
    HR_COMMAND,
    HR_DUTY,
    HR_HEARTBEAT,
    HR_INTENSITY,
    HR_TREATMENT_TIME,
    HR_WATCHDOG_MS,
    INPUT_COUNT,
    MODEL_CODE,
    SERIAL_NUMBER,
    WRITABLE_WHILE_ACTIVE,
    Command,
    ExcCode,
    Fault,
    State,
    value_allowed,
)

RAMP_W_CM2_PER_S = 0.5
SENSING_W_CM2 = 0.05
OVERTEMP_LIMIT_C = 41.0
SUSPEND_BELOW_PCT = 30.0
SUSPEND_AFTER_S = 1.0
COUPLED_PCT = 50.0
DEVIATION_LIMIT = 0.2
DEVIATION_AFTER_S = 2.0
MAX_STEP_S = 0.05

FC_READ_DISCRETE = 2
FC_READ_HOLDING = 3
FC_READ_INPUT = 4


class US1Model:
    """One simulated US-1 unit; the physical world lives in `physics` and survives reboot."""

    def __init__(
        self,
        seed: int = 0,
        now: float = 0.0,
        physics: Physics | None = None,
        serial: int = SERIAL_NUMBER,
    ) -> None:
        """Power the unit on at time `now` (boot counter 1); `serial` is input registers 14-15."""
        self.physics = physics if physics is not None else Physics(seed=seed)
        self.serial = serial
        self.boot_counter = 0
        self.reboot(now)

    def reboot(self, now: float) -> None:
        """Power-cycle: all device state lost, outputs off, boot counter + 1."""
        self.boot_counter += 1
        self.last_time = now
        self.holding = list(HOLDING_DEFAULTS)
        self.state = State.IDLE
        self.fault = Fault.NONE
        self.target_w_cm2 = 0.0
        self.stuck_w_cm2 = 0.0
        self.remaining_s = float(HOLDING_DEFAULTS[HR_TREATMENT_TIME])
        self.emission_s = 0.0
        self.energy_j = 0.0
        self.low_coupling_s = 0.0
        self.deviation_s = 0.0
        self.last_feed: float | None = None
        self.fed_at: float | None = None  # last arming or feed, kept after a trip (test port)
        self.tripped_at: float | None = None  # when the watchdog last latched WATCHDOG
        self.heartbeats = 0

    # ---- time -------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Advance the unit to time `now` in steps of at most MAX_STEP_S."""
        while now > self.last_time:
            dt = min(MAX_STEP_S, now - self.last_time)
            self.last_time += dt
            if now - self.last_time < 1e-9:
                self.last_time = now
            self._step(dt)

    def _step(self, dt: float) -> None:
        """One physics and rules step of length `dt` ending at `self.last_time`."""
        if self.state == State.RUNNING:
            setpoint = self.holding[HR_INTENSITY] / 100.0
            delta = max(
                -RAMP_W_CM2_PER_S * dt, min(RAMP_W_CM2_PER_S * dt, setpoint - self.target_w_cm2)
            )
            self.target_w_cm2 += delta
        self.physics.step(dt, self.emitted_w_cm2, self.duty_fraction)
        self._check_faults(dt)
        if self.state == State.RUNNING:
            self._step_running(dt)
        elif self.state == State.SUSPENDED and self.coupling_pct >= COUPLED_PCT:
            self.state = State.RUNNING

    def _step_running(self, dt: float) -> None:
        """Contact suspension, timer, emission time and energy while RUNNING."""
        if self.coupling_pct < SUSPEND_BELOW_PCT:
            self.low_coupling_s += dt
            if self.low_coupling_s > SUSPEND_AFTER_S:
                self.state = State.SUSPENDED
                self.target_w_cm2 = min(SENSING_W_CM2, self.target_w_cm2)
                self.low_coupling_s = 0.0
                return
        else:
            self.low_coupling_s = 0.0
        if not self.coupled:
            return
        self.remaining_s = max(0.0, self.remaining_s - dt)
        self.emission_s += dt
        self.energy_j += self.measured_power_w * self.duty_fraction * dt
        if self.remaining_s <= 0.0:
            self.state = State.DONE
            self.target_w_cm2 = 0.0

    def _check_faults(self, dt: float) -> None:
        """Latch the first fault whose condition holds (faults apply in any state)."""
        if self.state == State.FAULT:
            return
        fault = self.live_fault()
        if fault == Fault.NONE and self.state in ACTIVE_STATES and self.watchdog_expired():
            fault = Fault.WATCHDOG
            self.tripped_at = self.last_time
        if fault == Fault.NONE and self.state == State.RUNNING:
            fault = self._check_deviation(dt)
        if fault != Fault.NONE:
            self.enter_fault(fault)

    def _check_deviation(self, dt: float) -> Fault:
        """Count time with measured intensity >20 % off the current target; 2 s = fault."""
        target = self.target_w_cm2
        if target > 0.0 and abs(self.physics.measured_w_cm2 - target) > DEVIATION_LIMIT * target:
            self.deviation_s += dt
        else:
            self.deviation_s = 0.0
        return Fault.OUTPUT_DEVIATION if self.deviation_s >= DEVIATION_AFTER_S else Fault.NONE

    def live_fault(self) -> Fault:
        """Return a fault whose physical cause is present right now, else NONE."""
        if self.physics.head_temp_c > OVERTEMP_LIMIT_C:
            return Fault.OVERTEMP
        if self.physics.switch_pressed:
            return Fault.PATIENT_STOP
        if not self.physics.head_connected:
            return Fault.HEAD_DISCONNECTED
        return Fault.NONE

    def watchdog_expired(self) -> bool:
        """Whether no heartbeat write arrived within the watchdog timeout."""
        if self.last_feed is None:
            return False
        return self.last_time - self.last_feed > self.holding[HR_WATCHDOG_MS] / 1000.0

    def enter_fault(self, fault: Fault) -> None:
        """Latch `fault`: output off at once, state FAULT until RESET_FAULT."""
        self.state = State.FAULT
        self.fault = fault
        self.target_w_cm2 = 0.0
        self.stuck_w_cm2 = 0.0
        self.last_feed = None
        self.deviation_s = 0.0
        self.low_coupling_s = 0.0

    # ---- derived quantities -------------------------------------------------------------
    @property
    def duty_fraction(self) -> float:
        """Duty cycle as a fraction of 1."""
        return self.holding[HR_DUTY] / 100.0

    @property
    def coupling_pct(self) -> float:
        """Coupling quality in percent as the device senses it."""
        return self.physics.coupling_pct

    @property
    def coupled(self) -> bool:
        """Whether the head counts as coupled (coupling ≥ 50 %)."""
        return self.coupling_pct >= COUPLED_PCT

    @property
    def output_active(self) -> bool:
        """Whether the output stage is emitting (including a stuck relay after STOP)."""
        return self.state in (State.RUNNING, State.SUSPENDED) or self.stuck_w_cm2 > 0.0

    @property
    def emitted_w_cm2(self) -> float:
        """Intensity the output stage is driving right now."""
        if self.state in (State.RUNNING, State.SUSPENDED):
            return self.target_w_cm2
        return self.stuck_w_cm2

    @property
    def measured_w_cm2(self) -> float:
        """Measured intensity: the last measurement while emitting, none once emission stopped.

        STOP, PAUSE, a fault or the timer's DONE switch the output off in the same step, so the
        first read after them must already show 0 (ICDs: off at once, never ramped).
        """
        return self.physics.measured_w_cm2 if self.emitted_w_cm2 > 0.0 else 0.0

    @property
    def measured_intensity_reg(self) -> int:
        """Input register 2: measured intensity in 0.01 W/cm²."""
        return min(0xFFFF, round(self.measured_w_cm2 * 100.0))

    @property
    def measured_power_reg(self) -> int:
        """Input register 1: measured power in 0.01 W, exactly intensity register x ERA."""
        return min(0xFFFF, round(self.measured_intensity_reg * ERA_DECI_CM2 / 10.0))

    @property
    def measured_power_w(self) -> float:
        """Measured temporal-peak acoustic power in W."""
        return self.measured_w_cm2 * ERA_DECI_CM2 / 10.0

    # ---- commands -----------------------------------------------------------------------
    def command_allowed(self, command: Command) -> bool:
        """Whether `command` is allowed in the current state (ICD command table)."""
        if command in (Command.NONE, Command.STOP):
            return True
        if command == Command.START:
            return self.state in (State.IDLE, State.DONE) and self.fault == Fault.NONE
        if command == Command.PAUSE:
            return self.state in (State.RUNNING, State.SUSPENDED)
        if command == Command.RESUME:
            return self.state == State.PAUSED
        return self.state == State.FAULT and self.live_fault() == Fault.NONE

    def execute(self, command: Command, now: float) -> None:
        """Act on an allowed command at time `now`."""
        if command == Command.START:
            self.state = State.RUNNING
            self.remaining_s = float(self.holding[HR_TREATMENT_TIME])
            self.target_w_cm2 = 0.0
            self.stuck_w_cm2 = 0.0
            self.emission_s = 0.0
            self.energy_j = 0.0
            self.low_coupling_s = 0.0
            self.deviation_s = 0.0
            self.last_feed = self.fed_at = now
        elif command == Command.STOP:
            self._stop()
        elif command == Command.PAUSE:
            self.state = State.PAUSED
            self.target_w_cm2 = 0.0
        elif command == Command.RESUME:
            self.state = State.RUNNING if self.coupled else State.SUSPENDED
            self.target_w_cm2 = 0.0 if self.coupled else SENSING_W_CM2
            self.low_coupling_s = 0.0
            self.deviation_s = 0.0
        elif command == Command.RESET_FAULT:
            self.state = State.IDLE
            self.fault = Fault.NONE

    def _stop(self) -> None:
        """STOP: output off at once (unless the relay is stuck), active states go IDLE."""
        if self.physics.injected.ignore_stop and self.output_active:
            self.stuck_w_cm2 = max(self.emitted_w_cm2, SENSING_W_CM2)
        else:
            self.stuck_w_cm2 = 0.0
        if self.state in ACTIVE_STATES:
            self.state = State.IDLE
            self.last_feed = None
        self.target_w_cm2 = 0.0

    # ---- register access ----------------------------------------------------------------
    def write_holding(self, address: int, values: list[int], now: float) -> ExcCode | None:
        """Write holding registers all-or-nothing, in address order (FC 6 and FC 16)."""
        self.advance(now)
        if not values or address < 0 or address + len(values) > HOLDING_COUNT:
            return ExcCode.ILLEGAL_ADDRESS
        addresses = range(address, address + len(values))
        if not all(value_allowed(a, v) for a, v in zip(addresses, values, strict=True)):
            return ExcCode.ILLEGAL_VALUE
        if self.state in ACTIVE_STATES and any(a not in WRITABLE_WHILE_ACTIVE for a in addresses):
            return ExcCode.DEVICE_BUSY
        if HR_COMMAND in addresses and not self.command_allowed(Command(values[-1])):
            return ExcCode.DEVICE_BUSY
        for reg, value in zip(addresses, values, strict=True):
            if reg == HR_COMMAND:
                self.execute(Command(value), now)
                continue
            self.holding[reg] = value
            if reg == HR_HEARTBEAT:
                self.heartbeats += 1
                if self.state in ACTIVE_STATES:
                    self.last_feed = self.fed_at = now
        return None

    def read(self, func_code: int, address: int, count: int, now: float) -> list[int] | ExcCode:
        """Read `count` registers or bits of table `func_code` (2, 3 or 4) from `address`."""
        self.advance(now)
        tables = {
            FC_READ_HOLDING: self.holding,
            FC_READ_INPUT: self.input_registers(),
            FC_READ_DISCRETE: [int(bit) for bit in self.discrete_inputs()],
        }
        table = tables.get(func_code)
        if table is None:
            return ExcCode.ILLEGAL_FUNCTION
        if count < 1:
            return ExcCode.ILLEGAL_VALUE
        if address < 0 or address + count > len(table):
            return ExcCode.ILLEGAL_ADDRESS
        return list(table[address : address + count])

    def input_registers(self) -> list[int]:
        """The 16 input registers as the ICD defines them."""
        energy = min(0xFFFFFFFF, math.floor(self.energy_j))
        regs = [
            int(self.state),
            self.measured_power_reg,
            self.measured_intensity_reg,
            max(0, min(0xFFFF, round(self.physics.head_temp_c * 10.0))),
            max(0, min(100, round(self.coupling_pct))),
            math.ceil(self.remaining_s - 1e-9),
            int(self.fault),
            ERA_DECI_CM2,
            BNR_DECI,
            min(0xFFFF, math.floor(self.emission_s)),
            energy >> 16,
            energy & 0xFFFF,
            self.boot_counter & 0xFFFF,
            MODEL_CODE,
            (self.serial >> 16) & 0xFFFF,
            self.serial & 0xFFFF,
        ]
        assert len(regs) == INPUT_COUNT
        return regs

    def discrete_inputs(self) -> list[bool]:
        """The 4 discrete inputs: patient stop, coupled, head connected, output active."""
        bits = [self.physics.switch_pressed, self.coupled, self.physics.head_connected]
        bits.append(self.output_active)
        assert len(bits) == DISCRETE_COUNT
        return bits
