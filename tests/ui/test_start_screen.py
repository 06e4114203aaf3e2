"""Start screen: pseudonym check, plan and preset screening (agreeing with plans.screening),
confirmations recorded as notes by a real controller (and only then shown CONFIRMED), the
patient sent to the controller, BLOCKED shown in words, Esc skips, F12 in the text field."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message
from textual.widgets import Checkbox, Input, OptionList, Select
from textual.widgets.option_list import Option

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import NoteCommand, PatientCommand
from sessionconsole.model.contraindication import load_contraindications
from sessionconsole.model.paths import config_dir
from sessionconsole.model.plan import (
    ManualStep,
    PatientCondition,
    StimulationStep,
    UltrasoundStep,
    load_plan,
)
from sessionconsole.model.vocabulary import load_vocabulary
from sessionconsole.plans.screening import screen
from sessionconsole.testing import SimProcess
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.messages import SendCommand
from sessionconsole.ui.session_screen import SessionScreen
from sessionconsole.ui.start.checks import Target, applies, findings, plan_targets
from sessionconsole.ui.start.screen import StartScreen, pseudonym_problem
from tests.support import ControllerProcess, entries, write_room
from tests.ui.fixed_snapshots import FakeClock
from tests.ui.test_session_views import screen_text
from tests.ui.test_summary_screen import stop_alls

RULES = load_contraindications(config_dir() / "contraindications.toml")
PLAN = load_plan(config_dir() / "plans" / "PT-0042" / "low-back.toml", "PT-0042")


def test_the_pseudonym_is_checked_with_the_session_rule() -> None:
    assert pseudonym_problem("PT-0042") is None
    problem = pseudonym_problem("Jane Doe")
    assert problem is not None and "never the patient's name" in problem


def test_the_ui_checklist_agrees_with_plans_screening_everywhere() -> None:
    """Every condition alone, every modality and region: the same rules as plans.screening."""
    regions = [r.id for r in load_vocabulary(config_dir() / "vocabulary.toml").regions]
    compared = 0
    for condition in [None, *RULES.conditions]:
        held = [PatientCondition(id=condition)] if condition else []
        for region in regions:
            steps = [
                ManualStep(
                    kind="manual",
                    technique="deep_tissue",
                    region=region,
                    side="left",
                    duration_s=60,
                ),
                ManualStep(
                    kind="manual",
                    technique="lymphatic_drainage",
                    region=region,
                    side="left",
                    duration_s=60,
                ),
                UltrasoundStep.model_validate(
                    {
                        "kind": "ultrasound",
                        "region": region,
                        "side": "left",
                        "duration_s": 60,
                        "ultrasound": {"output": "us1"},
                    }
                ),
                StimulationStep.model_validate(
                    {
                        "kind": "stimulation",
                        "region": region,
                        "side": "left",
                        "duration_s": 60,
                        "stimulation": {"output": "es2.ch1", "amplitude_ma": 10.0},
                    }
                ),
            ]
            for step, target in zip(
                steps,
                [
                    Target("s", "manual", region, "deep_tissue"),
                    Target("s", "manual", region, "lymphatic_drainage"),
                    Target("s", "ultrasound", region),
                    Target("s", "stimulation", region),
                ],
                strict=True,
            ):
                theirs = screen(RULES, held, step)
                mine = findings(RULES, {condition} if condition else set(), [target])
                expected = {f.rule_id for f in (*theirs.blocks, *theirs.confirmations)}
                assert {f.rule.id for f in mine} == expected, (condition, region)
                compared += 1
    assert compared > 100


def test_a_pacemaker_blocks_the_plans_stimulation_steps() -> None:
    found = findings(RULES, {"pacemaker"}, plan_targets(PLAN))
    blocked = [f for f in found if f.blocked]
    assert {f.target.step for f in blocked} == {"step 3", "step 4"}
    assert blocked[0].line("Lumbar").startswith("BLOCKED  step 3, stimulation on Lumbar")
    rule = next(r for r in RULES.rules if r.id == "estim_pacemaker")
    assert not applies(rule, set(), Target("x", "stimulation", "lumbar"))


def app() -> SessionConsoleApp:
    return SessionConsoleApp(
        "/nonexistent.sock", "dana", autoconnect=False, clock=FakeClock(), start=True
    )


def live_app(controller: ControllerProcess) -> SessionConsoleApp:
    """The TUI on a real controller (US-1 simulator; a session opened without a patient)."""
    return SessionConsoleApp(str(controller.socket_path), "dana", start=True)


async def settle(pilot: object, start: StartScreen, ready: object) -> None:
    """Let the app run until ready() holds or 15 s pass (a liveness bound; callers assert)."""
    for _ in range(300):
        await pilot.pause(0.05)  # type: ignore[attr-defined]
        if callable(ready) and ready():
            return


async def test_start_screens_a_plan_confirms_a_rule_and_goes_to_the_session(
    controller: ControllerProcess,
) -> None:
    the_app = live_app(controller)
    posted: list[Message] = []
    async with the_app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        start = the_app.screen
        assert isinstance(start, StartScreen)
        await settle(pilot, start, lambda: len(start.query(Checkbox)) > 0)
        await pilot.press(*"Jane", "space", *"Doe")
        await pilot.pause(0.2)
        text = screen_text(the_app)
        assert "INVALID" in text and "never the patient" in text
        assert "Plans are listed once the code is valid" in text and "plan(s)" not in text
        start.query_one("#pseudonym", Input).value = "PT-0042"
        await settle(pilot, start, lambda: bool(start.plans))
        assert "OK: a valid code" in screen_text(the_app)
        start.query_one("#plan", Select).value = "plan:low-back"
        start.query_one("#cond-pacemaker", Checkbox).value = True
        start.query_one("#cond-pregnancy", Checkbox).value = True
        await pilot.pause(0.1)
        text = screen_text(the_app)
        assert "BLOCKED  step 3, stimulation" in text
        assert any(f.rule.action == "confirm" for f in start.found)
        # Going on is refused while a confirmation is open.
        await pilot.press("ctrl+g")
        assert the_app.screen is start and "to confirm first" in screen_text(the_app)
        # A BLOCKED line cannot be confirmed.
        findings_list = start.query_one("#findings")
        findings_list.focus()
        findings_list.highlighted = 0  # type: ignore[attr-defined]
        await pilot.press("ctrl+o")
        assert "BLOCKED cannot be confirmed" in screen_text(the_app)
        for index, f in enumerate(start.found):
            if not f.blocked:
                findings_list.highlighted = index  # type: ignore[attr-defined]
                await pilot.press("ctrl+o")
        confirms = [f for f in start.found if not f.blocked]
        await settle(pilot, start, lambda: len(start.confirmed) == len(confirms))
        notes = {
            m.command.text
            for m in posted
            if isinstance(m, SendCommand) and isinstance(m.command, NoteCommand)
        }
        assert len(notes) == len(confirms) > 0
        assert all(n.startswith("confirmed by dana: ") and " for step " in n for n in notes)
        assert "Recorded: confirmed by dana" in screen_text(the_app)
        assert all(
            "CONFIRMED" in str(o.prompt) for o in options(start) if "CONFIRM" in str(o.prompt)
        )
        recorded = {e.payload["text"] for e in entries(controller.db) if e.kind == "note"}
        assert recorded == notes  # CONFIRMED is shown for what the record holds
        await pilot.press("ctrl+g")
        await settle(pilot, start, lambda: isinstance(the_app.screen, SessionScreen))
        assert isinstance(the_app.screen, SessionScreen)
        assert "BLOCKED, do not run: step 2, step 3, step 4" in screen_text(the_app)
    [named] = [e.payload for e in entries(controller.db) if e.kind == "patient"]
    assert (named["pseudonym"], named["operator"]) == ("PT-0042", "dana")
    # The screening went first: the conditions ticked and the rules confirmed, by whom.
    [screening] = [e.payload for e in entries(controller.db) if e.kind == "screening"]
    assert [c["id"] for c in screening["conditions"]] == ["pacemaker", "pregnancy"]
    assert screening["confirmed"] == sorted(f.key for f in confirms)
    assert screening["operator"] == "dana"


async def confirm_a_pregnancy_rule(the_app: SessionConsoleApp, pilot: object) -> StartScreen:
    """PT-0042's low-back plan with pregnancy ticked; Ctrl+O on its first CONFIRM line."""
    start = the_app.screen
    assert isinstance(start, StartScreen)
    await settle(pilot, start, lambda: len(start.query(Checkbox)) > 0)
    start.query_one("#pseudonym", Input).value = "PT-0042"
    await settle(pilot, start, lambda: bool(start.plans))
    start.query_one("#plan", Select).value = "plan:low-back"
    start.query_one("#cond-pregnancy", Checkbox).value = True
    await pilot.pause(0.05)  # type: ignore[attr-defined]
    view = start.query_one("#findings", OptionList)
    view.highlighted = next(i for i, f in enumerate(start.found) if not f.blocked)
    await pilot.press("ctrl+o")  # type: ignore[attr-defined]
    return start


