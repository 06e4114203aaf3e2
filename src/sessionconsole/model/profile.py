"""Device profiles: how to reach a unit, what it is, and the limits biomedical staff set for it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sessionconsole.model.timing import check_heartbeat_inside_watchdog, stale_limit_s

# One US-1 telemetry poll (ICD US-1): read 8 holding registers, 16 input registers and 4
# discrete inputs. An RTU request is 8 bytes (unit, function, address, count, CRC); a reply is
# unit, function, byte count, data and CRC (5 bytes + data).
RTU_POLL_FRAME_BYTES = (8, 5 + 2 * 8, 8, 5 + 2 * 16, 8, 5 + 1)
RTU_GAP_CHARS = 3.5  # silent interval before every RTU frame (Modbus over serial line, 2.5.1.1)
RTU_GAP_MIN_MS = 1.75  # the spec's fixed gap above 19200 baud


class ModbusTcpLink(BaseModel):
    """A Modbus TCP connection and its timing, from which the stale-telemetry limit follows."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    device_id: int = Field(default=1, ge=1, le=247)
    request_timeout_ms: int = Field(default=250, ge=10, le=5000)
    telemetry_hz: float = Field(default=25.0, ge=1.0, le=100.0)
    network_allowance_ms: int = Field(default=100, ge=0, le=5000)

    @property
    def stale_limit_s(self) -> float:
        """Telemetry older than this while an output runs counts as comms loss.

        Three missed polls plus the network allowance, so a slow RS-485 line and a loopback
        simulator are each judged by their own link.
        """
        return stale_limit_s(self.telemetry_hz, self.network_allowance_ms)


class ModbusRtuLink(BaseModel):
    """A Modbus RTU serial line and its timing; the stale limit counts the poll's wire time.

    The ICD line is 19200 baud 8E1. Parity "N" is allowed because a Linux pseudo-terminal (the
    simulator's `--rtu-pty`) keeps no parity bit: profiles for the simulator must say "N".
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["modbus_rtu"]
    port: str = Field(min_length=1, description="/dev/ttyUSB0, a pty path, or socket://host:port")
    baudrate: int = Field(default=19200, ge=9600, le=115200)
    parity: Literal["E", "N"] = Field(default="E", description="ICD: E; a pty needs N")
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[8] = 8
    device_id: int = Field(default=1, ge=1, le=247)
    request_timeout_ms: int = Field(default=250, ge=10, le=5000)
    telemetry_hz: float = Field(
        default=10.0, ge=1.0, le=100.0, description="at 19200 8E1 one poll takes 62 ms on the wire"
    )
    network_allowance_ms: int = Field(default=100, ge=0, le=5000)

    @property
    def bits_per_char(self) -> int:
        """Start bit, data bits, parity bit if any, stop bits."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def poll_wire_ms(self) -> float:
        """Time one telemetry poll (three requests and their replies) takes on the line."""
        char_ms = 1000.0 * self.bits_per_char / self.baudrate
        gap_ms = max(RTU_GAP_CHARS * char_ms, RTU_GAP_MIN_MS)
        frames = RTU_POLL_FRAME_BYTES
        return sum(frames) * char_ms + len(frames) * gap_ms

    @property
    def stale_limit_s(self) -> float:
        """Telemetry older than this while an output runs counts as comms loss.

        Three missed poll cycles, where a cycle is the poll period or, on a slow line, the
        poll's wire time; plus one more wire time (the reading is stamped when its last reply
        has arrived, and a write may go ahead of a poll); plus the network allowance.
        """
        return stale_limit_s(self.telemetry_hz, self.network_allowance_ms, self.poll_wire_ms)


MODBUS_LINKS: dict[str, type[ModbusTcpLink | ModbusRtuLink]] = {
    "modbus_tcp": ModbusTcpLink,
    "modbus_rtu": ModbusRtuLink,
}


def _validate_link_by_kind(value: Any) -> Any:
    """Validate a known link kind directly, so errors read `link.port`, not `link.modbus_tcp.port`.

    An unknown or missing kind falls through to the discriminated union, which names the kinds.
    """
    kind = value.get("kind") if isinstance(value, dict) else None
    model = MODBUS_LINKS.get(kind) if isinstance(kind, str) else None
    return value if model is None else model.model_validate(value)


ModbusLink = Annotated[
    ModbusTcpLink | ModbusRtuLink,
    Field(discriminator="kind"),
    BeforeValidator(_validate_link_by_kind),
]


class UltrasoundProfileLimits(BaseModel):
    """Limits biomedical staff set for one ultrasound unit; they may only tighten clinical caps."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_intensity_w_cm2: float = Field(gt=0.0, le=3.0)
    max_time_s: int = Field(ge=1, le=1800)


class Us1Profile(BaseModel):
    """A US-1 therapeutic ultrasound unit on Modbus TCP or RTU (ICD US-1, version 2)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["us1"]
    name: str = Field(min_length=1)
    era_cm2: float = Field(gt=0.0, le=20.0, description="effective radiating area on the head")
    bnr: float = Field(ge=1.0, le=8.0, description="beam non-uniformity ratio on the head")
    watchdog_ms: int = Field(default=1000, ge=100, le=5000)
    heartbeat_interval_ms: int = Field(default=100, ge=20, le=2500)
    link: ModbusLink
    limits: UltrasoundProfileLimits

    @model_validator(mode="after")
    def _heartbeat_inside_watchdog(self) -> Us1Profile:
        check_heartbeat_inside_watchdog(self.heartbeat_interval_ms, self.watchdog_ms)
        return self


DeviceProfile = Us1Profile
