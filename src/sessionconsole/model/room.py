"""A treatment room: which devices are at this terminal, each by profile file and link overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionconsole.model.validation import PROFILE_KINDS, AnyProfile


class RoomDevice(BaseModel):
    """One device of a room: a profile file plus per-room overrides of its link (host, port)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    profile: str = Field(min_length=1, description="path, relative to the room file")
    link: dict[str, Any] = Field(default_factory=dict)
    sim_control: str | None = Field(default=None, description="simulator test port host:port")


class Room(BaseModel):
    """A room as written in its TOML file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(min_length=1)
    devices: dict[str, RoomDevice] = Field(min_length=1)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file (tomllib needs binary mode)."""
    with path.open("rb") as fh:
        return tomllib.load(fh)


def load_profile(path: Path, link_overrides: dict[str, Any] | None = None) -> AnyProfile:
    """Read and validate one device profile of any kind, applying a room's link overrides first.

    Raises ValueError for an unknown kind, pydantic.ValidationError for an invalid profile.
    """
    data = read_toml(path)
    if link_overrides:
        link = dict(data.get("link", {}))
        link.update(link_overrides)
        data["link"] = link
    kind = data.get("kind")
    model = PROFILE_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        allowed = ", ".join(sorted(PROFILE_KINDS))
        raise ValueError(f"{path}: kind = {kind!r}: unknown device kind (allowed: {allowed})")
    profile = model.model_validate(data)
    assert isinstance(profile, AnyProfile)
    return profile


def load_room(path: Path) -> tuple[Room, dict[str, AnyProfile]]:
    """Read a room and every profile it names; raises ValidationError or OSError with the file."""
    room = Room.model_validate(read_toml(path))
    profiles = {
        device_id: load_profile(path.parent / device.profile, device.link)
        for device_id, device in room.devices.items()
    }
    return room, profiles