async def test_without_the_controller_nothing_shows_confirmed_and_the_screen_stays() -> None:
    the_app = app()  # no controller: every command fails to send
    async with the_app.run_test(size=(80, 24)) as pilot:
        start = await confirm_a_pregnancy_rule(the_app, pilot)
        await settle(pilot, start, lambda: not start.confirming)
        assert start.confirmed == set()
        assert "Confirmation not recorded: Not sent: the controller is unreachable" in (
            screen_text(the_app)
        )
        assert not any("CONFIRMED" in str(o.prompt) for o in options(start))
        start.query_one("#cond-pregnancy", Checkbox).value = False
        await pilot.pause(0.05)
        await pilot.press("ctrl+g")  # nothing to confirm now, but the patient cannot be sent
        await settle(pilot, start, lambda: "Not started" in screen_text(the_app))
        assert the_app.screen is start
        assert "Not started: Not sent: the controller is unreachable" in screen_text(the_app)


async def test_the_sessions_patient_is_offered_and_another_one_is_refused(
    controller: ControllerProcess,
) -> None:
    other = ControllerClient(str(controller.socket_path), operator="front-desk")
    await other.connect()
    try:
        assert (await other.send(PatientCommand(pseudonym="PT-0043"))).ok
    finally:
        await other.close()
    the_app = live_app(controller)
    async with the_app.run_test(size=(80, 24)) as pilot:
        start = the_app.screen
        assert isinstance(start, StartScreen)
        field = start.query_one("#pseudonym", Input)
        await settle(pilot, start, lambda: field.value == "PT-0043")
        assert field.value == "PT-0043"  # offered from the controller's snapshot
        field.value = "PT-0042"
        await pilot.pause(0.05)
        await pilot.press("ctrl+g")
        assert the_app.screen is start
        assert "this session is for PT-0043, not PT-0042" in screen_text(the_app)


