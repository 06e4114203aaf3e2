"""`sessionconsole demo`: a simulated US-1 and a controller on embedded defaults, for the TUI.

The simulator and the controller run as child processes (the controller's loop must not share
a process with the UI); `DemoStack.close()` ends both, controller first so it stops outputs
and ends the session cleanly. Nothing is left running on quit, even after an exception.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sessionconsole.model.paths import config_dir
from sessionconsole.testing import SimProcess, die_with_parent

CONTROLLER_READY_S = 10.0
DEMO_PATIENT = "DEMO-0001"  # a pseudonym, as every session record carries (never a name)


class DemoStack:
    """Simulator + controller for one demo run."""

    def __init__(self, db: str | None = None, operator: str | None = None) -> None:
        self.operator = operator or demo_operator()
        self.workdir = Path(tempfile.mkdtemp(prefix="sessionconsole-demo-"))
        self.db = Path(db) if db else self.workdir / "demo-sessions.db"
        self.socket_path = self.workdir / "api.sock"
        self.log_path = self.workdir / "controller.log"
        self.sim_log_path = self.workdir / "simulator.log"
        self.sim: SimProcess | None = None
        self.controller: subprocess.Popen[bytes] | None = None

    def start(self) -> DemoStack:
        """Start the US-1 simulator, write a room for its port, start the controller."""
        try:
            # Logs to a file: anything on our terminal would be drawn over the TUI.
            self.sim = SimProcess(
                "us1", stderr=self.sim_log_path.open("ab"), die_with_parent=True
            ).start()
            _, port = self.sim.modbus_tcp
            profile = (config_dir() / "profiles" / "us1-tcp.toml").resolve()
            room = self.workdir / "room.toml"
            room.write_text(
                'name = "Demo room"\n\n[devices.us1]\n'
                f'profile = "{profile}"\nsim_control = "{self.sim.control}"\n\n'
                f"[devices.us1.link]\nport = {port}\n"
            )
            self.controller = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sessionconsole.cli",
                    "controller",
                    "--room",
                    str(room),
                    "--db",
                    str(self.db),
                    "--socket",
                    str(self.socket_path),
                    "--therapist",
                    self.operator,
                    "--patient",
                    DEMO_PATIENT,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.log_path.open("ab"),
                # Own session: a Ctrl-C in the TUI must not kill it before it stops outputs.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            self._wait_for_socket()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_socket(self) -> None:
        assert self.controller is not None
        deadline = time.monotonic() + CONTROLLER_READY_S
        while not self.socket_path.exists():
            if self.controller.poll() is not None:
                raise RuntimeError(f"controller exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"controller not ready in {CONTROLLER_READY_S} s; see {self.log_path}"
                )
            time.sleep(0.02)

    def close(self) -> None:
        """Controller first (it stops outputs and ends the session), then the simulator."""
        if self.controller is not None and self.controller.poll() is None:
            self.controller.send_signal(signal.SIGTERM)
            try:
                self.controller.wait(10)
            except subprocess.TimeoutExpired:
                self.controller.kill()
                self.controller.wait(5)
        if self.sim is not None:
            with contextlib.suppress(Exception):
                self.sim.stop()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def demo_operator() -> str:
    """Who the demo says is operating."""
    return os.environ.get("USER") or "therapist"
