"""Shared fixtures: a real US-1 simulator, a controller process driving it, an API client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sessionconsole.api.client import ControllerClient
from sessionconsole.testing import SimProcess
from tests.support import ControllerProcess, connected, running, write_room


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    """A US-1 simulator on a free loopback port."""
    process = SimProcess("us1").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def controller(sim: SimProcess, tmp_path: Path) -> Iterator[ControllerProcess]:
    """A controller driving `sim`, watchdog 300 ms."""
    _, port = sim.modbus_tcp
    room = write_room(tmp_path, port)
    with running(ControllerProcess(room, tmp_path / "sessions.db", tmp_path / "api.sock")) as ctl:
        yield ctl


@pytest.fixture
async def client(controller: ControllerProcess) -> AsyncIterator[ControllerClient]:
    """A connected API client, operator 'tester'."""
    async with connected(controller.socket_path) as c:
        yield c


BIOMED_PIN = "4711"  # the biomedical role's PIN in every controller a test starts


@pytest.fixture(autouse=True)
def _record_key_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test (and every process it starts) signs records with a throw-away key file,
    never with the real installation key in ~/.config."""
    key_dir = tmp_path_factory.mktemp("record-key")
    monkeypatch.setenv("SESSIONCONSOLE_RECORD_KEY", str(key_dir / "record.key"))
    monkeypatch.setenv("SESSIONCONSOLE_BIOMED_PIN", BIOMED_PIN)  # controllers tests start