def options(start: StartScreen) -> list[Option]:
    view = start.query_one("#findings", OptionList)
    return [view.get_option_at_index(i) for i in range(view.option_count)]


async def test_another_plan_or_patient_needs_its_own_confirmations(
    controller: ControllerProcess,
) -> None:
    the_app = live_app(controller)
    async with the_app.run_test(size=(80, 24)) as pilot:
        start = await confirm_a_pregnancy_rule(the_app, pilot)
        await settle(pilot, start, lambda: len(start.confirmed) == 1)
        assert len(start.confirmed) == 1
        start.query_one("#pseudonym", Input).value = "PT-0043"
        await pilot.pause(0.05)
        assert start.confirmed == set()


async def test_a_preset_needs_a_region_and_esc_skips() -> None:
    the_app = app()
    async with the_app.run_test(size=(80, 24)) as pilot:
        start = the_app.screen
        assert isinstance(start, StartScreen)
        await settle(pilot, start, lambda: bool(start.library.presets))
        preset = next(i for i, p in start.library.presets.items() if p.modality == "ultrasound")
        start.query_one("#plan", Select).value = f"preset:{preset}"
        start.query_one("#cond-pregnancy", Checkbox).value = True
        await pilot.pause(0.05)
        assert "Pick a plan, or a preset and a region" in screen_text(the_app)
        start.query_one("#region", Select).value = "abdomen"
        await pilot.pause(0.05)
        assert f"BLOCKED  {preset}, ultrasound on" in screen_text(the_app)
        await pilot.press("escape")
        assert isinstance(the_app.screen, SessionScreen)


async def test_f12_from_the_start_screen_even_in_the_pseudonym_field() -> None:
    the_app = app()
    posted: list[Message] = []
    async with the_app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        assert isinstance(the_app.screen, StartScreen)
        assert isinstance(the_app.focused, Input)
        await pilot.press("f12")
        await pilot.pause(0.05)
        assert stop_alls(posted) == 1
        assert isinstance(the_app.screen, StartScreen)


async def test_the_command_palette_offers_start_and_profiles() -> None:
    the_app = SessionConsoleApp("/x.sock", "dana", autoconnect=False, clock=FakeClock())
    async with the_app.run_test(size=(80, 24)) as pilot:
        titles = {c.title for c in the_app.get_system_commands(the_app.screen)}
        assert {"Start", "Profiles"} <= titles
        the_app.action_start()
        await pilot.pause(0.2)
        assert isinstance(the_app.screen, StartScreen)


async def test_another_patients_plan_refuses_the_patient_and_records_no_screening(
    sim: SimProcess, tmp_path: Path
) -> None:
    """A controller following PT-0042's plan, opened without --patient: typing PT-0099 is
    refused, and the screening (sent only after the patient is accepted) is not recorded."""
    room = write_room(tmp_path, sim.modbus_tcp[1])
    plan = tmp_path / "plan.toml"
    plan.write_text((config_dir() / "plans" / "PT-0042" / "low-back.toml").read_text())
    ctl = ControllerProcess(room, tmp_path / "s.db", tmp_path / "api.sock", ("--plan", str(plan)))
    ctl.start()
    try:
        the_app = live_app(ctl)
        async with the_app.run_test(size=(80, 24)) as pilot:
            start = the_app.screen
            assert isinstance(start, StartScreen)
            start.query_one("#pseudonym", Input).value = "PT-0099"
            await pilot.pause(0.1)
            await pilot.press("ctrl+g")
            await settle(pilot, start, lambda: "Not started" in screen_text(the_app))
            assert the_app.screen is start
            assert "Not started: Refused: the session follows a plan for PT-0042" in (
                screen_text(the_app)
            )
        kinds = [e.kind for e in entries(ctl.db)]
        assert "refusal" in kinds and "screening" not in kinds and "patient" not in kinds
    finally:
        ctl.stop()
