"""Entry of the controller process: load the room, run until SIGTERM/SIGINT, then stop safely."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from pathlib import Path

from sessionconsole.core.controller import Controller, ControllerConfig, profile_hash
from sessionconsole.model.limits import load_clinical_limits
from sessionconsole.model.paths import config_dir, record_key_path
from sessionconsole.model.room import load_room
from sessionconsole.model.session import SessionPeople
from sessionconsole.model.vocabulary import load_vocabulary
from sessionconsole.record.signing import load_or_create_key

log = logging.getLogger(__name__)


def build_config(
    room_path: Path,
    db_path: Path,
    socket_path: Path,
    key_path: Path | None = None,
    people: SessionPeople | None = None,
) -> ControllerConfig:
    """Read the room, its profiles, the installation's limits and vocabulary, and load the
    record-signing key (key_path, else the installation's, created on first use)."""
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
        record_key=load_or_create_key(key_path or record_key_path()),
        people=people,
        biomedical_pin=os.environ.get("SESSIONCONSOLE_BIOMED_PIN") or None,
    )


class ControllerAlreadyRunning(RuntimeError):
    """Another controller holds this session database."""


def lock_database(db_path: Path) -> int:
    """Hold an exclusive lock beside the database for this process's lifetime.

    Two controllers on one database would each close the other's session as interrupted and
    take over its API socket; the second one is refused instead.
    """
    lock_path = db_path.with_name(db_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise ControllerAlreadyRunning(
            f"another controller is using {db_path} (lock {lock_path} is held)"
        ) from exc
    return fd


class RealtimeRefused(RuntimeError):
    """The real-time priority asked for could not be had."""


def use_realtime_priority(priority: int) -> None:
    """Run the calling thread (the loop's) under SCHED_FIFO at `priority`.

    Under CPU contention a normal thread can wait hundreds of milliseconds for a CPU while it
    is ready to run (measured: docs/PERFORMANCE.md); a SCHED_FIFO thread preempts every normal
    one. Linux applies this per thread, and SCHED_RESET_ON_FORK keeps every thread or process
    started later at normal priority, so only the loop is real-time and nothing it starts can
    take a CPU away from the rest of the machine.
    """
    try:
        policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
        os.sched_setscheduler(0, policy, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        raise RealtimeRefused(
            f"cannot run the core loop at real-time priority {priority} (SCHED_FIFO): {exc}; "
            "it needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least that (systemd: "
            "CPUSchedulingPolicy=fifo, or LimitRTPRIO=)"
        ) from exc


async def run_controller(config: ControllerConfig) -> None:
    """Run a controller until a signal asks it to stop."""
    lock_database(config.db_path)
    controller = Controller(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reason, status = "controller stopped by operator", "completed"
    try:
        if config.rt_priority is not None:
            use_realtime_priority(config.rt_priority)
        await controller.start()
        runner = asyncio.create_task(controller.run(), name="core-loop")
        waiter = asyncio.create_task(stop.wait(), name="signal-wait")
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if runner in done:
            runner.result()  # the loop ended on its own: surface the error
            reason, status = "core loop ended unexpectedly", "aborted"
    except BaseException as exc:
        reason, status = f"controller failed: {exc!r}", "aborted"
        raise
    finally:
        await controller.shutdown(reason, status)
