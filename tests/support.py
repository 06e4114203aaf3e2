"""Helpers for tests that run a real controller process against real simulators."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from sessionconsole.api.client import ControllerClient
from sessionconsole.drivers.base import DeviceDriver
from sessionconsole.record.store import Entry, SessionStore

PROFILE = """
kind = "us1"
name = "test US-1"
era_cm2 = 5.0
bnr = 4.2
watchdog_ms = {watchdog_ms}
heartbeat_interval_ms = 50

[link]
kind = "modbus_tcp"
host = "127.0.0.1"
port = {port}
request_timeout_ms = 100
telemetry_hz = 25.0
network_allowance_ms = 100

[limits]
max_intensity_w_cm2 = 2.0
max_time_s = 900
"""


def write_room(tmp: Path, port: int, watchdog_ms: int = 300) -> Path:
    """A room with one US-1 at `port`, its profile beside it."""
    (tmp / "us1.toml").write_text(PROFILE.format(port=port, watchdog_ms=watchdog_ms))
    room = tmp / "room.toml"
    room.write_text('name = "Test room"\n[devices.us1]\nprofile = "us1.toml"\n')
    return room


class ControllerProcess:
    """`sessionconsole controller` as a subprocess; ready once its socket accepts."""

    def __init__(
        self, room: Path, db: Path, socket_path: Path, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.room, self.db, self.socket_path = room, db, socket_path
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = db.with_suffix(".controller.log")

    def start(self, timeout_s: float = 10.0) -> ControllerProcess:
        """Launch and wait for the API socket."""
        if self.socket_path.exists():
            self.socket_path.unlink()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sessionconsole.cli",
                "controller",
                "--room",
                str(self.room),
                "--db",
                str(self.db),
                "--socket",
                str(self.socket_path),
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_path.open("ab"),
        )
        deadline = time.monotonic() + timeout_s
        while not self.socket_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited: {self.stderr_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"controller not ready: {self.stderr_path.read_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def stop(self) -> int | None:
        """SIGTERM and wait."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: the controller dies without any chance to stop outputs."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)


@contextlib.contextmanager
def running(ctl: ControllerProcess) -> Iterator[ControllerProcess]:
    """The controller started for the `with` block and stopped after it, however it ends."""
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop()


@contextlib.asynccontextmanager
async def connected(
    socket_path: Path, operator: str = "tester", client_name: str = "pytest"
) -> AsyncIterator[ControllerClient]:
    """An API client connected for the `async with` block and closed after it."""
    client = ControllerClient(str(socket_path), operator=operator, client_name=client_name)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


def entries(db: Path) -> list[Entry]:
    """Every entry of every session, read through a second connection."""
    store = SessionStore(db, create=False)
    try:
        return [e for s in store.sessions() for e in store.entries(s.session_id)]
    finally:
        store.close()


async def wait_for(predicate: Any, timeout_s: float = 5.0, interval_s: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy; returns its value or fails with the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def core_heartbeats(driver: DeviceDriver, period_s: float = 0.1) -> AsyncIterator[None]:
    """Stand in for the core loop: ask `driver` for a heartbeat every `period_s`."""

    async def pump() -> None:
        while True:
            driver.request_heartbeat()
            await asyncio.sleep(period_s)

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        task.cancel()


def icd_file(name: str) -> Path:
    """A file of the interface control documents: $SESSIONCONSOLE_SHARED/icd/NAME, else the
    `shared/` folder beside this repository (where CI and developers have it)."""
    import os

    base = os.environ.get("SESSIONCONSOLE_SHARED")
    root = Path(base) if base else Path(__file__).resolve().parents[2] / "shared"
    path = root / "icd" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: put the shared/ folder beside the repository "
            "or set SESSIONCONSOLE_SHARED"
        )
    return path


def controller_refusal(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`sessionconsole controller` on a one-US-1 room with extra ARGS, expected to refuse at
    start-up (an invalid option): run to its exit and return what it printed."""
    profile = Path(__file__).resolve().parents[1] / "config" / "profiles" / "us1-tcp.toml"
    room = tmp_path / "room.toml"
    room.write_text(f'name = "r"\n[devices.us1]\nprofile = "{profile}"\n')
    command = [sys.executable, "-m", "sessionconsole.cli", "controller", "--room", str(room)]
    command += ["--db", str(tmp_path / "s.db"), "--socket", str(tmp_path / "s.sock"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
