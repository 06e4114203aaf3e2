"""The API socket refuses strangers: file mode first, then the peer's kernel credentials.

Processes of other users are real child processes that drop to another uid (the tests run as
root in CI, as the brief's CI does; without root no other uid can be taken).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sessionconsole.core.peers import Peer, PeerPolicy, group_name
from sessionconsole.core.server import ApiServer
from tests.support import controller_refusal

NOBODY = 65534
STRANGER = 65533

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can act as another uid")


def test_policy_owner_root_and_group_members() -> None:
    owner = PeerPolicy(owner_uid=1000)
    assert owner.allows(Peer(1, 1000, 1000, frozenset()))
    assert owner.allows(Peer(1, 0, 0, frozenset()))
    assert not owner.allows(Peer(7, 1001, 1000, frozenset({1000})))
    assert owner.refusal(Peer(7, 1001, 1000, frozenset())) == (
        "uid 1001 (pid 7) is not the controller's user; the API is owner-only"
    )
    group = PeerPolicy(owner_uid=1000, group_gid=NOBODY)
    assert group.allows(Peer(1, 1001, NOBODY, frozenset()))  # primary group
    assert group.allows(Peer(1, 1001, 1001, frozenset({NOBODY})))  # supplementary
    assert not group.allows(Peer(9, 1002, 1002, frozenset({5})))
    assert group.refusal(Peer(9, 1002, 1002, frozenset())).endswith(
        f"is neither the controller's user nor in group {group_name(NOBODY)}"
    )


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder other users can pass through (pytest's tmp_path is owner-only)."""
    path = Path(tempfile.mkdtemp(prefix="sc-peers-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def server(open_dir: Path) -> AsyncIterator[ApiServer]:
    seen: list[object] = []
    api = ApiServer(open_dir / "api.sock", lambda client, request: seen.append(request))
    await api.start()
    try:
        yield api
    finally:
        await api.close()


HELLO = {
    "kind": "request",
    "id": 1,
    "command": {"type": "hello", "operator": "x", "role": "therapist", "client": "t"},
}
AS_OTHER_USER = """
import os, socket, sys
uid, gid, path, line = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
wait_reply = sys.argv[5] == "1"
os.setgroups([]); os.setgid(gid); os.setuid(uid)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(path)
except OSError as e:
    print("connect failed:", e.strerror); sys.exit(0)
s.sendall(line.encode() + b"\\n")
print(s.makefile().readline().strip() if wait_reply else "sent")
"""


def hello_as(uid: int, gid: int, path: Path, wait_reply: bool = True) -> str:
    """Connect as another user, send hello, return what came back (or the error)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            AS_OTHER_USER,
            str(uid),
            str(gid),
            str(path),
            json.dumps(HELLO),
            "1" if wait_reply else "0",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout.strip()


@needs_root
async def test_owner_only_socket_refuses_another_user_at_the_file(server: ApiServer) -> None:
    assert oct(server.socket_path.stat().st_mode & 0o777) == "0o600"
    out = await asyncio.to_thread(hello_as, STRANGER, STRANGER, server.socket_path)
    assert out == "connect failed: Permission denied"


@needs_root
async def test_a_loosened_socket_still_refuses_strangers_by_credentials(
    server: ApiServer,
) -> None:
    os.chmod(server.socket_path, 0o666)  # somebody's mistake
    out = await asyncio.to_thread(hello_as, STRANGER, STRANGER, server.socket_path)
    reply = json.loads(out)
    assert reply["kind"] == "error"
    assert reply["error"].startswith(f"refused: uid {STRANGER} (pid ")
    assert reply["error"].endswith("is not the controller's user; the API is owner-only")
    assert server.refused == 1


@needs_root
async def test_a_group_socket_admits_its_members_only(open_dir: Path) -> None:
    requests: list[object] = []
    api = ApiServer(
        open_dir / "api.sock",
        lambda client, request: requests.append(request),
        policy=PeerPolicy(owner_uid=os.getuid(), group_gid=NOBODY),
    )
    await api.start()
    try:
        mode = api.socket_path.stat()
        assert (oct(mode.st_mode & 0o777), mode.st_gid) == ("0o660", NOBODY)
        await asyncio.to_thread(hello_as, NOBODY, NOBODY, api.socket_path, False)
        await asyncio.sleep(0.1)
        assert len(requests) == 1 and api.refused == 0  # a member got through
        out = await asyncio.to_thread(hello_as, STRANGER, STRANGER, api.socket_path)
        assert out == "connect failed: Permission denied"
    finally:
        await api.close()


def test_the_kernel_reports_our_own_credentials() -> None:
    from sessionconsole.core.peers import peer_of

    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        peer = peer_of(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())


def test_an_unknown_group_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = controller_refusal(tmp_path, "--group", "no-such-group-here")
    assert result.returncode == 2
    assert "no such group 'no-such-group-here'" in result.stderr
    assert not (tmp_path / "s.sock").exists()
