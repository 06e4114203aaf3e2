"""Link impairment settings shared by a transport adapter and the test port."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

LINK_MODES = ("ok", "drop", "delay", "corrupt")


@dataclass
class LinkControl:
    """Current link mode: `ok`, `drop` (silent both ways), `delay` (ms) or `corrupt` (rate).

    `rng` decides which frames `corrupt` hits; each unit passes one derived from `--seed`
    (and its index), so two runs with one seed corrupt the same frames.
    """

    rng: random.Random
    mode: str = "ok"
    delay_ms: int = 0
    corrupt_rate: float = 0.0

    @property
    def dropped(self) -> bool:
        """Whether the link is silent: requests are discarded and nothing is sent."""
        return self.mode == "drop"

    @property
    def delay_s(self) -> float:
        """Delay to add to every reply, in seconds."""
        return self.delay_ms / 1000.0 if self.mode == "delay" else 0.0

    def should_corrupt(self) -> bool:
        """Decide (seeded) whether the next outgoing frame is corrupted."""
        return self.mode == "corrupt" and self.rng.random() < self.corrupt_rate

    def flip_bit(self, frame: bytes) -> bytes:
        """Serial transports: in `corrupt` mode flip one seeded bit in that share of frames."""
        if not frame or not self.should_corrupt():
            return frame
        bit = self.rng.randrange(len(frame) * 8)
        corrupted = bytearray(frame)
        corrupted[bit // 8] ^= 1 << (bit % 8)
        return bytes(corrupted)

    def set(self, request: dict[str, Any]) -> None:
        """Apply a test-port `link` request; raises ValueError with a specific message."""
        mode = request.get("mode")
        if mode not in LINK_MODES:
            raise ValueError(f"unknown link mode {mode!r}; expected one of {list(LINK_MODES)}")
        if mode == "delay":
            ms = request.get("ms")
            if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= 60_000:
                raise ValueError("link delay needs integer 'ms' in 0..60000")
            self.delay_ms = ms
        if mode == "corrupt":
            rate = request.get("rate")
            if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
                raise ValueError("link corrupt needs number 'rate' in 0..1")
            self.corrupt_rate = float(rate)
        self.mode = str(mode)

    def clear(self) -> None:
        """Restore a healthy link."""
        self.mode, self.delay_ms, self.corrupt_rate = "ok", 0, 0.0

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the test port's `state` reply."""
        return {"mode": self.mode, "delay_ms": self.delay_ms, "corrupt_rate": self.corrupt_rate}
