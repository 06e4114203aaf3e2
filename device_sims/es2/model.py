"""Pure ES-2 unit model: two channels, watchdog, telemetry stream, device-side protections.

No clock, no I/O: every entry point takes `now` (seconds, any monotonic origin) and advances the
unit to that instant first, so tests drive it with made-up times. Frames the device sends on
its own (seq 0) collect in `outbox` as field lists; the transport layer takes and sends them.
Command methods take already-parsed values and return a NAK code, or None to ACK.
"""

from __future__ import annotations

from dataclasses import dataclass

from .channel import Channel, ChannelState, Config, Fault
from .frames import format_number
from .physics import CHANNELS, Physics

MAX_STEP_S = 0.02
IDLE_WAKE_S = 0.5
DEFAULT_WATCHDOG_MS = 500
ELECTRODE_LIMIT_OHM = 10_000.0
OVERCURRENT_MARGIN = 0.10
FIRMWARE = "2.0-sim"


@dataclass(frozen=True)
class Remembered:
    """The last executed request (content between `$` and `*`) and the reply it got."""

    content: bytes
    reply: tuple[str, ...]


class ES2Model:
    """One simulated ES-2 unit; the physical world lives in `physics` and survives reboot."""

    def __init__(
        self,
        serial: str = "ES2-000001",
        seed: int = 0,
        now: float = 0.0,
        physics: Physics | None = None,
    ) -> None:
        """Power the unit on at time `now` (boot counter 1, EVT,BOOT queued)."""
        self.serial = serial
        self.physics = physics if physics is not None else Physics(seed=seed)
        self.boot_counter = 0
        self.outbox: list[list[str]] = []
        self.reboot(now)

    def reboot(self, now: float) -> None:
        """Power-cycle: configuration, counters and request memory lost; outputs off."""
        self.boot_counter += 1
        self.last_time = now
        self.channels = {ch: Channel(ch) for ch in CHANNELS}
        self.measured = dict.fromkeys(CHANNELS, 0.0)
        self.watchdog_ms = DEFAULT_WATCHDOG_MS
        self.last_feed: float | None = None
        self.fed_at: float | None = None  # last arming or HB taken, kept after a trip (test port)
        self.tripped_at: float | None = None  # when the watchdog last fired
        self.stream_hz = 0
        self.next_tel: float | None = None
        self.dropped = 0
        self.syntax = 0
        self.executed = 0
        self.repeats = 0
        self.heartbeats = 0
        self.memory: Remembered | None = None
        self.outbox.clear()
        self.outbox.append(["EVT", "BOOT"])

    # ---- time -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether any channel runs (RAMP, ON or OFFPHASE)."""
        return any(c.running for c in self.channels.values())

    def advance(self, now: float) -> None:
        """Advance the unit to time `now` in steps of at most MAX_STEP_S."""
        while now > self.last_time:
            dt = min(MAX_STEP_S, now - self.last_time)
            self.last_time = now if now - self.last_time - dt < 1e-9 else self.last_time + dt
            self._step(dt)

    def next_deadline(self) -> float:
        """When the unit next needs stepping: watchdog expiry, telemetry, or a periodic step."""
        busy = self.running or self.physics.switch_pressed
        busy = busy or any(c.stuck_ma > 0.0 for c in self.channels.values())
        deadlines = [self.last_time + (MAX_STEP_S if busy else IDLE_WAKE_S)]
        if self.last_feed is not None:
            deadlines.append(self.last_feed + self.watchdog_ms / 1000.0)
        if self.next_tel is not None:
            deadlines.append(self.next_tel)
        return min(deadlines)

    def _step(self, dt: float) -> None:
        """One step of length `dt` ending at `self.last_time`: physics, outputs, protections."""
        self.physics.step(dt)
        for ch, channel in self.channels.items():
            channel.step(dt)
            self.measured[ch] = self.physics.measured_ma(ch, channel.driven_ma, ELECTRODE_LIMIT_OHM)
            self._protect(ch, channel)
        self._check_watchdog()
        self._stream()

    def _protect(self, ch: int, channel: Channel) -> None:
        """Electrode-off and over-current checks of a running channel."""
        if not channel.running:
            return
        if self.physics.impedance_ohm(ch) > ELECTRODE_LIMIT_OHM:
            self._device_stop([ch], Fault.ELECTRODE, ["EVT", "ELECTRODE", str(ch)])
        elif channel.output_ma > 0.0 and self.measured[ch] > channel.output_ma * (
            1.0 + OVERCURRENT_MARGIN
        ):
            self.physics.injected.overcurrent_pending.discard(ch)
            self._device_stop([ch], Fault.OVERCURRENT, ["EVT", "OVERCURRENT", str(ch)])

    def _check_watchdog(self) -> None:
        """No HB within the timeout while a channel runs: stop both, latch 01 on both."""
        if self.last_feed is None or not self.running:
            return
        if self.last_time - self.last_feed >= self.watchdog_ms / 1000.0 - 1e-9:
            self.tripped_at = self.last_time
            self._device_stop(list(CHANNELS), Fault.WATCHDOG, ["EVT", "WATCHDOG"])

    def _device_stop(self, chs: list[int], fault: Fault, event: list[str]) -> None:
        """Stop channels with a latched fault and queue the event frame."""
        for ch in chs:
            self.channels[ch].latch(fault)
            self.measured[ch] = 0.0
        self._disarm_if_idle()
        self.outbox.append(event)

    def _disarm_if_idle(self) -> None:
        """The watchdog only watches while a channel runs."""
        if not self.running:
            self.last_feed = None

    def _stream(self) -> None:
        """Queue one TEL frame per channel when the stream period is due."""
        if self.next_tel is None or self.last_time < self.next_tel - 1e-9:
            return
        period = 1.0 / self.stream_hz
        self.next_tel += period
        if self.next_tel <= self.last_time:  # fell behind: no bursts of stale frames
            self.next_tel = self.last_time + period
        for ch in CHANNELS:
            fields = self.channel_fields(ch)
            self.outbox.append(["TEL", fields[0], fields[1], *fields[3:]])

    # ---- reports ----------------------------------------------------------------------
    def channel_fields(self, ch: int) -> list[str]:
        """ch, state, target_ma, meas_ma, impedance_ohm, faults: as STAT carries them."""
        channel = self.channels[ch]
        return [
            str(ch),
            channel.state.value,
            format_number(channel.target_ma),
            format_number(self.measured[ch]),
            format_number(self.physics.impedance_ohm(ch), 0),
            f"{channel.faults:02X}",
        ]

    def take_outbox(self) -> list[list[str]]:
        """Remove and return the queued unsolicited frames (field lists, seq 0)."""
        frames, self.outbox = self.outbox, []
        return frames

    # ---- commands (values already parsed and range-checked) -----------------------------
    def configure(self, ch: int, config: Config) -> str | None:
        """CFG: only a stopped channel."""
        if self.channels[ch].running:
            return "STATE"
        self.channels[ch].config = config
        return None

    def amplitude(self, ch: int, ma: float) -> None:
        """AMP: set the target; a running channel slews to it."""
        self.channels[ch].set_target(ma)

    def run(self, ch: int, now: float) -> str | None:
        """RUN: refused while running, with a latched fault, or unconfigured; arms the watchdog."""
        channel = self.channels[ch]
        if channel.running:
            return "STATE"
        if channel.faults:
            return "FAULT"
        if channel.config is None:
            return "NOCFG"
        channel.start()
        if self.last_feed is None:
            self.last_feed = self.fed_at = now
        return None

    def stop(self, chs: list[int]) -> None:
        """STOP: output off at once; a stuck relay (test-port fault) keeps driving."""
        for ch in chs:
            self.channels[ch].stop(relay_stuck=self.physics.injected.ignore_stop)
            self.measured[ch] = self.physics.measured_ma(
                ch, self.channels[ch].driven_ma, ELECTRODE_LIMIT_OHM
            )
        self._disarm_if_idle()

    def reset(self, ch: int) -> str | None:
        """RST: clear latched faults, only while stopped and once every cause is gone."""
        channel = self.channels[ch]
        if channel.running or self.cause_present(ch):
            return "STATE"
        channel.faults = 0
        return None

    def cause_present(self, ch: int) -> bool:
        """Whether the cause of a latched fault of channel `ch` is still there."""
        faults = self.channels[ch].faults
        if faults & Fault.PATIENT_STOP and self.physics.switch_pressed:
            return True
        return bool(
            faults & Fault.ELECTRODE and self.physics.impedance_ohm(ch) >= ELECTRODE_LIMIT_OHM
        )

    def heartbeat(self, now: float) -> None:
        """HB: the only thing that feeds an armed watchdog."""
        self.heartbeats += 1
        if self.last_feed is not None:
            self.last_feed = self.fed_at = now

    def set_watchdog(self, ms: int) -> None:
        """WDG: new timeout (range-checked by the caller)."""
        self.watchdog_ms = ms

    def stream(self, hz: int, now: float) -> None:
        """STREAM: telemetry rate, 0 = off; the first TEL pair follows one period later."""
        self.stream_hz = hz
        self.next_tel = now + 1.0 / hz if hz else None

    def identity(self) -> list[str]:
        """ID? reply fields."""
        return ["ID", "ES-2", self.serial, FIRMWARE, str(len(CHANNELS))]

    def errors(self) -> list[str]:
        """ERR? reply fields."""
        return ["ERR", str(self.dropped), str(self.syntax)]

    # ---- the physical world -------------------------------------------------------------
    def patient_stop(self, now: float) -> None:
        """The hand switch was pressed: both channels stopped, 02 latched on both, EVT,PSTOP."""
        self.advance(now)
        self.physics.press_switch()
        self._device_stop(list(CHANNELS), Fault.PATIENT_STOP, ["EVT", "PSTOP"])

    def state_of(self, ch: int) -> ChannelState:
        """Reported state of channel `ch`."""
        return self.channels[ch].state
