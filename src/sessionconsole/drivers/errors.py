"""Typed driver errors: each says which device and what went wrong, in words staff can act on."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every driver error."""


class DeviceUnreachable(DriverError):
    """No connection: refused, timed out, or dropped."""


class WrongDevice(DriverError):
    """The unit that answered is not the one the profile describes."""


class DeviceRejected(DriverError):
    """The device answered a write with a Modbus exception (e.g. 03 bad value, 06 busy)."""
