"""A rule's condition on one output in one tick: what the kernel's judges return."""

from __future__ import annotations

from dataclasses import dataclass

from sessionconsole.safety.rules import Rule


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's condition on one device this tick.

    `physical` is the cause in the world (switch held, head hot); `device_latched` is the
    device's own fault latch, which only a reset (sent after an acknowledgement) clears.
    """

    rule: Rule
    message: str
    physical: bool
    device_latched: bool = False

    @property
    def present(self) -> bool:
        """The alarm's cause, for clearing: either the world or the device still holds it."""
        return self.physical or self.device_latched
