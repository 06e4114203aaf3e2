"""Pytest plugin (pytest11 entry point) and helpers to run the device simulators.

`SimProcess` starts `python -m device_sims MODEL ...` as a real subprocess, waits for its
single `READY {json}` line and talks to its test port; it needs no pytest, so demos use it
too. With pytest installed, the `us1_sim` fixture yields a started US-1 simulator.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import IO, Any

__all__ = ["SimProcess", "SimulatorError"]

READY_PREFIX = "READY "


PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """In a child before exec (Linux): get SIGTERM when the parent dies, however it dies.

    A parent that dies between the fork and this call sends nothing (the request is only for
    deaths after it): given the parent's pid, the child checks it is still the parent's and
    exits at once if not (seen: a controller outliving a SIGKILLed `session run`).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def dying_with_this_process() -> Callable[[], None]:
    """A `preexec_fn`: the child gets SIGTERM when this process dies (no fork-time race)."""
    return functools.partial(die_with_parent, os.getpid())


class SimulatorError(RuntimeError):
    """The simulator did not start, or its test port failed."""


def split_hostport(text: str) -> tuple[str, int]:
    """Split a `host:port` endpoint string."""
    host, _, port = text.rpartition(":")
    return host, int(port)


class SimProcess:
    """One simulator subprocess: READY parsing, test-port client, SIGTERM/SIGKILL."""

    def __init__(
        self,
        model: str = "us1",
        args: Sequence[str] = (),
        ready_timeout: float = 10.0,
        request_timeout: float = 5.0,
        stderr: IO[bytes] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        """Describe the simulator to run; `start()` launches it."""
        self.command = [sys.executable, "-m", "device_sims", model, *args]
        self.ready_timeout = ready_timeout
        self.request_timeout = request_timeout
        self.stderr = stderr  # None inherits ours; the demo passes a log file
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self._sock: socket.socket | None = None
        self._rfile: IO[bytes] | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> SimProcess:
        """Launch the subprocess and wait for its READY line; returns self."""
        return self.launch().wait_ready()

    def launch(self) -> SimProcess:
        """Launch the subprocess without waiting (start several, then `wait_ready` each)."""
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            stderr=self.stderr,
            preexec_fn=dying_with_this_process() if self.die_with_parent else None,
        )
        return self

    def wait_ready(self) -> SimProcess:
        """Wait for the launched simulator's READY line (killing it on failure); returns self."""
        try:
            self.ready = self._read_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _read_ready(self) -> dict[str, Any]:
        """Read stdout until the READY line or the timeout; parse its JSON."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.ready_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SimulatorError(
                        f"no READY line within {self.ready_timeout} s: {self.command}"
                    )
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    code = self.proc.wait(timeout=1.0)
                    raise SimulatorError(f"simulator exited with {code} before READY: {buffer!r}")
                buffer += chunk
        line = buffer.split(b"\n", 1)[0].decode()
        if not line.startswith(READY_PREFIX):
            raise SimulatorError(f"first stdout line is not READY: {line!r}")
        ready: dict[str, Any] = json.loads(line[len(READY_PREFIX) :])
        return ready

    def stop(self, timeout: float = 5.0) -> int:
        """Send SIGTERM and wait for exit (SIGKILL after `timeout`); return the exit code."""
        self._close_control()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_stdout()
        return self.proc.returncode

    def kill(self) -> None:
        """End the simulator at once with SIGKILL (a device losing power)."""
        self._close_control()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._close_stdout()

    def _close_stdout(self) -> None:
        """Close our end of the stdout pipe."""
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> SimProcess:
        """Start on entering a `with` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving a `with` block."""
        self.stop()

    # ---- endpoints ----------------------------------------------------------------------
    @property
    def pid(self) -> int:
        """Process id of the running simulator."""
        assert self.proc is not None, "simulator not started"
        return self.proc.pid

    @property
    def endpoints(self) -> dict[str, Any]:
        """The first unit's endpoints from the READY line (e.g. `modbus_tcp`)."""
        endpoints: dict[str, Any] = self.ready["endpoints"]
        return endpoints

    @property
    def control(self) -> str:
        """The test port as `host:port`."""
        return str(self.ready["control"])

    @property
    def modbus_tcp(self) -> tuple[str, int]:
        """The first unit's Modbus TCP endpoint as (host, port)."""
        return split_hostport(str(self.endpoints["modbus_tcp"]))

    # ---- test port ----------------------------------------------------------------------
    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one test-port request over a kept-open connection; return the reply."""
        line = json.dumps(request).encode() + b"\n"
        for attempt in (1, 2):
            try:
                if self._sock is None:
                    self._sock = socket.create_connection(
                        split_hostport(self.control), timeout=self.request_timeout
                    )
                    self._rfile = self._sock.makefile("rb")
                assert self._rfile is not None
                self._sock.sendall(line)
                reply_line = self._rfile.readline()
                if not reply_line:
                    raise ConnectionError("test port closed the connection")
                reply: dict[str, Any] = json.loads(reply_line)
                return reply
            except OSError:
                self._close_control()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def request_raw(self, data: bytes) -> dict[str, Any]:
        """Send raw bytes (one line, e.g. bad JSON) on a fresh connection; return the reply."""
        with socket.create_connection(
            split_hostport(self.control), timeout=self.request_timeout
        ) as s:
            s.sendall(data if data.endswith(b"\n") else data + b"\n")
            reply: dict[str, Any] = json.loads(s.makefile("rb").readline())
            return reply

    async def arequest(self, request: dict[str, Any]) -> dict[str, Any]:
        """Async test-port request on a fresh connection (safe across event loops)."""
        host, port = split_hostport(self.control)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), self.request_timeout
        )
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            reply: dict[str, Any] = json.loads(
                await asyncio.wait_for(reader.readline(), self.request_timeout)
            )
            return reply
        finally:
            writer.close()

    def _close_control(self) -> None:
        """Drop the kept-open test-port connection."""
        if self._rfile is not None:
            self._rfile.close()
            self._rfile = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


try:
    import pytest
except ModuleNotFoundError:  # installed without the dev extras: SimProcess only
    pass
else:

    @pytest.fixture
    def us1_sim() -> Iterator[SimProcess]:
        """A started US-1 simulator (TCP on a free loopback port), stopped after the test."""
        sim = SimProcess("us1").start()
        try:
            yield sim
        finally:
            sim.stop()

    # Fixtures of the other units, registered through this module (the pytest11 entry point).
    # Imported last: they import SimProcess from here.
    from sessionconsole.testing.cx3 import cx3_sim
    from sessionconsole.testing.es2 import es2_sim
    from sessionconsole.testing.mqtt import mosquitto_broker

    __all__ = [
        "SimProcess",
        "cx3_sim",
        "die_with_parent",
        "dying_with_this_process",
        "es2_sim",
        "mosquitto_broker",
        "us1_sim",
    ]
