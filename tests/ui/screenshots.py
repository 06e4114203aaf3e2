"""Make the README screenshots from fixed snapshots: `python -m tests.ui.screenshots`.

Writes SVGs (Textual's export) into docs/images/ and converts them to PNG with rsvg-convert
(Debian: librsvg2-bin).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from sessionconsole.api.messages import NoteCommand, PainScoreCommand
from sessionconsole.record.billing import Service, bill
from sessionconsole.record.cli import bill_text
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.cli_runner import RecordsAccess
from tests.ui.fake_cli import FakeCli
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


MINUTE_NS = 60_000_000_000


def summary_bill(session_id: str) -> str:
    """`records bill` text for the fed session, from the real billing rules: ultrasound on two
    units, attended stimulation on the ES-2, unattended on the CX-3, 10 minutes each."""
    services = [
        Service("97035", 0, 10 * MINUTE_NS, "us1"),
        Service("97035", 0, 10 * MINUTE_NS, "cx3.us"),
        Service("97032", 0, 10 * MINUTE_NS, "es2.ch1 attended"),
        Service("97014", 0, 10 * MINUTE_NS, "cx3.stim unattended"),
    ]
    return bill_text(session_id, bill(services)) + "\n"


async def shoot_summary(name: str, size: tuple[int, int]) -> Path:
    """The summary screen (F4) after ten minutes of the three units, with the bill."""
    clock = FakeClock()
    session_id = "S-2026-11-12-0007"
    cli = FakeCli({("records", "bill"): (0, summary_bill(session_id))})
    records = RecordsAccess(db="/srv/sessionconsole/sessions.db", export_dir="exports", run=cli)
    app = SessionConsoleApp("/none.sock", "ana", autoconnect=False, clock=clock, records=records)
    async with app.run_test(size=size) as pilot:
        feed(app, clock, seconds=600, alarms=(OLD_ALARM, COUPLING_ALARM))
        app.tally.accepted(PainScoreCommand(when="before", score=6))
        app.tally.accepted(PainScoreCommand(when="after", score=3))
        app.tally.accepted(NoteCommand(text="left calf tender at the insertion"))
        await pilot.press("f4")
        await pilot.pause(0.5)
        svg = IMAGES / f"{name}.svg"
        svg.write_text(app.export_screenshot(title="SessionConsole"))
    return svg


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    shots = [asyncio.run(shoot(name, size, target)) for name, (size, target) in SHOTS.items()]
    shots.append(asyncio.run(shoot_summary("summary-100x30", (100, 30))))
    for svg in shots:
        subprocess.run(["rsvg-convert", str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
        print(svg.with_suffix(".png"))


if __name__ == "__main__":
    main()
