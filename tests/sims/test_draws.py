"""The simulators' random draws sit on a fixed time grid, so a seed repeats whatever the steps.

SIMULATORS.md: physics is "seeded, so the random parts repeat". Each physics model is stepped
once in 10 ms steps and once in arbitrary steps over the same span; the random state must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from device_sims.cx3.stim import StimPhysics
from device_sims.draws import DRAW_PERIOD_S, DrawGrid
from device_sims.es2.physics import Physics as ES2Physics
from device_sims.us1.physics import Physics as US1Physics

SPAN_S = 1.0
steps = st.lists(st.floats(min_value=0.0005, max_value=0.08), min_size=1, max_size=200)


def run(make: Callable[[], Any], step: Callable[[Any, float], None], dts: list[float]) -> Any:
    """Step a fresh model through `dts`, then to exactly SPAN_S; return it."""
    model, elapsed = make(), 0.0
    for dt in dts:
        if elapsed + dt >= SPAN_S:
            break
        step(model, dt)
        elapsed += dt
    step(model, SPAN_S - elapsed)
    return model


def even(make: Callable[[], Any], step: Callable[[Any, float], None]) -> Any:
    """The same model stepped in a hundred equal 10 ms steps."""
    return run(make, step, [SPAN_S / 100] * 99)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_es2_impedance_and_noise_do_not_depend_on_step_lengths(dts: list[float]) -> None:
    def make() -> ES2Physics:
        return ES2Physics(seed=11)

    def step(model: ES2Physics, dt: float) -> None:
        model.step(dt)

    a, b = even(make, step), run(make, step, dts)
    assert a.grid.draws == b.grid.draws == round(SPAN_S / DRAW_PERIOD_S)
    assert a.wander_ohm == b.wander_ohm and a.noise == b.noise


@settings(max_examples=60, deadline=None)
@given(steps)
def test_us1_coupling_and_noise_do_not_depend_on_step_lengths(dts: list[float]) -> None:
    def make() -> US1Physics:
        return US1Physics(seed=11)

    def step(model: US1Physics, dt: float) -> None:
        model.step(dt, 1.0, 1.0)

    a, b = even(make, step), run(make, step, dts)
    assert a.grid.draws == b.grid.draws
    assert a.wander_pct == b.wander_pct and a.noise == b.noise
    # temperature is integrated (not drawn): equal up to the Euler error of coarse steps
    assert abs(a.head_temp_c - b.head_temp_c) < 0.01


@settings(max_examples=60, deadline=None)
@given(steps)
def test_cx3_stim_impedance_does_not_depend_on_step_lengths(dts: list[float]) -> None:
    def make() -> StimPhysics:
        return StimPhysics(seed=11)

    def step(model: StimPhysics, dt: float) -> None:
        model.step(dt, 10.0)

    a, b = even(make, step), run(make, step, dts)
    assert a.grid.draws == b.grid.draws
    assert a.wander_ohm == b.wander_ohm and a.measured_ma == b.measured_ma


def test_grid_counts_whole_periods_only() -> None:
    grid = DrawGrid()
    assert grid.due(DRAW_PERIOD_S * 0.6) == 0
    assert grid.due(DRAW_PERIOD_S * 0.6) == 1
    assert grid.due(DRAW_PERIOD_S * 2.0) == 2
    assert grid.draws == 3


def test_different_seeds_draw_differently() -> None:
    a, b = ES2Physics(seed=1), ES2Physics(seed=2)
    a.step(0.5)
    b.step(0.5)
    assert a.wander_ohm != b.wander_ohm
