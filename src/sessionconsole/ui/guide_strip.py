"""The guided session on the session screen: current and next step, time left, the step keys.

Two lines, shown only while the session follows a plan. The state is written in words (READY,
RUNNING, PAUSED), never only in colour. Keys (session screen): g starts or resumes the current
step, h pauses it, k skips it after asking the reason (a deviation needs one).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from sessionconsole.api.guide_messages import (
    GuidePauseCommand,
    GuideResumeCommand,
    GuideSkipCommand,
    GuideSnapshot,
    GuideStartCommand,
    GuideStepSnapshot,
)
from sessionconsole.ui.messages import Say, SendCommand

STATE_WORDS = {"pending": "READY", "active": "RUNNING", "paused": "PAUSED"}
KEYS = "[g] go  [h] pause  [k] skip"


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss from an hour)."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def guide_lines(guide: GuideSnapshot) -> tuple[str, str]:
    """The strip's two lines: the current step with its state and time left; the next step
    (or how the plan ended) and the keys."""
    total = len(guide.steps)
    if guide.current is None:
        counts = {s: sum(1 for x in guide.steps if x.state == s) for s in ("done", "shortened")}
        skipped = sum(1 for x in guide.steps if x.state == "skipped")
        return (
            f"PLAN FINISHED  {guide.title}",
            f"{counts['done']} done, {counts['shortened']} shortened, {skipped} skipped; "
            f"{guide.deviations} deviation(s) recorded",
        )
    cur = guide.steps[guide.current - 1]
    word = STATE_WORDS.get(cur.state, cur.state.upper())
    first = f"STEP {cur.number}/{total} {word}  {cur.label}  {clock(cur.remaining_s)} left"
    second = f"next: {_brief(guide.steps[guide.next - 1])}" if guide.next else "next: (last step)"
    return first, f"{second}   {KEYS}"


def _brief(step: GuideStepSnapshot) -> str:
    """The next step in fewer words (kind and region), so the keys fit at 80 columns."""
    kind_region = " ".join(step.label.split(" ")[:2])
    return f"{step.number} {kind_region} {clock(step.duration_s)}"


class GuideStrip(Static):
    """Current and next plan step; hidden while the session follows no plan."""

    def __init__(self) -> None:
        super().__init__("", id="guide-strip")
        self.guide: GuideSnapshot | None = None
        self.display = False

    def show_guide(self, guide: GuideSnapshot | None) -> None:
        """Draw the newest guide state (None: no plan, the strip is hidden)."""
        self.guide = guide
        self.display = guide is not None
        if guide is None:
            return
        first, second = guide_lines(guide)
        self.update(Text(f"{first}\n{second}"))  # plain text: "[g]" is not markup
        current = guide.steps[guide.current - 1].state if guide.current else "finished"
        self.set_classes(f"guide-{current}")

    def go(self) -> None:
        """Start the current step, or resume it when paused."""
        if self._no_plan():
            return
        assert self.guide is not None
        paused = self.guide.paused
        command = GuideResumeCommand() if paused else GuideStartCommand()
        self.post_message(SendCommand(command, "Step resumed" if paused else "Step started"))

    def hold(self) -> None:
        """Pause the current step (its outputs stop; its timer holds)."""
        if not self._no_plan():
            pause = GuidePauseCommand(reason="paused by the therapist")
            self.post_message(SendCommand(pause, "Step paused"))

    def skip(self) -> None:
        """Ask why, then skip the current step."""
        if not self._no_plan():
            self.app.push_screen(SkipDialog(), self._skip_with)

    def _skip_with(self, reason: str | None) -> None:
        if reason:
            self.post_message(SendCommand(GuideSkipCommand(reason=reason), "Step skipped"))

    def _no_plan(self) -> bool:
        if self.guide is None:
            self.post_message(Say("This session follows no plan", alert=True))
            return True
        return False


class SkipDialog(ModalScreen[str | None]):
    """The reason for skipping a step (recorded with the deviation); Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="skip-dialog"):
            yield Label("Skip the current step: why? (Enter records it, Esc cancels)")
            yield Input(placeholder="reason, e.g. patient asked to stop", id="skip-reason")

    @on(Input.Submitted, "#skip-reason")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
