"""Start: who the session is for, the plan or preset, and the contraindication checklist.

Shown at launch before the session screen (Esc skips it) and from the command palette.
The pseudonym is checked with `SessionPeople`'s rule; files are read in a worker. Ticking a
condition lists the rules that apply per modality and region (`start/checks.py`): BLOCKED
steps may not run; CONFIRM rules are confirmed one by one, each sent as a NoteCommand so the
session record keeps who confirmed what; a rule shows CONFIRMED only once the controller has
recorded the note. "To session" sends the pseudonym (PatientCommand: it names the patient of
a session opened without one, or checks it against the session's), then, once that is
accepted, the screening (ScreeningCommand: the ticked conditions and the confirmed rules; a
guided session checks each step against it again); the screen is left only once the
controller has accepted both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import ValidationError
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Header, Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from sessionconsole.api.messages import (
    NoteCommand,
    PatientCommand,
    ScreenedCondition,
    ScreeningCommand,
)
from sessionconsole.model.contraindication import Contraindications, load_contraindications
from sessionconsole.model.plan import TreatmentPlan, load_plan, plans_of
from sessionconsole.model.preset import Preset, load_presets
from sessionconsole.model.session import SessionPeople
from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.ui.messages import CommandAnswered, Say, SendCommand, stop_all
from sessionconsole.ui.start.checks import (
    Finding,
    Target,
    confirmation_note,
    findings,
    plan_targets,
    preset_targets,
)


class Tick(Checkbox):
    """A checkbox whose mark is X when ticked and blank when not: not only a colour change."""

    @property
    def _button(self) -> Content:
        inner = "X" if self.value else " "
        return Content.assemble(self.BUTTON_LEFT, (inner, "bold"), self.BUTTON_RIGHT)


def pseudonym_problem(value: str) -> str | None:
    """Why the pseudonym is not acceptable (SessionPeople's own message), or None."""
    try:
        SessionPeople(therapist="-", patient_pseudonym=value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    return None


@dataclass(frozen=True, slots=True)
class Library:
    """What the Start screen reads once: the rules and the presets (or why they are missing)."""

    rules: Contraindications | None
    presets: dict[str, Preset]
    problems: tuple[str, ...]


def read_library(config: Path) -> Library:
    """Read contraindications.toml and protocols/*.toml; a broken file is a line, not a crash."""
    problems: list[str] = []
    rules: Contraindications | None = None
    presets: dict[str, Preset] = {}
    try:
        rules = load_contraindications(config / "contraindications.toml")
    except (OSError, ValueError) as exc:
        problems.append(f"contraindications.toml unreadable, no screening possible: {exc}")
    try:
        presets = load_presets(config / "protocols")
    except (OSError, ValueError) as exc:
        problems.append(f"protocols unreadable: {exc}")
    return Library(rules, presets, tuple(problems))


def read_plans(plans_dir: Path, pseudonym: str) -> tuple[dict[str, TreatmentPlan], list[str]]:
    """The patient's plans by file stem, and a line per plan that did not load."""
    plans: dict[str, TreatmentPlan] = {}
    problems: list[str] = []
    for path in plans_of(plans_dir, pseudonym):
        try:
            plans[path.stem] = load_plan(path, pseudonym)
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: {str(exc).splitlines()[0]}")
    return plans, problems


class StartScreen(Screen[None]):
    """Patient, plan or preset, contraindications; Esc skips to the session screen."""

    CSS_PATH = "start.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "skip", "Skip"),
        Binding("ctrl+o", "confirm", "Confirm rule", key_display="^O"),
        Binding("ctrl+g", "go", "To session", key_display="^G"),
    ]

    def __init__(self, config: Path, vocabulary: Vocabulary, operator: str) -> None:
        super().__init__(id="start")
        self.config = config
        self.vocabulary = vocabulary
        self.operator = operator
        self.library = Library(None, {}, ())
        self.plans: dict[str, TreatmentPlan] = {}
        self.found: list[Finding] = []
        self.confirmed: set[str] = set()
        self.confirming: dict[str, str] = {}  # note text sent -> finding key, until answered
        self.session_for: str | None = None  # the session's patient, as the controller says
        self._leaving = False  # the patient was sent; leave once the controller accepts
        self.region_labels = {r.id: r.label for r in vocabulary.regions}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="start-patient"):
            yield Input(placeholder="pseudonym, e.g. PT-0042", id="pseudonym", compact=True)
            yield Static("Patient code: never a name", id="pseudonym-check")
        with Horizontal(id="start-pick"):
            yield Select[str]([], prompt="plan or preset", id="plan", compact=True)
            regions = [(r.label, r.id) for r in self.vocabulary.regions]
            yield Select[str](regions, prompt="region (preset)", id="region", compact=True)
        with Horizontal(id="start-body"):
            with VerticalScroll(id="conditions"):
                yield Static("Patient has:", classes="heading")
            yield OptionList(id="findings")
        yield Static("", id="start-status")
        with Horizontal(id="start-buttons"):
            yield Button("Confirm rule ^O", id="confirm", compact=True)
            yield Button("To session ^G", id="go", compact=True)
            yield Button("Skip (Esc)", id="skip", compact=True)
        yield Button("STOP ALL   (F12)", id="stop-all-start", classes="stop-all")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pseudonym", Input).focus()
        self.say("Type the patient's code; reading the rules and presets…")
        self._load_library()

    def say(self, text: str) -> None:
        self.query_one("#start-status", Static).update(text)

    # ---- reading files (workers) ----

    @work(exclusive=True, group="start-library")
    async def _load_library(self) -> None:
        self.library = await asyncio.to_thread(read_library, self.config)
        box = self.query_one("#conditions", VerticalScroll)
        if self.library.rules is not None:
            for cid, label in self.library.rules.conditions.items():
                await box.mount(Tick(label, id=f"cond-{cid}", compact=True, tooltip=label))
        self._fill_choices()
        self.say("; ".join(self.library.problems) or "Pick a plan or a preset, tick conditions.")

    @work(exclusive=True, group="start-plans")
    async def _load_plans(self, pseudonym: str) -> None:
        plans_dir = self.config / "plans"
        plans, problems = await asyncio.to_thread(read_plans, plans_dir, pseudonym)
        if self.query_one("#pseudonym", Input).value != pseudonym:
            return  # typed on meanwhile: that answer is for another code
        self.plans = plans
        self._fill_choices()
        found = f"{len(self.plans)} plan(s) for {pseudonym}"
        self.say("; ".join([found, *problems]))

    def _fill_choices(self) -> None:
        options = [(f"plan {stem}: {p.title}", f"plan:{stem}") for stem, p in self.plans.items()]
        options += [(f"preset {p.label}", f"preset:{i}") for i, p in self.library.presets.items()]
        self.query_one("#plan", Select).set_options(options)
        self._screen()

    # ---- the checklist ----

    def ticked(self) -> set[str]:
        """Condition ids ticked."""
        return {str(box.id).removeprefix("cond-") for box in self.query(Checkbox) if box.value}

    def targets(self) -> list[Target]:
        """What the chosen plan or preset applies where (a preset needs a region)."""
        choice = self.query_one("#plan", Select).value
        if not isinstance(choice, str):
            return []
        kind, _, name = choice.partition(":")
        if kind == "plan" and name in self.plans:
            return plan_targets(self.plans[name])
        region = self.query_one("#region", Select).value
        if kind == "preset" and name in self.library.presets and isinstance(region, str):
            return preset_targets(self.library.presets[name], region)
        return []

    def _screen(self) -> None:
        view = self.query_one("#findings", OptionList)
        view.clear_options()
        targets = self.targets()
        if self.library.rules is None:
            self.found = []
            view.add_option(Option("NOT SCREENED: the rules file could not be read", disabled=True))
            return
        if not targets:
            view.add_option(Option("Pick a plan, or a preset and a region", disabled=True))
            self.found = []
            return
        self.found = findings(self.library.rules, self.ticked(), targets)
        for f in self.found:
            line = f.line(self.region_labels.get(f.target.region, f.target.region))
            if f.key in self.confirmed:
                line = line.replace("CONFIRM", "CONFIRMED", 1)
            elif f.key in self.confirming.values():
                line = line.replace("CONFIRM", "CONFIRMING…", 1)
            view.add_option(Option(line, id=f.key))
        steps = sorted({t.step for t in targets}, key=[t.step for t in targets].index)
        clear = [s for s in steps if all(f.target.step != s for f in self.found)]
        if clear:
            view.add_option(Option(f"OK  no rule applies: {', '.join(clear)}", disabled=True))

    @on(Input.Changed, "#pseudonym")
    def _pseudonym_typed(self, event: Input.Changed) -> None:
        check = self.query_one("#pseudonym-check", Static)
        problem = pseudonym_problem(event.value)
        check.set_class(problem is not None, "invalid")
        check.update(f"INVALID: {problem}" if problem else "OK: a valid code")
        self.plans = {}
        self.confirmed.clear()  # another patient: nothing of theirs is confirmed yet
        self.confirming.clear()
        if problem is None:
            self._load_plans(event.value)
        else:
            self.workers.cancel_group(self, "start-plans")
            self._fill_choices()
            self.say("Plans are listed once the code is valid")

    @on(Select.Changed, "#plan")
    def _new_choice(self) -> None:
        self.confirmed.clear()  # a confirmation holds for the step it was given for
        self.confirming.clear()
        self._screen()

    @on(Select.Changed, "#region")
    @on(Checkbox.Changed)
    def _rescreen(self) -> None:
        self._screen()

    # ---- confirming and leaving ----

    def selected(self) -> Finding | None:
        index = self.query_one("#findings", OptionList).highlighted
        return self.found[index] if index is not None and index < len(self.found) else None

    def action_confirm(self) -> None:
        """Confirm the highlighted CONFIRM rule; the note goes to the session record."""
        finding = self.selected()
        if finding is None:
            self.say("Highlight a CONFIRM line in the list first")
        elif finding.blocked:
            self.say(f"BLOCKED cannot be confirmed: {finding.rule.reason}")
        elif finding.key in self.confirmed:
            self.say("Already confirmed")
        elif finding.key in self.confirming.values():
            self.say("Waiting for the controller to record that confirmation")
        else:
            note = confirmation_note(self.operator, finding)
            self.post_message(SendCommand(NoteCommand(text=note), f"Recorded: {note}", self))
            self.confirming[note] = finding.key
            self._screen()
            self.say(f"Sending to the session record: {note}")

    @on(OptionList.OptionSelected, "#findings")
    def _chosen(self) -> None:
        self.action_confirm()

    def session_patient(self, pseudonym: str | None) -> None:
        """The session's patient from the controller: offered in the field while it is empty."""
        if pseudonym == self.session_for:
            return
        self.session_for = pseudonym
        field = self.query_one("#pseudonym", Input)
        if pseudonym is not None and not field.value:
            field.value = pseudonym

    def action_go(self) -> None:
        """To the session screen once the controller has the patient, saying what is open."""
        pseudonym = self.query_one("#pseudonym", Input).value
        problem = pseudonym_problem(pseudonym)
        if problem is not None:
            self.say(f"Not yet: {problem}")
            return
        open_ = [f for f in self.found if not f.blocked and f.key not in self.confirmed]
        if open_:
            self.say(f"Not yet: {len(open_)} rule(s) to confirm first (^O on each)")
            return
        if self.session_for is not None and pseudonym != self.session_for:
            self.say(f"Not yet: this session is for {self.session_for}, not {pseudonym}")
            return
        patient = PatientCommand(pseudonym=pseudonym)
        self.post_message(SendCommand(patient, f"Session patient: {pseudonym}", self))
        self._leaving = True
        self.say(f"Checking {pseudonym} with the controller, then recording the screening…")

    @on(CommandAnswered)
    def _answered(self, message: CommandAnswered) -> None:
        """Mark a confirmation done, or leave for the session, only once the controller says so."""
        command = message.command
        if isinstance(command, NoteCommand) and command.text in self.confirming:
            key = self.confirming.pop(command.text)
            if message.ok:
                self.confirmed.add(key)
                self.say(f"Recorded: {command.text}")
            else:
                self.say(f"Confirmation not recorded: {message.error}")
            self._screen()
        elif isinstance(command, PatientCommand) and self._leaving:
            if not message.ok:  # another patient's session: no screening is recorded for it
                self._leaving = False
                self.say(f"Not started: {message.error}")
                return
            screening = ScreeningCommand(
                conditions=[ScreenedCondition(id=c) for c in sorted(self.ticked())],
                confirmed=sorted(self.confirmed),
            )
            self.post_message(SendCommand(screening, "Screening recorded", self))
        elif isinstance(command, ScreeningCommand) and self._leaving:
            self._leaving = False
            if not message.ok:
                self.say(f"Not started: {message.error}")
            elif self.is_current:
                self._leave()

    def _leave(self) -> None:
        """To the session screen; blocked steps are said there, with the bell."""
        blocked = list(dict.fromkeys(f.target.step for f in self.found if f.blocked))
        self.app.pop_screen()
        if blocked:
            self.post_message(Say(f"BLOCKED, do not run: {', '.join(blocked)}", alert=True))

    def action_skip(self) -> None:
        self.app.pop_screen()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        actions = {"confirm": self.action_confirm, "go": self.action_go, "skip": self.action_skip}
        if event.button.id == "stop-all-start":
            self.post_message(stop_all())
        elif event.button.id in actions:
            actions[event.button.id]()
