"""Entry of the controller process: load the room, run until SIGTERM/SIGINT, then stop safely."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from sessionconsole.core.controller import Controller, ControllerConfig, profile_hash
from sessionconsole.model.limits import load_clinical_limits
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import load_room
from sessionconsole.model.vocabulary import load_vocabulary

log = logging.getLogger(__name__)


def build_config(room_path: Path, db_path: Path, socket_path: Path) -> ControllerConfig:
    """Read the room, its profiles and the installation's limits and vocabulary."""
    room, profiles = load_room(room_path)
    hashes = {
        name: profile_hash(room_path.parent / device.profile)
        for name, device in room.devices.items()
    }
    base = config_dir()
    return ControllerConfig(
        room_name=room.name,
        profiles=profiles,
        profile_hashes=hashes,
        clinical=load_clinical_limits(base / "clinical-limits.toml"),
        vocabulary=load_vocabulary(base / "vocabulary.toml"),
        db_path=db_path,
        socket_path=socket_path,
    )


async def run_controller(config: ControllerConfig) -> None:
    """Run a controller until a signal asks it to stop."""
    controller = Controller(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await controller.start()
        runner = asyncio.create_task(controller.run(), name="core-loop")
        waiter = asyncio.create_task(stop.wait(), name="signal-wait")
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # the loop ended on its own: surface the error
        waiter.cancel()
    finally:
        await controller.shutdown()
