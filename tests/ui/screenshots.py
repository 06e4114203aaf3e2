"""Make the README screenshots from fixed snapshots: `python -m tests.ui.screenshots`.

Writes SVGs (Textual's export) into docs/images/ and converts them to PNG with rsvg-convert
(Debian: librsvg2-bin).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.ui.fixed_snapshots import COUPLING_ALARM, OLD_ALARM, FakeClock, feed, offline_app

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SHOTS = {
    "session-80x24": ((80, 24), "us1"),
    "session-wide": ((140, 44), "es2.ch1"),
}


async def shoot(name: str, size: tuple[int, int], target: str) -> Path:
    clock = FakeClock()
    app = offline_app(clock)
    async with app.run_test(size=size) as pilot:
        feed(app, clock, alarms=(OLD_ALARM, COUPLING_ALARM))
        app.session_screen.form.select(target)
        await pilot.pause(0.3)
        svg = IMAGES / f"{name}.svg"
        svg.write_text(app.export_screenshot(title="SessionConsole"))
    return svg


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, (size, target) in SHOTS.items():
        svg = asyncio.run(shoot(name, size, target))
        subprocess.run(["rsvg-convert", str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
        print(svg.with_suffix(".png"))


if __name__ == "__main__":
    main()
