"""Device profiles for biomedical staff: unlock with the PIN, list, view, validate, edit, probe.

Reading and validating files runs in a worker thread; a probe runs
`sessionconsole devices probe --profile FILE` as a child process (`cli_runner`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from sessionconsole.model.validation import validate_profile_file
from sessionconsole.ui.cli_runner import CliRunner, command_line
from sessionconsole.ui.messages import stop_all
from sessionconsole.ui.profiles.editor import ProfileEditScreen
from sessionconsole.ui.profiles.pin import HOW_TO_SET, expected_pin, pin_matches


def read_profile(path: Path) -> tuple[str, list[str]]:
    """A profile's text and its validation lines (empty: valid)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return "", [f"cannot read {path.name}: {exc.strerror or exc}"]
    return text, validate_profile_file(path)


def list_profiles(folder: Path) -> list[Path]:
    """The profile files, sorted by name."""
    return sorted(folder.glob("*.toml"))


class ProfilesScreen(Screen[None]):
    """Locked until the PIN matches; then the profile list, one file, its checks, a probe."""

    CSS_PATH = "profiles.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+t", "validate", "Validate", key_display="^T"),
        Binding("ctrl+r", "probe", "Probe", key_display="^R"),
        Binding("ctrl+e", "edit", "Edit", key_display="^E"),
    ]

    def __init__(self, folder: Path, run: CliRunner) -> None:
        super().__init__(id="profiles", classes="locked")
        self.folder = folder
        self.run = run
        self.files: list[Path] = []
        self.unlocked = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="pin-row"):
            yield Input(placeholder="biomedical PIN", password=True, id="pin", compact=True)
            yield Button("Unlock", id="unlock", compact=True)
        yield Static("", id="pin-status")
        with Horizontal(id="profiles-body"):
            yield OptionList(id="profile-list")
            with Vertical(id="profile-view"):
                yield Static("", id="profile-checks")
                with VerticalScroll(id="profile-text-box"):
                    yield Static("", id="profile-text")
        with Horizontal(id="profile-buttons"):
            yield Button("Validate ^T", id="validate", compact=True)
            yield Button("Probe ^R", id="probe", compact=True)
            yield Button("Edit ^E", id="edit", compact=True)
        yield Static("", id="probe-output")
        yield Button("STOP ALL   (F12)", id="stop-all-profiles", classes="stop-all")
        yield Footer()

    def on_mount(self) -> None:
        pin = self.query_one("#pin", Input)
        if expected_pin() is None:
            pin.disabled = True
            self.query_one("#unlock", Button).disabled = True
            self.query_one("#pin-status", Static).update(f"LOCKED. {HOW_TO_SET}")
        else:
            pin.focus()
            self.query_one("#pin-status", Static).update("LOCKED: type the PIN, Enter")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Validate and probe are not offered (nor shown in the footer) while locked."""
        return self.unlocked or action not in {"validate", "probe", "edit"}

    # ---- the PIN ----

    @on(Input.Submitted, "#pin")
    def _pin_entered(self) -> None:
        self.action_unlock()

    def action_unlock(self) -> None:
        pin = self.query_one("#pin", Input)
        status = self.query_one("#pin-status", Static)
        ok = pin_matches(pin.value, expected_pin())
        pin.value = ""
        if not ok:
            status.update("LOCKED: wrong PIN" if expected_pin() else f"LOCKED. {HOW_TO_SET}")
            self.app.bell()
            return
        self.unlocked = True
        self.remove_class("locked")
        self.refresh_bindings()
        self.query_one("#pin-row").display = False
        status.update(f"UNLOCKED: profiles in {self.folder}")
        self._load_list()

    # ---- list, view, validate ----

    @work(exclusive=True, group="profiles-list")
    async def _load_list(self) -> None:
        self.files = await asyncio.to_thread(list_profiles, self.folder)
        view = self.query_one("#profile-list", OptionList)
        view.clear_options()
        view.add_options([Option(p.name, id=p.name) for p in self.files])
        if not self.files:
            self.query_one("#profile-checks", Static).update(f"No *.toml in {self.folder}")
            return
        view.highlighted = 0
        view.focus()

    def selected(self) -> Path | None:
        """The highlighted profile file."""
        index = self.query_one("#profile-list", OptionList).highlighted
        if not self.unlocked or index is None or index >= len(self.files):
            return None
        return self.files[index]

    @on(OptionList.OptionHighlighted, "#profile-list")
    def _highlighted(self) -> None:
        self.query_one("#probe-output", Static).update("")
        self.action_validate()

    def action_validate(self) -> None:
        path = self.selected()
        if path is not None:
            self.query_one("#profile-checks", Static).update(f"Checking {path.name}…")
            self._show(path)

    @work(exclusive=True, group="profiles-view")
    async def _show(self, path: Path) -> None:
        text, problems = await asyncio.to_thread(read_profile, path)
        checks = self.query_one("#profile-checks", Static)
        checks.set_class(bool(problems), "invalid")
        if problems:
            lines = [line.replace(f"{path}: ", "", 1) for line in problems]
            checks.update(f"INVALID {path.name}:\n" + "\n".join(lines))
        else:
            checks.update(f"VALID {path.name}")
        self.query_one("#profile-text", Static).update(text)

    # ---- edit ----

    def action_edit(self) -> None:
        """Edit the highlighted profile, a field at a time; its checks are shown again after."""
        path = self.selected()
        if path is None:
            self.query_one("#probe-output", Static).update("Unlock and pick a profile first")
            return
        self.app.push_screen(ProfileEditScreen(path), lambda saved: self.action_validate())

    # ---- probe ----

    def action_probe(self) -> None:
        path = self.selected()
        output = self.query_one("#probe-output", Static)
        if path is None:
            output.update("Unlock and pick a profile first")
            return
        args = ["devices", "probe", "--profile", str(path)]
        output.update(f"Probing: {command_line(args)} …")
        self._probe(args)

    @work(exclusive=True, group="profiles-probe")
    async def _probe(self, args: list[str]) -> None:
        result = await self.run(args)
        text = (result.stdout + result.stderr).strip() or "(no output)"
        word = "PROBE OK" if result.ok else f"PROBE FAILED (exit {result.code})"
        name = Path(args[-1]).name
        self.query_one("#probe-output", Static).update(f"{word} {name}: {text}")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        actions = {
            "unlock": self.action_unlock,
            "validate": self.action_validate,
            "probe": self.action_probe,
            "edit": self.action_edit,
        }
        if event.button.id == "stop-all-profiles":
            self.post_message(stop_all())
        elif event.button.id in actions:
            actions[event.button.id]()
