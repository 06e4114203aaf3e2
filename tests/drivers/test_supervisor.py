"""The I/O task's supervisor (drivers/base.py) on a driver whose `_run` fails on purpose.

The wire does not matter here (the contract suite runs real drivers through a failure on
every target); this pins the supervisor's own rules: every failure reported, a stop asked
for each time, the wait doubling while failures repeat and starting over after a healthy
run, and a failure while closing the link not ending the supervision.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from sessionconsole.drivers import base
from tests.support import wait_for


class FailingDriver(base.DriverLifecycle):
    """`_run` follows a script: ("fail", s) raises after s seconds; ("serve", s) runs s."""

    def __init__(self, script: list[tuple[str, float]], release_fails: bool = False) -> None:
        self.errors: list[str] = []
        super().__init__("dev", lambda _d, m: self.errors.append(m))
        self.script = list(script)
        self.release_fails = release_fails
        self.stops_asked = 0
        self.released = 0

    def request_stop(self) -> None:
        self.stops_asked += 1

    async def _run(self) -> None:
        while self.script:
            what, seconds = self.script.pop(0)
            await asyncio.sleep(seconds)
            if what == "fail":
                raise RuntimeError(f"failure {self.io_task_restarts + 1}")
        await asyncio.Event().wait()  # the script is over: serve until closed

    async def _release(self) -> None:
        self.released += 1
        if self.release_fails:
            raise OSError("the port will not close")


def waits(driver: FailingDriver) -> list[float]:
    return [float(m) for e in driver.errors for m in re.findall(r"reconnecting in ([\d.]+) s", e)]


@pytest.fixture(autouse=True)
def short_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "RESTART_DELAY_S", 0.05)
    monkeypatch.setattr(base, "RESTART_DELAY_MAX_S", 0.4)


async def test_waits_double_while_failing_and_start_over_after_a_healthy_run() -> None:
    script = [("fail", 0.0)] * 4 + [("fail", 0.6)] + [("fail", 0.0)]
    driver = FailingDriver(script)
    driver.start()
    try:
        await wait_for(lambda: driver.io_task_restarts == 6, 10)
    finally:
        await driver.close()
    # 0.05, 0.1, 0.2, 0.4 (the cap); then 0.6 s of running: back to 0.05, then 0.1
    assert waits(driver) == [0.05, 0.1, 0.2, 0.4, 0.05, 0.1], driver.errors
    assert driver.stops_asked == 6 and driver.released >= 6
    assert all("I/O task failed (RuntimeError: failure" in e for e in driver.errors)


async def test_a_link_that_will_not_close_does_not_end_the_supervision() -> None:
    driver = FailingDriver([("fail", 0.0), ("fail", 0.0)], release_fails=True)
    driver.start()
    try:
        await wait_for(lambda: driver.io_task_restarts == 2 and not driver.script, 10)
        await asyncio.sleep(0.2)
        assert driver._task is not None and not driver._task.done()  # still supervising
    finally:
        driver.release_fails = False
        await driver.close()
    assert driver.stops_asked == 2  # the stop is asked for even when closing failed
