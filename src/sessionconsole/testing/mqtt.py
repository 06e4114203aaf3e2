"""A real mosquitto broker on a free loopback port, for tests of MQTT devices and drivers.

`Mosquitto` needs no pytest (demos can use it); the session-scoped `mosquitto_broker` fixture
yields one started broker per test session (per xdist worker).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sessionconsole.testing import dying_with_this_process

__all__ = ["Mosquitto", "MosquittoError", "MosquittoNotInstalled"]

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
INSTALL_HINT = "mosquitto is not installed: apt-get install mosquitto"


class MosquittoError(RuntimeError):
    """The broker did not start or did not accept connections."""


class MosquittoNotInstalled(MosquittoError):
    """No `mosquitto` executable on PATH, /usr/sbin or /usr/local/sbin."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def find_mosquitto() -> str:
    """Path of the mosquitto executable; raises MosquittoNotInstalled."""
    path = shutil.which("mosquitto", path=SEARCH_PATH)
    if path is None:
        raise MosquittoNotInstalled(INSTALL_HINT)
    return path


class Mosquitto:
    """One mosquitto process: temp config, loopback listener, anonymous, no persistence."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        start_timeout: float = 5.0,
        die_with_parent: bool = False,
        users: dict[str, str] | None = None,
    ) -> None:
        """Describe the broker (port 0 = a free port); `start()` launches it.

        `die_with_parent`: the broker gets SIGTERM when its parent dies (demos, script runs).
        `users`: name -> password; when given, only they may connect (no anonymous clients),
        as on a clinic's broker.
        """
        self.host = host
        self.users = users
        self.die_with_parent = die_with_parent
        self.port = port
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.config_path = self._dir / "mosquitto.conf"
        self.log_path = self._dir / "mosquitto.log"

    @property
    def url(self) -> str:
        """`mqtt://127.0.0.1:PORT`."""
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> None:
        """Minimal config: one loopback listener, anonymous access (or `users` only), no disk."""
        access = "allow_anonymous true\n"
        if self.users is not None:
            access = f"allow_anonymous false\npassword_file {self._write_passwords()}\n"
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n" + access + "persistence false\n"
            # Stay the user who started it: started as root, mosquitto would switch to user
            # `mosquitto`, and that credential change clears PR_SET_PDEATHSIG (die_with_parent).
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            "set_tcp_nodelay true\n"  # else Nagle + delayed ACK add 40 ms a hop
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )

    def _write_passwords(self) -> Path:
        """The password file of `users`, hashed by mosquitto_passwd (owner-only)."""
        assert self.users is not None
        tool = shutil.which("mosquitto_passwd", path=SEARCH_PATH)
        if tool is None:
            raise MosquittoNotInstalled("mosquitto_passwd is missing: apt-get install mosquitto")
        path = self._dir / "passwords"
        path.write_text("")
        path.chmod(0o600)
        for name, password in self.users.items():
            subprocess.run([tool, "-b", str(path), name, password], check=True, capture_output=True)
        return path

    @property
    def name(self) -> str:
        """How errors and logs call this broker."""
        return "mosquitto"

    def _argv(self) -> list[str]:
        """The broker's command line for self.port (writes its config file first)."""
        binary = find_mosquitto()
        self._write_config()
        return [binary, "-c", str(self.config_path)]

    def start(self) -> Mosquitto:
        """Start the broker and wait until its port accepts; a busy free port is retried."""
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            port_given = self.port
            if port_given == 0:
                self.port = free_port(self.host)
            try:
                self._launch()
                return self
            except MosquittoError:
                if attempt == attempts - 1:
                    raise
                self.port = port_given
        return self

    def _launch(self) -> None:
        """Run the broker once on self.port; raises MosquittoError with its log on failure."""
        argv = self._argv()
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=dying_with_this_process() if self.die_with_parent else None,
            )
        deadline = t0 + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise MosquittoError(f"{self.name} exited with {code}: {self.log()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.002)
                continue
            self.startup_s = time.monotonic() - t0
            return
        self.kill()
        raise MosquittoError(
            f"{self.name} not accepting within {self.start_timeout} s: {self.log()}"
        )

    def log(self) -> str:
        """The broker's log so far (errors, warnings, notices)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait (SIGKILL after `timeout`)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL at once (a broker host losing power)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        """Stop and remove the temp directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        """Start on entering a `with` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop and clean up on leaving a `with` block."""
        self.cleanup()


try:
    import pytest
except ModuleNotFoundError:  # installed without the dev extras: Mosquitto only
    pass
else:

    @pytest.fixture(scope="session")
    def mosquitto_broker() -> Iterator[Mosquitto]:
        """A real mosquitto on a free loopback port, shared by the session (per xdist worker)."""
        try:
            broker = Mosquitto().start()
        except MosquittoNotInstalled:
            pytest.fail(INSTALL_HINT, pytrace=False)
        try:
            yield broker
        finally:
            broker.cleanup()
