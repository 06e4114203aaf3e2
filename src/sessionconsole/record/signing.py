"""The installation key that signs the record: an owner-only file outside the database.

Each entry's hash (which already covers its content and the hash before it) gets an
HMAC-SHA256 under this key, so someone who edits the database and recomputes every hash still
cannot produce matching signatures without the key file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

KEY_BYTES: Final = 32
_MAC_CONTEXT: Final = b"sessionconsole record entry v1\x00"
_ID_CONTEXT: Final = b"sessionconsole record key id\x00"


class RecordKeyError(Exception):
    """The installation key cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class RecordKey:
    """A loaded signing key and where it came from (the secret is kept out of repr)."""

    secret: bytes = field(repr=False)
    path: Path | None = None

    def __post_init__(self) -> None:
        """Refuse a key of the wrong length (a truncated file, a test typo)."""
        if len(self.secret) != KEY_BYTES:
            raise RecordKeyError(f"record key must be {KEY_BYTES} bytes, got {len(self.secret)}")

    @property
    def key_id(self) -> str:
        """A short public name for the key (16 hex digits), stored beside each signature."""
        return hashlib.sha256(_ID_CONTEXT + self.secret).hexdigest()[:16]

    def sign(self, entry_hash: str) -> str:
        """Hex HMAC-SHA256 of one entry's hash."""
        return hmac.new(
            self.secret, _MAC_CONTEXT + entry_hash.encode("ascii"), "sha256"
        ).hexdigest()

    def signed(self, entry_hash: str, mac: str) -> bool:
        """True when mac is this key's signature of entry_hash (constant-time compare)."""
        return hmac.compare_digest(self.sign(entry_hash), mac)


def load_key(path: Path) -> RecordKey:
    """Read the key file; refuse a missing file, one others may read, or malformed content."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise RecordKeyError(
            f"no record key at {path}: signatures cannot be made or checked without it "
            "(set SESSIONCONSOLE_RECORD_KEY or --key to the installation's key file)"
        ) from None
    except OSError as exc:
        raise RecordKeyError(f"record key {path} cannot be opened: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as file:
        _check_owner_only(path, os.fstat(file.fileno()))
        text = file.read(4 * KEY_BYTES)
    try:
        secret = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise RecordKeyError(f"record key {path} is not {2 * KEY_BYTES} hex digits") from None
    if len(secret) != KEY_BYTES:
        raise RecordKeyError(f"record key {path} is not {2 * KEY_BYTES} hex digits")
    return RecordKey(secret, path)


def _check_owner_only(path: Path, info: os.stat_result) -> None:
    """Refuse a key file that is not a regular file owned by us and closed to group/others."""
    if not stat.S_ISREG(info.st_mode):
        raise RecordKeyError(f"record key {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise RecordKeyError(
            f"record key {path} belongs to uid {info.st_uid}, not to this user ({os.getuid()})"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise RecordKeyError(
            f"record key {path} has mode {mode:04o}: group/others may read or change it; "
            f"it must be owner-only (chmod 600 {path})"
        )


def create_key(path: Path) -> RecordKey:
    """Make a new random key file with mode 0600 (its folder 0700); never overwrite one.

    Written to a temporary file and hard-linked into place, so a concurrent creator or a crash
    cannot leave a half-written key behind.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secret.hex().encode("ascii") + b"\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(tmp, path)  # fails if a key appeared meanwhile: that one wins
    finally:
        tmp.unlink(missing_ok=True)
    _sync_dir(path.parent)
    return RecordKey(secret, path)


def load_or_create_key(path: Path) -> RecordKey:
    """The installation key at path, created on first use."""
    if not path.exists():
        try:
            return create_key(path)
        except FileExistsError:
            pass  # another process created it first; use theirs
        except OSError as exc:
            raise RecordKeyError(f"record key {path} cannot be created: {exc}") from exc
    return load_key(path)


def _sync_dir(folder: Path) -> None:
    """fsync a folder so a new file's name survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
