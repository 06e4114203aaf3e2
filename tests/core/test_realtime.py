"""`controller --rt-priority N`: the core loop's thread runs under SCHED_FIFO, or the controller
refuses to start and says what it needs."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from sessionconsole.core import main
from sessionconsole.testing import SimProcess
from tests.support import ControllerProcess, controller_refusal, entries, running, write_room

MAY_USE_FIFO = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 1


@pytest.mark.skipif(not MAY_USE_FIFO, reason="needs root or an RLIMIT_RTPRIO of 1")
def test_the_loop_thread_runs_at_the_real_time_priority_asked_for(
    sim: SimProcess, tmp_path: Path
) -> None:
    room = write_room(tmp_path, sim.modbus_tcp[1])
    args = ("--rt-priority", "5")
    with running(ControllerProcess(room, tmp_path / "s.db", tmp_path / "a.sock", args)) as ctl:
        assert ctl.proc is not None
        pid = ctl.proc.pid  # the main thread: the loop's
        policy = os.sched_getscheduler(pid)
        assert policy == os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, policy
        assert os.sched_getparam(pid).sched_priority == 5
        # Nothing else runs real-time: not the recorder's writer, nor threads started later.
        others = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
        assert others and all(os.sched_getscheduler(t) == os.SCHED_OTHER for t in others)
    [start] = [e.payload for e in entries(tmp_path / "s.db") if e.kind == "session_start"]
    assert start["loop"]["rt_priority"] == 5


def test_a_refused_real_time_priority_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with pytest.raises(main.RealtimeRefused, match="CAP_SYS_NICE or an RLIMIT_RTPRIO"):
        main.use_realtime_priority(10)


def test_a_priority_outside_1_to_99_is_refused(tmp_path: Path) -> None:
    result = controller_refusal(tmp_path, "--rt-priority", "100")
    assert result.returncode == 2
    assert "--rt-priority: 100: a real-time priority is 1 to 99" in result.stderr
