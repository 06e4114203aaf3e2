"""Canonical JSON and the per-session hash chain that makes edits to the record evident."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

GENESIS_HASH = "0" * 64
"""prev_hash of the first entry of every session."""

JsonDict = dict[str, Any]


class JsonValueError(ValueError):
    """A payload holds something canonical JSON cannot carry unchanged (the path says where)."""


def check_json(value: object, where: str = "payload") -> None:
    """Raise JsonValueError unless value round-trips exactly through JSON; where names the spot."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonValueError(f"{where}: {value!r} is not allowed (JSON has no NaN/Infinity)")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise JsonValueError(f"{where}: key {key!r} is {type(key).__name__}, not str")
            check_json(item, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]")
        return
    raise JsonValueError(f"{where}: {type(value).__name__} {value!r} is not a JSON value")


def canonical_json(value: object) -> str:
    """Serialise value the one way the chain hashes it: sorted keys, no spaces, raw UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of text as UTF-8; a lone surrogate is refused because UTF-8 cannot hold it."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JsonValueError(f"text holds a lone surrogate at index {exc.start}") from exc
    return hashlib.sha256(data).hexdigest()


def entry_hash(
    *,
    session_id: str,
    seq: int,
    mono_ns: int,
    wall: str,
    kind: str,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """Hash of one entry: SHA-256 of the canonical JSON of all its fields but the hash itself."""
    document = {
        "session_id": session_id,
        "seq": seq,
        "mono_ns": mono_ns,
        "wall": wall,
        "kind": kind,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return sha256_hex(canonical_json(document))


def entry_hash_from_json(
    *,
    session_id: str,
    seq: int,
    mono_ns: int,
    wall: str,
    kind: str,
    payload_json: str,
    prev_hash: str,
) -> str:
    """entry_hash for a payload already in canonical JSON, without re-serialising it.

    Splices the text into the canonical document (keys in sorted order), which gives the same
    bytes as canonical_json of the whole entry because payload_json is itself canonical.
    """

    def text(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    document = (
        f'{{"kind":{text(kind)},"mono_ns":{int(mono_ns)},"payload":{payload_json},'
        f'"prev_hash":{text(prev_hash)},"seq":{int(seq)},"session_id":{text(session_id)},'
        f'"wall":{text(wall)}}}'
    )
    return sha256_hex(document)
