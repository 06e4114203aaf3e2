"""The biomedical PIN: compared in constant time against $SESSIONCONSOLE_BIOMED_PIN."""

from __future__ import annotations

import hmac
import os

PIN_ENV = "SESSIONCONSOLE_BIOMED_PIN"
HOW_TO_SET = (
    f"No PIN is set, so profiles stay locked. Set one before starting the console: "
    f"export {PIN_ENV}=<digits>"
)


def expected_pin() -> str | None:
    """The PIN from the environment; unset or empty: None (nobody may unlock)."""
    return os.environ.get(PIN_ENV) or None


def pin_matches(entered: str, expected: str | None) -> bool:
    """True only when a PIN is set and the entered one equals it (constant-time compare)."""
    if expected is None:
        return False
    return hmac.compare_digest(entered.encode(), expected.encode())
