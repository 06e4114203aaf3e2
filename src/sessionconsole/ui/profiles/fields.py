"""A profile file as editable fields, each checked where it stands (no Textual here).

Every value that is not a table (a number, text, true/false, an array of them) is one field,
named by its dotted path (`link.port`, `registers.3.address`). Text is edited as plain text,
anything else as a TOML value (`250`, `true`, `[10, 20]`). Edits go back into the tomlkit
document, so the file keeps its comments and layout. The check is the one `sessionconsole
profiles validate` runs (the pydantic profile models); each problem goes to the field its
location names, and what names no field (a missing key, an unknown kind) to the file.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from sessionconsole.model.modbus_map import MAP_ERROR
from sessionconsole.model.validation import PROFILE_KINDS

FieldPath = tuple[str | int, ...]


class ProfileChanged(RuntimeError):
    """The file changed on disk after it was opened: saving would overwrite someone's edit."""


@dataclass(frozen=True, slots=True)
class ProfileField:
    """One editable value: where it is, its text, and whether it is plain text."""

    path: FieldPath
    text: str
    is_text: bool

    @property
    def name(self) -> str:
        """The dotted path, as problems and labels show it."""
        return ".".join(map(str, self.path))


@dataclass(slots=True)
class Check:
    """The outcome of checking an edited profile."""

    by_field: dict[str, list[str]] = field(default_factory=dict)
    whole_file: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong anywhere."""
        return not self.by_field and not self.whole_file


def fields_of(doc: TOMLDocument) -> list[ProfileField]:
    """The document's editable values in file order."""
    return list(_walk(doc, ()))


def _walk(container: Mapping[str, Any], base: FieldPath) -> Iterator[ProfileField]:
    for key, value in container.items():
        path = (*base, key)
        if isinstance(value, Table | dict):
            yield from _walk(value, path)
        elif isinstance(value, AoT) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            for index, table in enumerate(value):
                yield from _walk(table, (*path, index))
        else:
            plain = value.unwrap() if hasattr(value, "unwrap") else value
            if isinstance(plain, str):
                yield ProfileField(path, plain, True)
            else:
                yield ProfileField(path, tomlkit.item(plain).as_string(), False)


def parse_value(profile_field: ProfileField, text: str) -> Any:
    """The value typed into a field; ValueError saying what is expected."""
    if profile_field.is_text:
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise ValueError(
            f"{text!r} is not a value here: write a number, true/false or [a, b]"
        ) from None


def edited(
    doc: TOMLDocument, fields: list[ProfileField], texts: Mapping[str, str]
) -> tuple[TOMLDocument, dict[str, str]]:
    """A copy of doc with the fields' new texts; and the texts that are not values, by field."""
    copy = tomlkit.parse(doc.as_string())
    problems: dict[str, str] = {}
    for f in fields:
        text = texts.get(f.name, f.text)
        if text == f.text:
            continue
        try:
            value = parse_value(f, text)
        except ValueError as exc:
            problems[f.name] = str(exc)
            continue
        *parents, last = f.path
        node: Any = copy
        for step in parents:
            node = node[step]
        node[last] = value
    return copy, problems


def check(doc: TOMLDocument, fields: list[ProfileField]) -> Check:
    """Validate the document as a profile; problems by field name, the rest for the file."""
    data = doc.unwrap()
    result = Check()
    kind = data.get("kind")
    model = PROFILE_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        allowed = ", ".join(sorted(PROFILE_KINDS))
        _add(result, {f.name for f in fields}, "kind", f"unknown device kind (allowed: {allowed})")
        return result
    try:
        model.model_validate(data)
    except ValidationError as exc:
        names = {f.name for f in fields}
        for err in exc.errors():
            where = _place(data, tuple(err.get("loc", ())))
            if err.get("type") == MAP_ERROR:
                for place, value, reason in err["ctx"]["problems"]:
                    _add(result, names, f"{where}.{place}", f"{value!r}: {reason}")
            else:
                _add(result, names, where, str(err.get("msg", "invalid")))
    return result


def _place(data: Any, loc: tuple[Any, ...]) -> str:
    """The dotted path a pydantic location names in data ('(file)' for the top level)."""
    parts: list[str] = []
    node = data
    for step in loc:
        present = (isinstance(node, dict) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        )
        node = node[step] if present else None  # a missing key ends the walk in the data
        parts.append(str(step))
    return ".".join(parts) or "(file)"


def _add(result: Check, names: set[str], where: str, message: str) -> None:
    if where in names:
        result.by_field.setdefault(where, []).append(message)
    else:
        result.whole_file.append(f"{where}: {message}")


def read_document(path: Path) -> tuple[str, TOMLDocument]:
    """The file's text and its document; ValueError naming the file when it is not TOML."""
    text = path.read_text(encoding="utf-8")
    try:
        return text, tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ValueError(f"{path.name} is not valid TOML: {exc}") from None


def save_document(path: Path, doc: TOMLDocument, opened_text: str) -> None:
    """Write doc to path atomically, refusing if the file changed since it was opened."""
    if path.read_text(encoding="utf-8") != opened_text:
        raise ProfileChanged(f"{path.name} changed on disk since it was opened; open it again")
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(doc.as_string())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
