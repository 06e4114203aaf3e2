"""The session log tab: manual techniques on a body region, pain scores and notes."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select

from sessionconsole.api.messages import LogTechniqueCommand, NoteCommand, PainScoreCommand
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.ui.messages import Say, SendCommand


class SessionLog(VerticalScroll):
    """Technique begin/end, pain before/after (NPRS 0-10) and free-text notes."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        super().__init__(id="session-log")
        self.vocabulary = vocabulary

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("Technique")
            yield Select(
                [(t.label, t.id) for t in self.vocabulary.techniques],
                id="technique",
                prompt="technique",
            )
        with Horizontal(classes="form-row"):
            yield Label("Region")
            yield Select(
                [(r.label, r.id) for r in self.vocabulary.regions],
                id="region",
                prompt="body region",
            )
        with Horizontal(classes="form-row"):
            yield Label("Side")
            yield Select(
                [(s, s) for s in ("left", "right", "bilateral", "midline")],
                value="bilateral",
                id="side-select",
                allow_blank=False,
            )
        with Horizontal(classes="form-row"):
            yield Button("Begin technique", id="technique-begin", compact=True)
            yield Button("End", id="technique-end", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("Pain 0-10")
            yield Select([(str(n), n) for n in range(11)], id="pain-score", prompt="score")
            yield Select(
                [("before", "before"), ("after", "after")],
                value="before",
                id="pain-when",
                allow_blank=False,
            )
        with Horizontal(classes="form-row"):
            yield Button("Record pain", id="pain-record", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("Note")
            yield Input(id="note", placeholder="Enter to add to the record", compact=True)

    @on(Button.Pressed, "#technique-begin")
    def _technique_begin(self) -> None:
        self._technique("begin")

    @on(Button.Pressed, "#technique-end")
    def _technique_end(self) -> None:
        self._technique("end")

    def _technique(self, action: str) -> None:
        technique = self.query_one("#technique", Select).value
        region = self.query_one("#region", Select).value
        side = self.query_one("#side-select", Select).value
        if technique is Select.NULL or region is Select.NULL:
            self.post_message(Say("Choose a technique and a body region first", alert=True))
            return
        command = LogTechniqueCommand.model_validate(
            {"action": action, "technique": technique, "region": region, "side": side}
        )
        self.post_message(SendCommand(command, f"{technique} on {region}: {action}"))

    @on(Button.Pressed, "#pain-record")
    def _pain(self) -> None:
        score = self.query_one("#pain-score", Select).value
        when = self.query_one("#pain-when", Select).value
        if not isinstance(score, int):
            self.post_message(Say("Choose a pain score (0-10) first", alert=True))
            return
        command = PainScoreCommand.model_validate({"when": when, "score": score})
        self.post_message(SendCommand(command, f"Pain {when}: {score}/10 recorded"))

    @on(Input.Submitted, "#note")
    def _note(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        self.post_message(SendCommand(NoteCommand(text=text[:4000]), "Note added"))
        event.input.value = ""
