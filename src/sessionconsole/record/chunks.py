"""Compact samples chunks: one device's readings, column by column, packed and compressed.

A `samples` entry's payload is still canonical JSON (so the chain hashes and signs it like any
other entry), but since encoding `zcol/1` its columns travel as one zlib-compressed,
base64-encoded blob instead of JSON lists:

    {"device": "us1", "encoding": "zcol/1", "n": 3,
     "first_mono_ns": 10, "last_mono_ns": 30,
     "time": ["i8d", 24], "columns": [["state", "json", 20], ["head_temperature_c", "f8", 24]],
     "data": "<base64 of zlib(time bytes + each column's bytes, in that order)>"}

Column dtypes: `f8` float64 and `i8` int64 (little-endian), `b1` one byte per bool, `cat`
for text and None (one byte per reading indexing the JSON list of distinct values that
follows, at most 256), `json` a UTF-8 JSON list (any other mix of None, bool, int, float, str:
exact, as before). The time column is
`i8d` (the first value, then differences; int64 little-endian) or `i8` when a difference does
not fit 64 bits. Sizes are byte lengths before compression. Entries written before this
encoding carry `t_mono_ns` and `values` as JSON lists and no `encoding`; `samples_columns`
reads both.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import zlib
from array import array
from collections.abc import Mapping, Sequence
from itertools import accumulate
from operator import sub
from typing import Any, Final

ENCODING: Final = "zcol/1"
ZLIB_LEVEL: Final = 1  # level 6 saves ~8 % more bytes for ~3x the time

Scalar = None | bool | int | float | str
_BIG_ENDIAN: Final = sys.byteorder == "big"
_TEXT_TYPES: Final = frozenset({str, type(None)})


class ChunkError(ValueError):
    """A samples payload that cannot be decoded; the message says which part and why."""


def _ints(values: Sequence[int]) -> array[int]:
    """int64 array, little-endian (OverflowError when a value does not fit)."""
    packed = array("q", values)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed


def _encode_column(column: Sequence[Any]) -> tuple[str, bytes]:
    """(dtype, bytes) of one column: binary where every value has one plain type, else JSON."""
    types = set(map(type, column))
    if len(types) == 1:
        (only,) = types
        if only is float:
            packed = array("d", column)
            if _BIG_ENDIAN:
                packed.byteswap()
            return "f8", packed.tobytes()
        if only is bool:
            return "b1", bytes(column)
        if only is int:
            try:
                return "i8", _ints(column).tobytes()
            except OverflowError:
                pass  # beyond 64 bits: JSON keeps it exact
    if types <= _TEXT_TYPES:  # states, fault codes: few distinct values, one byte each
        distinct = list(dict.fromkeys(column))
        if len(distinct) <= 256:
            code_of = dict(zip(distinct, range(len(distinct)), strict=True))
            codes = bytes(map(code_of.__getitem__, column))
            return "cat", codes + _json_bytes(distinct)
    return "json", _json_bytes(column)


def _json_bytes(values: Sequence[Any]) -> bytes:
    """A JSON list as UTF-8 (values already checked: scalars, finite, no lone surrogates)."""
    text = json.dumps(values, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _encode_times(times: Sequence[int]) -> tuple[str, bytes]:
    """The time column as first value + differences (compresses to almost nothing)."""
    try:
        packed = array("q", times[:1])
        packed.extend(map(sub, times[1:], times[:-1]))
    except OverflowError:  # two times more than 2**63 ns apart
        return "i8", _ints(times).tobytes()
    if _BIG_ENDIAN:
        packed.byteswap()
    return "i8d", packed.tobytes()


def encode_chunk(
    device: str, times: Sequence[int], columns: Mapping[str, Sequence[Any]]
) -> dict[str, Any]:
    """The samples payload for one device's readings (every column as long as times)."""
    if not times:
        raise ValueError("a samples chunk needs at least one reading")
    t_dtype, t_bytes = _encode_times(times)
    parts = [t_bytes]
    described = []
    for key, column in columns.items():
        if len(column) != len(times):
            raise ValueError(f"{device} column {key!r} has {len(column)} values for {len(times)}")
        dtype, data = _encode_column(column)
        parts.append(data)
        described.append([key, dtype, len(data)])
    blob = zlib.compress(b"".join(parts), ZLIB_LEVEL)
    return {
        "device": device,
        "encoding": ENCODING,
        "n": len(times),
        "first_mono_ns": times[0],
        "last_mono_ns": times[-1],
        "time": [t_dtype, len(t_bytes)],
        "columns": described,
        "data": base64.b64encode(blob).decode("ascii"),
    }


