"""Every simulator fault over the transports the demo stack does not use (issue #5).

The demo drives the ES-2 on a pseudo-terminal and the US-1 on Modbus TCP. Here one room has
the ES-2 on TCP (`socket://`, as the ES-2 ICD allows) and another the US-1 on Modbus RTU on a
pty; the other unit stays on its demo transport. In each, `session run --room` runs, through a
real controller, every example script that names the unit whose transport changed, plus the
scripts in `examples/scripts/<transport>/`, whose expectation holds on that transport only.

Simulators are started per test: one is ready in about 0.15 s, against 2-4 s for the session
itself, and a shared one would carry a fault into the next script that `clear` and a reboot do
not undo (a head at 43 °C cools with a 120 s time constant).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessionconsole.testing import SimProcess
from tests.scripted.support import EXAMPLES, REPO, assert_script_held, session_run

PROFILES = REPO / "config" / "profiles"


@dataclass(frozen=True)
class Transport:
    """A room that moves one unit off its demo transport."""

    name: str  # the test id, and the folder of the scripts for this transport only
    unit: str  # the unit whose transport changes
    es2_args: tuple[str, ...]
    us1_args: tuple[str, ...]


# Each simulator serves only the transport under test, so no script can pass over another.
ES2_TCP = Transport("es2-tcp", "es2", ("--tcp", "127.0.0.1:0"), ())
US1_RTU = Transport("us1-rtu", "us1", ("--pty",), ("--rtu-pty",))
TRANSPORTS = (ES2_TCP, US1_RTU)

# ../shared/icd/SIMULATORS.md: the test-port faults each unit takes ("link disconnect" is for
# MQTT units only; overtemp, output_deviation and head_disconnect need an ultrasound head).
APPLICABLE = {
    "es2": {
        "patient_stop",
        "electrode_off",
        "overcurrent",
        "ignore_stop",
        "link drop",
        "link delay",
        "link corrupt",
        "reboot",
    },
    "us1": {
        "patient_stop",
        "overtemp",
        "output_deviation",
        "head_disconnect",
        "ignore_stop",
        "link drop",
        "link delay",
        "link corrupt",
        "reboot",
    },
}


def steps_of(script: Path) -> list[dict[str, Any]]:
    """The script's steps, as written."""
    steps: list[dict[str, Any]] = tomllib.loads(script.read_text())["step"]
    return steps


def scripts_for(transport: Transport) -> list[Path]:
    """The example scripts that name the moved unit, then those for this transport only."""
    shared = [
        script
        for script in sorted(EXAMPLES.glob("*.toml"))
        if transport.unit in {step.get("device") for step in steps_of(script)}
    ]
    return shared + sorted((EXAMPLES / transport.name).glob("*.toml"))


def faults_of(script: Path) -> set[tuple[str, str]]:
    """(unit, fault) for every fault the script injects through a test port."""
    faults = set()
    for step in steps_of(script):
        if step["do"] != "sim":
            continue
        request = step["request"]
        if request["op"] == "inject":
            faults.add((step["device"], request["fault"]))
        elif request["op"] == "link" and request["mode"] != "ok":
            faults.add((step["device"], f"link {request['mode']}"))
        elif request["op"] == "reboot":
            faults.add((step["device"], "reboot"))
    return faults


def room_toml(transport: Transport, es2: SimProcess, us1: SimProcess) -> str:
    """A room naming the units `es2` and `us1` with the bundled profiles, linked to these
    simulators (as `sessionconsole demo` writes its room), with their test ports."""
    if transport is ES2_TCP:
        es2_link = f'port = "{es2.endpoints["serial_url"]}"\n'  # socket://127.0.0.1:PORT
    else:
        es2_link = f'port = "{es2.endpoints["serial_pty"]}"\n'
    if transport is US1_RTU:
        # A pty keeps no parity bit: the simulator's RTU is 8N1 (SIMULATORS.md).
        us1_profile, us1_link = "us1-rtu.toml", f'port = "{us1.endpoints["rtu_pty"]}"\n'
        us1_link += 'parity = "N"\n'
    else:
        us1_profile, us1_link = "us1-tcp.toml", f"port = {us1.modbus_tcp[1]}\n"
    units = {
        "es2": ("es2-serial.toml", es2, es2_link),
        "us1": (us1_profile, us1, us1_link),
    }
    text = f'name = "Fault room, {transport.name}"\n'
    for unit, (profile, sim, link) in units.items():
        text += (
            f'\n[devices.{unit}]\nprofile = "{PROFILES / profile}"\n'
            f'sim_control = "{sim.control}"\n\n[devices.{unit}.link]\n{link}'
        )
    return text


@contextmanager
def room_of(transport: Transport, folder: Path) -> Iterator[tuple[Path, SimProcess, SimProcess]]:
    """Start both simulators side by side and write their room; stop them afterwards."""
    es2 = SimProcess("es2", transport.es2_args).launch()
    us1 = SimProcess("us1", transport.us1_args).launch()
    try:
        es2.wait_ready()
        us1.wait_ready()
        room = folder / "room.toml"
        room.write_text(room_toml(transport, es2, us1))
        yield room, es2, us1
    finally:
        es2.stop()
        us1.stop()


def outputs_on(es2: SimProcess, us1: SimProcess) -> dict[str, bool]:
    """Whether each output drives anything, as the simulated units themselves say."""
    channels = es2.request({"op": "state"})["channels"]
    on = {f"es2.ch{c['ch']}": c["output_ma"] > 0 for c in channels}
    on["us1"] = bool(us1.request({"op": "state"})["physics"]["output_active"])
    return on


@pytest.mark.parametrize("transport", TRANSPORTS, ids=[t.name for t in TRANSPORTS])
def test_every_fault_of_the_moved_unit_is_injected_over_its_transport(
    transport: Transport,
) -> None:
    """The scripts run over this transport inject every fault the moved unit takes, so a new
    fault in SIMULATORS.md, or a script moved away, shows here."""
    injected = {
        fault
        for script in scripts_for(transport)
        for unit, fault in faults_of(script)
        if unit == transport.unit
    }
    assert injected == APPLICABLE[transport.unit]


CASES = [(t, script) for t in TRANSPORTS for script in scripts_for(t)]


@pytest.mark.parametrize(
    ("transport", "script"),
    CASES,
    ids=[f"{t.name}-{'' if s.parent == EXAMPLES else 'only-'}{s.stem}" for t, s in CASES],
)
def test_fault_script_holds_over_the_transport(
    transport: Transport, script: Path, tmp_path: Path
) -> None:
    """The console reacts to the fault as the script expects, over this transport too."""
    with room_of(transport, tmp_path) as (room, es2, us1):
        db = tmp_path / "sessions.db"
        run = session_run("--room", str(room), "--script", str(script), "--db", str(db))
        assert_script_held(script, run, db)
        # After the session the units themselves drive nothing (not only the console's view).
        assert not any(outputs_on(es2, us1).values()), outputs_on(es2, us1)
