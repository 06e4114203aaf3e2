"""`sessionconsole demo`: the three reference units, simulated, and a controller driving them.

ES-2 on a pseudo-terminal, US-1 on Modbus TCP and CX-3 through a mosquitto broker, or the
embedded broker in a child process when mosquitto is not installed (left out, with the reason
in `DemoStack.left_out`, only when neither starts). Every helper is a
child process that gets SIGTERM when we die (PR_SET_PDEATHSIG); `DemoStack.close()` ends the
controller first, so it stops outputs and ends the session, then the simulators and the broker.
The TUI (`sessionconsole demo`) and headless scripted sessions (`session run --demo`) share it.
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
from typing import IO

from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import read_toml
from sessionconsole.testing import SimProcess, dying_with_this_process
from sessionconsole.testing.embedded_broker import EmbeddedBroker
from sessionconsole.testing.mqtt import (
    Mosquitto,
    MosquittoError,
    MosquittoNotInstalled,
    find_mosquitto,
)

CONTROLLER_READY_S = 10.0
DEMO_PATIENT = "DEMO-0001"  # a pseudonym, as every session record carries (never a name)
DEMO_PROFILES = {"us1": "us1-tcp.toml", "es2": "es2-serial.toml", "cx3": "cx3-mqtt.toml"}


def spawn_controller(
    room: Path,
    db: Path,
    socket_path: Path,
    log: IO[bytes],
    therapist: str,
    patient: str,
    plan: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """`sessionconsole controller` as a child that dies with us and ignores our terminal's ^C;
    with `plan`, the session is guided by it; `extra_args` go to its command line."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sessionconsole.cli",
            "controller",
            *("--room", str(room), "--db", str(db), "--socket", str(socket_path)),
            *("--therapist", therapist, "--patient", patient),
            *(() if plan is None else ("--plan", str(plan))),
            *extra_args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        # Own session: a Ctrl-C in the TUI must not kill it before it stops outputs.
        start_new_session=True,
        preexec_fn=dying_with_this_process(),
    )


def wait_for_socket(
    controller: subprocess.Popen[bytes], socket_path: Path, log_path: Path, timeout_s: float
) -> None:
    """Return once the controller's API socket exists; raise if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while not socket_path.exists():
        if controller.poll() is not None:
            raise RuntimeError(f"controller exited; see {log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"controller not ready in {timeout_s} s; see {log_path}")
        time.sleep(0.01)


def stop_controller(controller: subprocess.Popen[bytes] | None) -> int | None:
    """SIGTERM (it stops outputs and ends the session), SIGKILL after 10 s; the exit code."""
    if controller is None:
        return None
    if controller.poll() is None:
        controller.send_signal(signal.SIGTERM)
        try:
            controller.wait(10)
        except subprocess.TimeoutExpired:
            controller.kill()
            controller.wait(5)
    return controller.returncode


class DemoStack:
    """Broker + simulators + controller for one demo run (or one headless scripted session)."""

    def __init__(
        self,
        db: str | None = None,
        operator: str | None = None,
        patient: str = DEMO_PATIENT,
        plan: Path | None = None,
        controller_args: tuple[str, ...] = (),
    ) -> None:
        self.operator = operator or demo_operator()
        self.controller_args = controller_args  # e.g. the benches' --rt-priority
        self.patient = patient
        self.plan = plan  # a treatment plan the session follows (guided session)
        self.workdir = Path(tempfile.mkdtemp(prefix="sessionconsole-demo-"))
        self.db = Path(db) if db else self.workdir / "demo-sessions.db"
        self.socket_path = self.workdir / "api.sock"
        self.room_path = self.workdir / "room.toml"
        self.log_path = self.workdir / "controller.log"
        self.sim_log_path = self.workdir / "simulators.log"
        self.sims: dict[str, SimProcess] = {}
        self.broker: Mosquitto | None = None
        self.left_out: dict[str, str] = {}  # unit -> why it is not in this demo
        self.controller: subprocess.Popen[bytes] | None = None

    def start(self) -> DemoStack:
        """Start broker and simulators side by side, write the room, start the controller."""
        try:
            # Logs to a file: anything on our terminal would be drawn over the TUI.
            log = self.sim_log_path.open("ab")
            self._start_broker()
            self.sims["us1"] = self._sim("us1", log).launch()
            self.sims["es2"] = self._sim("es2", log, "--pty").launch()
            if self.broker is not None:
                serial = str(read_toml(self._profile("cx3"))["serial"])
                self.sims["cx3"] = self._sim(
                    "cx3", log, "--broker", self.broker.url, "--serial", serial
                ).launch()
            for sim in self.sims.values():
                sim.wait_ready()
            self.room_path.write_text(self.room_toml())
            self.controller = spawn_controller(
                self.room_path,
                self.db,
                self.socket_path,
                self.log_path.open("ab"),
                self.operator,
                self.patient,
                self.plan,
                self.controller_args,
            )
            wait_for_socket(self.controller, self.socket_path, self.log_path, CONTROLLER_READY_S)
        except BaseException:
            self.close()
            raise
        return self

    def _start_broker(self) -> None:
        """mosquitto for the CX-3; without it the embedded broker; or the reason there is none."""
        try:
            find_mosquitto()
            self.broker = Mosquitto(die_with_parent=True).start()
            return
        except MosquittoNotInstalled:
            pass
        except MosquittoError as exc:
            self.left_out["cx3"] = f"no MQTT broker: {exc}"
            return
        try:
            self.broker = EmbeddedBroker(die_with_parent=True, start_timeout=15.0).start()
        except MosquittoError as exc:
            self.broker = None
            self.left_out["cx3"] = f"no MQTT broker: mosquitto is not installed and {exc}"

    @staticmethod
    def _profile(unit: str) -> Path:
        return (config_dir() / "profiles" / DEMO_PROFILES[unit]).resolve()

    def _sim(self, model: str, log: IO[bytes], *args: str) -> SimProcess:
        return SimProcess(model, args, stderr=log, die_with_parent=True)

    def room_toml(self) -> str:
        """The demo room: the bundled profiles, linked to this run's simulators."""
        links: dict[str, str] = {}
        if "us1" in self.sims:
            links["us1"] = f"port = {self.sims['us1'].modbus_tcp[1]}\n"
        if "es2" in self.sims:
            links["es2"] = f'port = "{self.sims["es2"].endpoints["serial_pty"]}"\n'
        if "cx3" in self.sims and self.broker is not None:
            links["cx3"] = f'host = "{self.broker.host}"\nport = {self.broker.port}\n'
        text = 'name = "Demo room"\n'
        for unit, link in links.items():
            text += (
                f'\n[devices.{unit}]\nprofile = "{self._profile(unit)}"\n'
                f'sim_control = "{self.sims[unit].control}"\n\n[devices.{unit}.link]\n{link}'
            )
        return text

    def pids(self) -> list[int]:
        """Every helper process of this stack (controller, simulators, broker)."""
        pids = [sim.pid for sim in self.sims.values() if sim.proc is not None]
        if self.broker is not None and self.broker.proc is not None:
            pids.append(self.broker.proc.pid)
        if self.controller is not None:
            pids.append(self.controller.pid)
        return pids

    def close(self) -> None:
        """Controller first (it stops outputs and ends the session), then simulators, broker."""
        stop_controller(self.controller)
        for sim in self.sims.values():
            with contextlib.suppress(Exception):
                sim.stop()
        if self.broker is not None:
            self.broker.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def demo_operator() -> str:
    """Who the demo says is operating."""
    return os.environ.get("USER") or "therapist"
