"""Fixtures for record tests: the signing key the test's stores use."""

from __future__ import annotations

import pytest

from sessionconsole.record.signing import RecordKey
from tests.record.keys import installed_key


@pytest.fixture
def key() -> RecordKey:
    """The test's installation key."""
    return installed_key()