def samples_columns(payload: Mapping[str, Any]) -> tuple[list[int], dict[str, list[Scalar]]]:
    """(times, columns by key) of a samples payload in either encoding; ChunkError if broken."""
    encoding = payload.get("encoding")
    if encoding is None:
        return _legacy_columns(payload)
    if encoding != ENCODING:
        raise ChunkError(f"samples encoding {encoding!r} unknown (this program reads {ENCODING})")
    try:
        n, time_spec, specs = payload["n"], payload["time"], payload["columns"]
        blob = zlib.decompress(base64.b64decode(payload["data"], validate=True))
    except KeyError as exc:
        raise ChunkError(f"samples chunk lacks {exc.args[0]!r}") from None
    except (binascii.Error, zlib.error, TypeError, ValueError) as exc:
        raise ChunkError(f"samples chunk data does not decode: {exc}") from None
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ChunkError(f"samples chunk n={n!r} is not a positive count")
    view = memoryview(blob)
    try:  # a layout that does not unpack as [dtype, bytes] / [key, dtype, bytes] is malformed
        t_dtype, offset = time_spec
        times = _decode_times(t_dtype, view[:offset], n)
        columns: dict[str, list[Scalar]] = {}
        for key, dtype, size in specs:
            if type(key) is not str or key in columns:
                raise ChunkError(f"samples chunk column key {key!r} is not a new str")
            end = offset + size
            columns[key] = _decode_column(key, dtype, view[offset:end], n)
            offset = end
    except ChunkError:
        raise
    except (TypeError, ValueError) as exc:
        raise ChunkError(f"samples chunk layout does not unpack: {exc}") from None
    if offset != len(blob):
        raise ChunkError(f"samples chunk holds {len(blob)} bytes, its columns say {offset}")
    return times, columns


def _decode_times(dtype: str, data: memoryview, n: int) -> list[int]:
    if dtype not in ("i8", "i8d"):
        raise ChunkError(f"samples chunk time dtype {dtype!r} unknown")
    values = _unpack("time", "q", data, n)
    return list(accumulate(values)) if dtype == "i8d" else values


def _decode_column(key: str, dtype: str, data: memoryview, n: int) -> list[Scalar]:
    if dtype == "f8":
        return _unpack(key, "d", data, n)
    if dtype == "i8":
        return _unpack(key, "q", data, n)
    if dtype == "cat":
        distinct = _json_list(key, data[n:])
        codes = data[:n]
        if len(codes) != n or max(codes) >= len(distinct):
            raise ChunkError(f"samples chunk column {key!r}: codes do not match its values")
        return list(map(distinct.__getitem__, codes))
    if dtype == "b1":
        if len(data) != n or bytes(data).translate(None, b"\x00\x01"):
            raise ChunkError(f"samples chunk column {key!r}: {len(data)} bytes are not {n} bools")
        return list(map(bool, data))
    if dtype == "json":
        values = _json_list(key, data)
        if len(values) != n:
            raise ChunkError(f"samples chunk column {key!r} holds {len(values)} values, not {n}")
        return values
    raise ChunkError(f"samples chunk column {key!r} has unknown dtype {dtype!r}")


def _json_list(key: str, data: memoryview) -> list[Scalar]:
    """A JSON list of scalars from data."""
    try:
        values = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChunkError(f"samples chunk column {key!r} is not JSON: {exc}") from None
    if not isinstance(values, list):
        raise ChunkError(f"samples chunk column {key!r} is not a JSON list")
    return values


def _unpack(key: str, code: str, data: memoryview, n: int) -> list[Any]:
    """n fixed-width little-endian numbers from data."""
    if len(data) != 8 * n:
        raise ChunkError(f"samples chunk column {key!r}: {len(data)} bytes for {n} values")
    values = array(code)
    values.frombytes(data)
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tolist()


def _legacy_columns(payload: Mapping[str, Any]) -> tuple[list[int], dict[str, list[Scalar]]]:
    """Samples written as JSON lists (`t_mono_ns`, `values`) before the compact encoding."""
    times, values = payload.get("t_mono_ns"), payload.get("values")
    if not isinstance(times, list) or not isinstance(values, dict):
        raise ChunkError("samples payload has neither an encoding nor t_mono_ns/values lists")
    for key, column in values.items():
        if not isinstance(column, list) or len(column) != len(times):
            raise ChunkError(f"samples column {key!r} is not a list as long as t_mono_ns")
    return list(times), {key: list(column) for key, column in values.items()}
