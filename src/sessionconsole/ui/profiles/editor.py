"""Editing one device profile: a field per value, its problem right under it, save when valid.

Opened from the Profiles screen (already unlocked with the biomedical PIN). Every change is
checked at once with the same models `profiles validate` uses (`fields.py`); Save writes the
file atomically, keeping its comments, and only when the profile is valid and the file was
not changed on disk meanwhile. The controller reads profiles when it starts, so the screen
says a saved change needs a controller restart.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Footer, Header, Input, Label, Static
from tomlkit.toml_document import TOMLDocument

from sessionconsole.ui.messages import stop_all
from sessionconsole.ui.profiles.fields import (
    Check,
    ProfileChanged,
    ProfileField,
    check,
    edited,
    fields_of,
    read_document,
    save_document,
)

RECHECK_AFTER_S = 0.15


class ProfileEditScreen(Screen[bool]):
    """One profile's fields; dismissed with True when something was saved."""

    CSS_PATH = "profiles.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", key_display="^S"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, path: Path) -> None:
        super().__init__(id="profile-edit")
        self.path = path
        self.opened_text = ""
        self.doc: TOMLDocument | None = None
        self.fields: list[ProfileField] = []
        self.result = Check()
        self.saved = False
        self._discard_armed = False
        self._recheck_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Opening {self.path.name}…", id="edit-status")
        yield Static("", id="edit-file-problems")
        yield VerticalScroll(id="edit-fields")
        with Horizontal(id="edit-buttons"):
            yield Button("Save ^S", id="save", compact=True, disabled=True)
            yield Button("Back (Esc)", id="back", compact=True)
        yield Button("STOP ALL   (F12)", id="stop-all-edit", classes="stop-all")
        yield Footer()

    def on_mount(self) -> None:
        self._open()

    @work(exclusive=True, group="profile-open")
    async def _open(self) -> None:
        try:
            self.opened_text, doc = await asyncio.to_thread(read_document, self.path)
        except (OSError, ValueError) as exc:
            self.query_one("#edit-status", Static).update(f"CANNOT EDIT: {exc}")
            return
        self.doc = doc
        self.fields = fields_of(doc)
        rows = [self._row(i, f) for i, f in enumerate(self.fields)]
        await self.query_one("#edit-fields", VerticalScroll).mount_all(rows)
        if self.fields:
            self.query_one("#f0", Input).focus()
        self._recheck()

    def _row(self, index: int, profile_field: ProfileField) -> Vertical:
        wid = f"f{index}"  # keys may hold characters ids may not
        return Vertical(
            Horizontal(
                Label(profile_field.name, classes="field-name"),
                Input(profile_field.text, id=wid, compact=True, classes="field-value"),
                classes="field-row",
            ),
            Static("", id=f"{wid}-problem", classes="field-problem"),
            classes="field",
        )

    # ---- checking ----

    def texts(self) -> dict[str, str]:
        """What each field holds now, by field name."""
        return {f.name: self.input(i).value for i, f in enumerate(self.fields)}

    def input(self, index: int) -> Input:
        """The input of field number index."""
        return self.query_one(f"#f{index}", Input)

    def changed(self) -> bool:
        """True when any field differs from the file as opened."""
        return any(self.texts()[f.name] != f.text for f in self.fields)

    @on(Input.Changed, ".field-value")
    def _edited(self) -> None:
        """Check again shortly after the typing stops: one check for a burst of changes (every
        field's input reports a change when it is mounted: 220 of them in a generic profile)."""
        self._discard_armed = False
        if self._recheck_timer is not None:
            self._recheck_timer.stop()
        self._recheck_timer = self.set_timer(RECHECK_AFTER_S, self._recheck)

    def _recheck(self) -> Check:
        """Check the fields as they stand and show each problem under its field."""
        if self.doc is None:
            return self.result
        new_doc, not_values = edited(self.doc, self.fields, self.texts())
        self.result = check(new_doc, self.fields)
        for name, problem in not_values.items():
            self.result.by_field[name] = [problem]
        for i, f in enumerate(self.fields):
            problems = self.result.by_field.get(f.name, [])
            line = self.query_one(f"#f{i}-problem", Static)
            line.update("\n".join(f"^ {p}" for p in problems))
            line.display = bool(problems)
            self.input(i).set_class(bool(problems), "invalid")
        whole = self.query_one("#edit-file-problems", Static)
        whole.update("\n".join(self.result.whole_file))
        whole.display = bool(self.result.whole_file)
        count = sum(map(len, self.result.by_field.values())) + len(self.result.whole_file)
        changed = self.changed()
        word = "VALID" if self.result.ok else f"INVALID ({count} problem(s))"
        edits = "unsaved changes" if changed else "no changes"
        self.query_one("#edit-status", Static).update(f"{word}: {self.path.name}, {edits}")
        self.query_one("#save", Button).disabled = not (self.result.ok and changed)
        return self.result

    # ---- saving and leaving ----

    def action_save(self) -> None:
        """Write the file when the profile is valid and changed."""
        result = self._recheck()
        status = self.query_one("#edit-status", Static)
        if self.doc is None:
            return
        if not result.ok:
            status.update("NOT SAVED: fix the problems shown under the fields first")
            self.app.bell()
            return
        if not self.changed():
            status.update(f"Nothing to save in {self.path.name}")
            return
        new_doc, _ = edited(self.doc, self.fields, self.texts())
        self._save(new_doc)

    @work(exclusive=True, group="profile-save")
    async def _save(self, new_doc: TOMLDocument) -> None:
        status = self.query_one("#edit-status", Static)
        try:
            await asyncio.to_thread(save_document, self.path, new_doc, self.opened_text)
        except (OSError, ProfileChanged) as exc:
            status.update(f"NOT SAVED: {exc}")
            self.app.bell()
            return
        self.opened_text = new_doc.as_string()
        self.doc = new_doc
        self.fields = fields_of(new_doc)  # same places, the values as written
        for i, f in enumerate(self.fields):
            if self.input(i).value != f.text:
                self.input(i).value = f.text
        self.saved = True
        digest = hashlib.sha256(self.opened_text.encode()).hexdigest()[:12]
        self._recheck()
        status.update(
            f"SAVED {self.path.name} (sha256 {digest}…). The controller reads profiles "
            "when it starts: restart it to use this profile."
        )

    def action_back(self) -> None:
        """Leave; unsaved changes need a second Esc."""
        if self.changed() and not self._discard_armed:
            self._discard_armed = True
            self.query_one("#edit-status", Static).update(
                "Unsaved changes: ^S saves, Esc again discards them"
            )
            return
        self.dismiss(self.saved)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop-all-edit":
            self.post_message(stop_all())
        elif event.button.id == "save":
            self.action_save()
        elif event.button.id == "back":
            self.action_back()
