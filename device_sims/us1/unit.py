"""One simulated US-1 unit with its own model, link, endpoints and test-port handler.

`--count N` builds N of these in one process; each is fully independent (state, serial
number, link mode, endpoints), and the test port routes requests by their `"unit"` field.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..link import LinkControl
from ..readyline import hostport
from .layout import LAYOUTS
from .modbus import US1Context, US1ModbusServer
from .model import US1Model
from .registers import SERIAL_NUMBER
from .rtu import US1RtuServer
from .testport import US1TestPort

Clock = Callable[[], float]


@dataclass(frozen=True)
class UnitSpec:
    """What unit `index` serves: TCP address (or None), RTU pty or not, seed, layout.

    `seed` (--seed + index) seeds the unit's physics and, derived from it, its link's
    `corrupt` choices.
    """

    index: int
    tcp: tuple[str, int] | None
    rtu_pty: bool
    seed: int
    layout: str = "icd"

    @property
    def serial(self) -> int:
        """Serial number: 21000001 for unit 0, then one more per unit."""
        return SERIAL_NUMBER + self.index


@dataclass
class US1Unit:
    """A running unit: model, link, servers and the endpoints announced in READY."""

    spec: UnitSpec
    model: US1Model
    link: LinkControl
    testport: US1TestPort
    tcp: US1ModbusServer | None = None
    rtu: US1RtuServer | None = None
    endpoints: dict[str, Any] = field(default_factory=dict)

    def ready_entry(self) -> dict[str, Any]:
        """This unit's entry in the READY line's `units` list."""
        return {"endpoints": self.endpoints, "serial": self.spec.serial}

    def on_reboot(self) -> None:
        """A power cycle: TCP connections close, RTU loses what it had half received."""
        if self.tcp is not None:
            self.tcp.drop_connections()
        if self.rtu is not None:
            self.rtu.forget_pending()

    async def close(self) -> None:
        """Stop serving every endpoint (the pty disappears)."""
        if self.tcp is not None:
            self.tcp.drop_connections()
            await self.tcp.shutdown()  # type: ignore[no-untyped-call]
        if self.rtu is not None:
            await self.rtu.shutdown()  # type: ignore[no-untyped-call]


async def start_unit(spec: UnitSpec, clock: Clock) -> US1Unit:
    """Build unit `spec.index` and start its endpoints."""
    model = US1Model(seed=spec.seed, now=clock(), serial=spec.serial)
    link = LinkControl(rng=random.Random(f"US-1 link {spec.seed}"))  # not the physics stream
    context = US1Context(model, clock, LAYOUTS[spec.layout])
    unit = US1Unit(spec, model, link, US1TestPort(model, link, clock, unit=spec.index))
    unit.testport.on_reboot = unit.on_reboot
    try:
        if spec.tcp is not None:
            unit.tcp = US1ModbusServer(context, link, spec.tcp)
            unit.endpoints["modbus_tcp"] = hostport(*await unit.tcp.start())
        if spec.rtu_pty:
            unit.rtu = US1RtuServer(context, link)
            unit.endpoints["rtu_pty"] = await unit.rtu.start()
    except BaseException:
        await unit.close()
        raise
    return unit
