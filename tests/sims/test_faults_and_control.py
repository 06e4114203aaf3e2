"""`--faults FILE` and `--control HOST:PORT` on every simulator, as SIMULATORS.md states them.

A schedule's entries fire in `t_s` order and never before their `t_s` (counted from READY);
an entry's `"unit"` picks one unit of a `--count N` process; a malformed file ends the
simulator before READY with a message naming the file and the problem; an explicit test port
address is the one served.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import unique_serial
from sessionconsole.testing.mqtt import Mosquitto


@dataclass(frozen=True)
class Model:
    """How a test pins a quantity on one model and reads it back from `state`."""

    name: str
    model: str  # the READY line's and `state`'s model name
    pin: Callable[[float | None], dict[str, Any]]
    pinned: Callable[[dict[str, Any]], float | None]
    values: tuple[float, float, float]
    foreign_fault: str  # a fault of another model: not this one's


MODELS = {
    "us1": Model(
        "us1",
        "US-1",
        lambda v: {"op": "set", "coupling_pct": v},
        lambda s: s["injected"]["coupling_pct"],
        (10.0, 20.0, 30.0),
        "electrode_off",
    ),
    "es2": Model(
        "es2",
        "ES-2",
        lambda v: {"op": "set", "impedance_ohm": v, "ch": 1},
        lambda s: s["injected"]["impedance_ohm"].get("1"),
        (600.0, 700.0, 800.0),
        "overtemp",
    ),
    "cx3": Model(
        "cx3",
        "CX-3",
        lambda v: {"op": "set", "coupling_pct": v},
        lambda s: s["injected"]["coupling_pct"],
        (10.0, 20.0, 30.0),
        "stuck_valve",
    ),
}


@pytest.fixture(params=sorted(MODELS))
def model(request: pytest.FixtureRequest) -> Model:
    return MODELS[request.param]


@pytest.fixture
def sim_args(model: Model, request: pytest.FixtureRequest) -> list[str]:
    """Arguments every start of `model` needs (the CX-3: the session's broker)."""
    if model.name != "cx3":
        return []
    broker: Mosquitto = request.getfixturevalue("mosquitto_broker")
    return ["--broker", broker.url, "--serial", unique_serial()]


def schedule_toml(entries: list[tuple[float, dict[str, Any]]]) -> str:
    """A --faults file: one [[at]] table per entry (inline tables written as TOML)."""

    out = []
    for t_s, request in entries:  # JSON numbers and strings are TOML scalars too
        inline = ", ".join(f"{key} = {json.dumps(v)}" for key, v in request.items())
        out.append(f"[[at]]\nt_s = {t_s}\nrequest = {{{inline}}}\n")
    return "\n".join(out)


def poll(
    sim: SimProcess, until: Callable[[dict[str, Any]], bool], unit: int = 0, timeout: float = 8.0
) -> list[dict[str, Any]]:
    """Unit `unit`'s `state` replies, about every 20 ms, up to the first for which `until` holds."""
    replies = []
    deadline = time.monotonic() + timeout
    while True:
        reply = sim.request({"op": "state", "unit": unit})
        assert reply["ok"], reply
        replies.append(reply)
        if until(reply):
            return replies
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {replies[-1]}"
        time.sleep(0.02)


def test_entries_fire_in_order_and_never_before_their_time(
    model: Model, sim_args: list[str], tmp_path: Path
) -> None:
    v1, v2, v3 = model.values
    faults = tmp_path / "faults.toml"
    # Written out of order: the times, not the file's order, decide.
    clear = {"op": "clear"}
    faults.write_text(
        schedule_toml(
            [(1.8, model.pin(v3)), (0.6, model.pin(v1)), (2.4, clear), (1.2, model.pin(v2))]
        )
    )
    with SimProcess(model.name, [*sim_args, "--faults", str(faults)]) as sim:
        replies = poll(sim, lambda s: model.pinned(s) == v3)
        replies += poll(sim, lambda s: model.pinned(s) is None)
    seen = [(r["t_s"], model.pinned(r)) for r in replies]
    changes = [(t, v) for i, (t, v) in enumerate(seen) if i == 0 or v != seen[i - 1][1]]
    assert [v for _, v in changes] == [None, v1, v2, v3, None], seen
    # `t_s` in a state reply counts from the simulator's start, which is before READY: a value
    # showing at a device time below its entry's t_s means the entry fired early.
    for t_s, (first, value) in zip((0.6, 1.2, 1.8, 2.4), changes[1:], strict=True):
        assert t_s <= first <= t_s + 3.0, (value, t_s, first, seen)


def test_an_entry_with_unit_reaches_only_that_unit(
    model: Model, sim_args: list[str], tmp_path: Path
) -> None:
    v0, v1, _ = model.values
    faults = tmp_path / "faults.toml"
    faults.write_text(schedule_toml([(0.2, {**model.pin(v1), "unit": 1}), (0.2, model.pin(v0))]))
    with SimProcess(model.name, [*sim_args, "--count", "3", "--faults", str(faults)]) as sim:
        poll(sim, lambda s: model.pinned(s) == v0)  # no "unit": unit 0
        poll(sim, lambda s: model.pinned(s) == v1, unit=1)
        time.sleep(0.3)  # an entry that reached a wrong unit as well would show by now
        states = [sim.request({"op": "state", "unit": i}) for i in range(3)]
    assert [s["unit"] for s in states] == [0, 1, 2]
    assert [model.pinned(s) for s in states] == [v0, v1, None], states


MALFORMED = {
    "bad_toml": ('[[at]\nt_s = 1.0\nrequest = {op = "clear"}\n', "not valid TOML"),
    "negative_t_s": ('[[at]]\nt_s = -1.0\nrequest = {op = "clear"}\n', "at[0].t_s must be >= 0"),
    "nan_t_s": ('[[at]]\nt_s = nan\nrequest = {op = "clear"}\n', "at[0].t_s must be a finite"),
    "unknown_op": ('[[at]]\nt_s = 1.0\nrequest = {op = "explode"}\n', "op 'explode'"),
    "no_such_unit": ('[[at]]\nt_s = 1\nrequest = {op = "clear", unit = 1}\n', "unit 1 is not"),
    "misspelt_table": ('[[At]]\nt_s = 1.0\nrequest = {op = "clear"}\n', "unknown key(s) ['At']"),
    "misspelt_key": ('[[at]]\nts = 1.0\nrequest = {op = "clear"}\n', "unknown key(s) ['ts']"),
    "misspelt_set": ('[[at]]\nt_s = 1\nrequest = {op = "set", coupling_pc = 20}\n', "cannot set"),
    "bad_delay": (
        '[[at]]\nt_s = 1\nrequest = {op = "link", mode = "delay"}\n',
        "link delay needs integer 'ms'",
    ),
    "bad_channel": (
        '[[at]]\nt_s = 1\nrequest = {op = "inject", fault = "patient_stop", ch = 3}\n',
        "ch 3 is not one of",
    ),
}


@pytest.mark.parametrize("case", [*sorted(MALFORMED), "foreign_fault", "missing_file"])
def test_a_malformed_schedule_ends_the_simulator_with_a_message(
    model: Model, sim_args: list[str], tmp_path: Path, case: str
) -> None:
    faults = tmp_path / f"{case}.toml"
    if case == "foreign_fault":
        text = f'[[at]]\nt_s = 0.5\nrequest = {{op = "inject", fault = "{model.foreign_fault}"}}\n'
        faults.write_text(text)
        expected = f"at[0].request: fault '{model.foreign_fault}' is not one of"
    elif case == "missing_file":
        expected = "No such file or directory"
    else:
        text, expected = MALFORMED[case]
        faults.write_text(text)
    command = [sys.executable, "-m", "device_sims", model.name, *sim_args, "--faults", str(faults)]
    done = subprocess.run(command, capture_output=True, timeout=20, check=False)
    stderr = done.stderr.decode()
    assert done.returncode != 0 and b"READY" not in done.stdout, (done.returncode, stderr)
    assert str(faults) in stderr and expected in stderr, stderr
    assert "Traceback" not in stderr, stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_an_explicit_control_address_is_served(model: Model, sim_args: list[str]) -> None:
    port = free_port()
    with SimProcess(model.name, [*sim_args, "--control", f"127.0.0.1:{port}"]) as sim:
        assert sim.control == f"127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b'{"op": "state"}\n')
            reply = json.loads(conn.makefile("rb").readline())
    assert reply["ok"] is True and reply["model"] == model.model, reply
