"""A `--faults` file is checked against what each model's test port accepts, before READY.

Each request below is sent to a live simulator's test port too, so the load-time rules can
neither refuse what the test port takes (SIMULATORS.md's own examples) nor let through what
it refuses whatever the unit's state (the typos that would otherwise fire as a log line).
"""

from __future__ import annotations

from typing import Any

import pytest

from device_sims.cx3.app import schedule_rules as cx3_rules
from device_sims.es2.app import schedule_rules as es2_rules
from device_sims.schedule import ScheduleRules, check_request
from device_sims.us1.app import schedule_rules as us1_rules
from sessionconsole.testing import SimProcess

ACCEPTED: dict[str, list[dict[str, Any]]] = {
    "us1": [
        {"op": "set", "coupling_pct": 20},
        {"op": "set", "head_temp_c": None},
        {"op": "inject", "fault": "overtemp"},
        {"op": "link", "mode": "delay", "ms": 150},
        {"op": "link", "mode": "corrupt", "rate": 0.5},
    ],
    "es2": [
        {"op": "set", "impedance_ohm": 1500, "ch": 2},
        {"op": "inject", "fault": "electrode_off", "ch": 1},
        {"op": "inject", "fault": "patient_stop"},
        {"op": "link", "mode": "drop"},
    ],
    "cx3": [
        {"op": "set", "impedance_ohm": 900},
        {"op": "inject", "fault": "electrode_off"},
        {"op": "inject", "fault": "overcurrent", "ch": 1},
        {"op": "link", "mode": "disconnect"},
    ],
}
REFUSED: dict[str, list[dict[str, Any]]] = {
    "us1": [
        {"op": "set", "coupling_pc": 20},
        {"op": "set", "head_temp_c": 500},
        {"op": "set"},
        {"op": "link", "mode": "delay"},
        {"op": "link", "mode": "corrupt", "rate": 2},
    ],
    "es2": [
        {"op": "inject", "fault": "electrode_off"},
        {"op": "inject", "fault": "overcurrent", "ch": 3},
        {"op": "set", "impedance_ohm": 1500},
        {"op": "set", "coupling_pct": 20, "ch": 1},
    ],
    "cx3": [
        {"op": "inject", "fault": "electrode_off", "ch": 2},
        {"op": "set", "impedance_ohm": -1},
        {"op": "link", "mode": "delay", "ms": "fast"},
    ],
}
RULES: dict[str, ScheduleRules] = {"us1": us1_rules(1), "es2": es2_rules(1), "cx3": cx3_rules(1)}


@pytest.fixture
def live(request: pytest.FixtureRequest) -> SimProcess:
    sim: SimProcess = request.getfixturevalue(f"{request.param}_sim")
    return sim


@pytest.mark.parametrize("live", ["us1", "es2", "cx3"], indirect=True)
def test_the_load_time_rules_agree_with_the_live_test_port(live: SimProcess) -> None:
    model = {"US-1": "us1", "ES-2": "es2", "CX-3": "cx3"}[live.ready["model"]]
    rules = RULES[model]
    for request in ACCEPTED[model]:
        assert check_request(request, rules) is None, request
        reply = live.request(request)
        assert reply.get("ok") is True, (request, reply)
        live.request({"op": "clear"})
    for request in REFUSED[model]:
        assert check_request(request, rules) is not None, request
        reply = live.request(request)
        assert reply.get("ok") is False, (request, reply)
