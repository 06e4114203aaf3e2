"""The last minutes of each output's values, for the panels' live plots (pure, time injected)."""

from __future__ import annotations

from collections import deque

from sessionconsole.api.messages import OutputSnapshot, UltrasoundSnapshot

WINDOW_S = 300.0
SAMPLE_EVERY_S = 0.5


def plotted_values(output: OutputSnapshot) -> dict[str, float | None]:
    """The values a panel plots: intensity and head temperature, or amplitude and impedance."""
    if isinstance(output, UltrasoundSnapshot):
        return {
            "intensity": output.intensity_measured_w_cm2,
            "temperature": output.head_temperature_c,
        }
    return {"amplitude": output.amplitude_measured_ma, "impedance": output.impedance_ohm}


class ValueHistory:
    """Samples per (output, series), one every `sample_every_s`, kept for `window_s`."""

    def __init__(self, window_s: float = WINDOW_S, sample_every_s: float = SAMPLE_EVERY_S) -> None:
        self.window_s = window_s
        self.sample_every_s = sample_every_s
        self._series: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._last_sample_s: dict[str, float] = {}

    def add(self, output: OutputSnapshot, now_s: float) -> None:
        """Record an output's plotted values (at most one sample per `sample_every_s`)."""
        last = self._last_sample_s.get(output.device)
        if last is not None and now_s - last < self.sample_every_s:
            return
        self._last_sample_s[output.device] = now_s
        for name, value in plotted_values(output).items():
            series = self._series.setdefault((output.device, name), deque())
            if value is not None:  # a missing value leaves a gap in time, not a zero
                series.append((now_s, value))
            while series and series[0][0] < now_s - self.window_s:
                series.popleft()

    def values(self, device: str, name: str) -> list[float]:
        """The kept samples of one series, oldest first."""
        return [v for _, v in self._series.get((device, name), ())]
