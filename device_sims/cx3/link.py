"""CX-3 link modes: the shared ones (ok, drop, delay, corrupt) plus MQTT `disconnect`."""

from __future__ import annotations

from typing import Any

from device_sims.link import LinkControl


class CX3LinkControl(LinkControl):
    """Adds `disconnect`: drop the broker connection (last will fires) until `ok`/`clear`."""

    def set(self, request: dict[str, Any]) -> None:
        """Apply a test-port `link` request; raises ValueError with a specific message."""
        if request.get("mode") == "disconnect":
            self.mode = "disconnect"
            return
        try:
            super().set(request)
        except ValueError as exc:
            if "unknown link mode" in str(exc):
                modes = ["ok", "drop", "disconnect", "delay", "corrupt"]
                raise ValueError(
                    f"unknown link mode {request.get('mode')!r}; expected {modes}"
                ) from exc
            raise

    @property
    def disconnected(self) -> bool:
        """Whether the unit must stay off the broker."""
        return self.mode == "disconnect"
