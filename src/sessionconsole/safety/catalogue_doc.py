"""The interlock catalogue as Markdown, generated from `rules.CATALOGUE` so it cannot drift.

Pure text: `make docs` writes it to docs/INTERLOCKS.md, and a test compares the two.
"""

from __future__ import annotations

from sessionconsole.safety.rules import CATALOGUE, Action, ClearPolicy

ACTION_WORDS = {
    Action.REFUSE: "refuse the command",
    Action.WARN: "warn",
    Action.STOP_DEVICE: "stop that device",
    Action.STOP_ALL: "stop every output of every device",
}
CLEAR_WORDS = {
    ClearPolicy.CONDITION_GONE: "when the condition is gone",
    ClearPolicy.ACK_ONCE_GONE: "latched: on acknowledgement once the cause is gone",
    ClearPolicy.BIOMEDICAL_CLEAR: "locked out: biomedical staff clear it once the output is off",
}


def render() -> str:
    """docs/INTERLOCKS.md."""
    lines = [
        "# Interlocks",
        "",
        "Generated from `src/sessionconsole/safety/rules.py` by `make docs`; do not edit by",
        "hand (a test fails when this file and the code disagree).",
        "",
        "Priorities follow IEC 60601-1-8 (high: immediate response, medium: prompt, low:",
        "awareness). A latched alarm holds its stop until the operator has acknowledged it",
        "and its cause is gone, in either order; while it holds, starts are refused and the",
        "devices it covers get no heartbeats. A locked-out output (a stop not obeyed) holds",
        "the same way until biomedical staff clear the lock-out (`clear_lockout`, role",
        "biomedical), which they can only do once telemetry shows the output off.",
        "",
        "| rule | priority | action | clears | what happened | what to do |",
        "|---|---|---|---|---|---|",
    ]
    for rule in CATALOGUE:
        lines.append(
            f"| `{rule.id}` | {rule.priority.value} | {ACTION_WORDS[rule.action]} | "
            f"{CLEAR_WORDS[rule.clear]} | {rule.description} | {rule.what_to_do} |"
        )
    return "\n".join(lines) + "\n"
