"""How a unit's registers appear on the wire: the ICD's map, or another vendor's over the same unit.

A layout turns Modbus reads and writes (function code, address, values) into calls on one
`US1Model`, so every layout serves the same simulated unit (state machine, physics, test port)
and only the register map differs. `ICD` is the US-1 ICD itself; `vendor_b.VENDOR_B` is a
second vendor's map used to prove the generic driver.
"""

from __future__ import annotations

from typing import Protocol

from .model import US1Model
from .registers import ExcCode
from .vendor_b import VENDOR_B

DEVICE_ID = 1


class Layout(Protocol):
    """A register map over a `US1Model`: the unit id it answers and its reads and writes."""

    name: str
    device_id: int

    def read(
        self, model: US1Model, func_code: int, address: int, count: int, now: float
    ) -> list[int] | ExcCode:
        """Values of `count` registers/bits of function code `func_code` (2, 3 or 4)."""
        ...

    def write(self, model: US1Model, address: int, values: list[int], now: float) -> ExcCode | None:
        """Write holding registers (FC 6 and 16); an exception code refuses the whole write."""
        ...


class IcdLayout:
    """The US-1 ICD map: the model's own registers, unit id 1."""

    name = "icd"
    device_id = DEVICE_ID

    def read(
        self, model: US1Model, func_code: int, address: int, count: int, now: float
    ) -> list[int] | ExcCode:
        """Read straight from the model."""
        return model.read(func_code, address, count, now)

    def write(self, model: US1Model, address: int, values: list[int], now: float) -> ExcCode | None:
        """Write straight through the model's all-or-nothing validation."""
        return model.write_holding(address, values, now)


ICD = IcdLayout()
LAYOUTS: dict[str, Layout] = {ICD.name: ICD, VENDOR_B.name: VENDOR_B}
