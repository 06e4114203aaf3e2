"""The `cx3_sim` fixture: a CX-3 simulator on the session's mosquitto, unique serial per test.

Needs the `mosquitto_broker` fixture (`sessionconsole.testing.mqtt`) registered too.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from sessionconsole.testing import SimProcess
from sessionconsole.testing.mqtt import Mosquitto

_serials = itertools.count(1)


def unique_serial() -> str:
    """A serial no other test (or xdist worker) uses: `CX3-<pid>-<n>`."""
    return f"CX3-{os.getpid()}-{next(_serials):04d}"


def cx3_sim_for(broker: Mosquitto, serial: str | None = None, *args: str) -> SimProcess:
    """A not-yet-started CX-3 simulator on `broker` (a unique serial unless given)."""
    serial = serial or unique_serial()
    return SimProcess("cx3", args=["--broker", broker.url, "--serial", serial, *args])


@pytest.fixture
def cx3_sim(mosquitto_broker: Mosquitto) -> Iterator[SimProcess]:
    """A started CX-3 simulator with a unique serial, stopped after the test."""
    sim = cx3_sim_for(mosquitto_broker).start()
    try:
        yield sim
    finally:
        sim.stop()
