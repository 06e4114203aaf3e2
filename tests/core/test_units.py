"""Units turn driver telemetry into per-output readings the kernel judges (no I/O here)."""

from __future__ import annotations

from sessionconsole.core.units import Es2Unit
from sessionconsole.model.limits import load_clinical_limits
from sessionconsole.model.paths import config_dir
from sessionconsole.model.stimulation import StimChannelReading
from sessionconsole.model.telemetry import OutputReading
from tests.drivers.test_es2_driver import profile


def es2_unit() -> Es2Unit:
    clinical = load_clinical_limits(config_dir() / "clinical-limits.toml")
    return Es2Unit("es2", profile("/dev/null"), clinical, lambda: 0.0)


def channel(ch: int, state: str, measured: float) -> StimChannelReading:
    return StimChannelReading(ch, 1.0, state, 10.0, measured, 1200.0, ())


def test_a_stuck_relay_under_an_idle_state_counts_as_running() -> None:
    # A stuck relay keeps driving current while the ES-2 reports IDLE (ICD stop semantics,
    # simulator fault ignore_stop): the kernel's stop checks must see the output as on.
    unit = es2_unit()
    unit.driver.latest = {1: channel(1, "IDLE", 9.5), 2: channel(2, "IDLE", 0.0)}
    readings = unit.readings()
    stuck, idle = readings["es2.ch1"], readings["es2.ch2"]
    assert isinstance(stuck, OutputReading) and isinstance(idle, OutputReading)
    assert (stuck.running, stuck.output_active) == (True, True)
    assert (idle.running, idle.output_active) == (False, False)


def test_each_output_names_its_unit_and_the_link_stop_confirm_limit() -> None:
    unit = es2_unit()
    assert {lim.unit for lim in unit.limits.values()} == {"es2"}
    # 20 Hz STREAM: three frames are 150 ms, so the 300 ms floor applies
    assert {lim.stop_confirm_s for lim in unit.limits.values()} == {0.3}
