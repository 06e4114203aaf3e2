"""The `es2_sim` pytest fixture: a started ES-2 simulator on a pty and on TCP.

Import it into a conftest or plugin (`from sessionconsole.testing.es2 import es2_sim`); the
READY endpoints are `sim.endpoints["serial_pty"]` (a path) and `sim.endpoints["serial_url"]`
(`socket://127.0.0.1:PORT`), both one and the same unit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import SimProcess

ES2_ARGS = ("--pty", "--tcp", "127.0.0.1:0")


@pytest.fixture
def es2_sim() -> Iterator[SimProcess]:
    """A started ES-2 simulator (pty + TCP on a free loopback port), stopped after the test."""
    sim = SimProcess("es2", ES2_ARGS).start()
    try:
        yield sim
    finally:
        sim.stop()
