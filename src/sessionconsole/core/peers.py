"""Who may talk to the controller: the peer credentials of a Unix-socket client.

The socket file's mode is the first gate (owner-only, or owner and one group). The kernel's
SO_PEERCRED then says which process connected; the controller checks it again, so a socket
file whose mode was loosened by mistake (chmod 666) still refuses strangers.
"""

from __future__ import annotations

import grp
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

_UCRED = struct.Struct("3i")  # pid, uid, gid (struct ucred, Linux)


@dataclass(frozen=True, slots=True)
class Peer:
    """A connected process as the kernel reports it."""

    pid: int
    uid: int
    gid: int
    groups: frozenset[int]


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """The controller's own user, root, and (optionally) the members of one group may connect."""

    owner_uid: int
    group_gid: int | None = None

    def allows(self, peer: Peer) -> bool:
        """Whether this peer may use the API."""
        if peer.uid in (0, self.owner_uid):
            return True
        if self.group_gid is None:
            return False
        return peer.gid == self.group_gid or self.group_gid in peer.groups

    def refusal(self, peer: Peer) -> str:
        """Why a peer is refused, in one line."""
        who = f"uid {peer.uid} (pid {peer.pid})"
        if self.group_gid is None:
            return f"{who} is not the controller's user; the API is owner-only"
        name = group_name(self.group_gid)
        return f"{who} is neither the controller's user nor in group {name}"


def group_name(gid: int) -> str:
    """A group's name, or its number when it has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def group_id(name: str) -> int:
    """A group's id by name; raises ValueError naming the group when it does not exist."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError as exc:
        raise ValueError(f"no such group {name!r} (create it, or leave --group out)") from exc


def peer_of(sock: socket.socket) -> Peer:
    """The credentials of the process at the other end of a connected Unix socket."""
    pid, uid, gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    return Peer(pid, uid, gid, supplementary_groups(pid))


def supplementary_groups(pid: int) -> frozenset[int]:
    """The peer's supplementary groups, from /proc (empty if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return frozenset(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return frozenset()
