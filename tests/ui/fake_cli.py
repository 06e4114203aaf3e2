"""A stand-in for `sessionconsole` child processes: canned output per sub-command, calls kept."""

from __future__ import annotations

from collections.abc import Sequence

from sessionconsole.ui.cli_runner import CliResult


class FakeCli:
    """Answers `run(args)` from `answers` keyed by the first two arguments (e.g. records bill)."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    async def __call__(self, args: Sequence[str]) -> CliResult:
        self.calls.append(tuple(args))
        code, out = self.answers.get((args[0], args[1]), (2, ""))
        return CliResult(tuple(args), code, out if code == 0 else "", "" if code == 0 else out)
