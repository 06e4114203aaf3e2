"""The session screen and alarm views fed fixed snapshots (no controller): panels, the form,
pain and notes, STOP ALL from every view, bells and escalation, and a frozen 80x24 screen."""

from __future__ import annotations

import io
import os
from pathlib import Path

from rich.console import Console
from textual.message import Message
from textual.widgets import Checkbox, Input, Select, TabbedContent

from sessionconsole.api.messages import (
    AlarmSnapshot,
    Command,
    ConfigureCommand,
    NoteCommand,
    PainScoreCommand,
    StartCommand,
    StopAllCommand,
)
from sessionconsole.model.stimulation import ChannelSetup
from sessionconsole.ui.alarm_views import AlarmEscalationScreen, AlarmListScreen
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.messages import Say, SendCommand
from sessionconsole.ui.output_panel import planned_energy_j
from sessionconsole.ui.settings_form import SettingsForm
from tests.ui.fixed_snapshots import (
    COUPLING_ALARM,
    OLD_ALARM,
    FakeClock,
    feed,
    offline_app,
    outputs,
    snapshot,
    ultrasound,
)

EXPECTED = Path(__file__).parent / "expected"
HIGH = COUPLING_ALARM.model_copy(
    update={"id": 4, "priority": "high", "rule_id": "OVERTEMP", "message": "cx3.us head hot"}
)


def commands(posted: list[Message]) -> list[Command]:
    """Commands the screens asked the app to send (a bubbling message is seen once per hop)."""
    unique = {id(m): m for m in posted if isinstance(m, SendCommand)}
    return [m.command for m in unique.values()]


def screen_text(app: SessionConsoleApp) -> str:
    """The screen as plain text, one line per row (what a person reads, without colour)."""
    console = Console(width=app.size.width, file=io.StringIO(), record=True, color_system=None)
    console.print(app.screen._compositor.render_update(full=True))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def matches_expected(name: str, text: str) -> None:
    """Compare with the reviewed file; SESSIONCONSOLE_UPDATE_EXPECTED=1 writes it anew."""
    path = EXPECTED / name
    if os.environ.get("SESSIONCONSOLE_UPDATE_EXPECTED") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: review, then update it"


async def test_one_panel_per_output_and_a_frozen_80x24_screen() -> None:
    clock = FakeClock()
    app = offline_app(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        feed(app, clock, alarms=(OLD_ALARM, COUPLING_ALARM))
        await pilot.pause(0.2)
        panels = app.session_screen.panels
        assert list(panels) == ["us1", "es2.ch1", "es2.ch2", "cx3.us", "cx3.stim"]
        assert [p.modality for p in panels.values()].count("stimulation") == 3
        assert panels["us1"].time_bar.percentage == 0.6  # 180 of 300 s
        assert len(panels["cx3.stim"].plots[0][5].data or []) == 361  # 3 min at 2 a second
        text = screen_text(app)
        assert "MEDIUM PRIORITY ALARM" in text and "OUTPUT ON" in text and "F12" in text
        matches_expected("session_80x24.txt", text)


async def test_the_form_targets_the_selected_output_with_its_own_settings() -> None:
    clock, posted = FakeClock(), []
    app = offline_app(clock)
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        feed(app, clock, seconds=1)
        form = app.session_screen.form
        await pilot.pause()
        assert form.selected == "us1" and form.query_one("#us-fields").display
        form.select("es2.ch1")
        await pilot.pause()
        assert form.query_one("#stim-fields").display and not form.query_one("#us-fields").display
        form.query_one("#mode", Select).value = "ASYM"
        form.query_one("#amplitude_ma", Input).value = "12.5"
        form.query_one("#electrode_area_cm2", Input).value = "16"
        form.query_one("#electrode_region", Select).value = "lumbar"
        form.query_one("#electrode_side", Select).value = "left"
        form.query_one("#attended", Checkbox).value = True
        await pilot.click("#configure")
        await pilot.press("s")
        form.query_one("#freq_hz", Input).value = "300"  # above the ES-2's 250 Hz
        await pilot.pause(0.4)  # past the button's press effect, as a person would be
        await pilot.click("#configure")
        await pilot.pause()
        configure, start = commands(posted)
        assert isinstance(configure, ConfigureCommand) and configure.device == "es2.ch1"
        assert isinstance(configure.settings, ChannelSetup)
        assert configure.settings.waveform.mode == "ASYM"
        assert configure.settings.amplitude_ma == 12.5
        placed = configure.settings.model_dump(include={"electrode_area_cm2", "electrode_region"})
        assert placed == {"electrode_area_cm2": 16.0, "electrode_region": "lumbar"}
        assert configure.settings.electrode_side == "left"
        assert start == StartCommand(device="es2.ch1", attended=True)
        [refusal] = {m.text for m in posted if isinstance(m, Say) and m.alert}
        assert refusal.startswith("Settings not sent: waveform.freq_hz") and "250" in refusal


def test_outputs_that_arrive_before_the_form_is_mounted_wait_for_the_next_refresh() -> None:
    """A first snapshot can beat the Select's overlay under load: no crash, offered later."""
    form = SettingsForm()
    form.set_outputs(outputs(1.0))  # the Select has no overlay yet
    assert form.selected is None


async def test_the_outputs_are_offered_once_the_form_is_mounted() -> None:
    clock = FakeClock()
    app = offline_app(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.session_screen.form
        form.set_outputs(outputs(1.0))
        await pilot.pause()
        assert form.selected == "us1"


async def test_an_output_chosen_while_the_list_is_rebuilt_stays_chosen() -> None:
    app = offline_app(FakeClock())
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.session_screen.form
        await pilot.pause()
        form.set_outputs(outputs(1.0))
        form.select("es2.ch1")  # a click on a panel before the rebuilt list was drawn
        await pilot.pause()
        assert form.selected == "es2.ch1"


async def test_pain_score_and_note_from_the_log_tab() -> None:
    clock, posted = FakeClock(), []
    app = offline_app(clock)
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        feed(app, clock, seconds=1)
        app.session_screen.query_one("#side", TabbedContent).active = "tab-log"
        await pilot.pause()
        await pilot.click("#pain-record")
        await pilot.pause()
        assert "pain score" in str(app.session_screen._message.render())
        app.session_screen.query_one("#pain-score", Select).value = 6
        await pilot.pause(0.4)
        await pilot.click("#pain-record")
        note = app.session_screen.query_one("#note", Input)
        note.focus()
        await pilot.press(*"calf tender", "enter")
        await pilot.pause()
        assert commands(posted) == [
            PainScoreCommand(when="before", score=6),
            NoteCommand(text="calf tender"),
        ]
        assert note.value == ""


def stop_alls(posted: list[Message]) -> int:
    return sum(isinstance(c, StopAllCommand) for c in commands(posted))


async def test_stop_all_from_every_view_and_widget_space_only_where_nothing_uses_it() -> None:
    clock, posted = FakeClock(), []
    app = offline_app(clock)
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        feed(app, clock, seconds=1)
        screen = app.session_screen
        expected = 0
        for focus in ("#attended", "#amplitude_ma", "#mode"):
            screen.form.select("es2.ch1")
            await pilot.pause()
            screen.query_one(focus).focus()
            await pilot.press("space")  # theirs: toggles, types, opens
            await pilot.press("escape")
            await pilot.press("f12")
            expected += 1
            await pilot.pause()
            assert stop_alls(posted) == expected, focus
        assert screen.query_one("#attended", Checkbox).value  # space toggled it, did not stop
        app.set_focus(None)
        await pilot.press("space")
        await pilot.pause()
        assert stop_alls(posted) == expected + 1
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, AlarmListScreen)
        await pilot.press("f12")
        await pilot.click("#stop-all-alarms")
        await pilot.pause()
        assert stop_alls(posted) == expected + 3
        await pilot.press("escape")
        app.push_screen(app.escalation)
        await pilot.pause()
        await pilot.press("f12")
        await pilot.click("#stop-all-escalation")
        await pilot.pause()
        assert stop_alls(posted) == expected + 5


async def test_alarm_list_keeps_every_alarm_with_times_and_who_acknowledged() -> None:
    clock = FakeClock()
    app = offline_app(clock)
    async with app.run_test(size=(100, 24)) as pilot:
        feed(app, clock, seconds=1, alarms=(OLD_ALARM, COUPLING_ALARM))
        await pilot.press("l")
        await pilot.pause()
        table = app.alarm_list.table
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows[0][:3] == ["3", "MEDIUM", "10:14:52"] and rows[0][5:] == ["ACTIVE", "not yet"]
        assert rows[1][:3] == ["1", "HIGH", "10:05:10"] and rows[1][5:] == ["cleared", "dana"]


async def test_a_high_alarm_rings_flashes_escalates_and_stands_down_on_acknowledge() -> None:
    clock = FakeClock()
    app = offline_app(clock)
    rings: list[float] = []
    app.bell = lambda: rings.append(clock.now_s)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        alarm: tuple[AlarmSnapshot, ...] = (HIGH,)
        banner = app.session_screen._banner
        flashes = set()
        for i in range(0, 320):  # 32 s at the app's 0.1 s sound tick
            clock.now_s = i / 10
            app.show(snapshot(clock.now_s, i, alarm))
            app.sound_tick()
            flashes.add(banner.has_class("flash"))
            if i == 250:
                assert not isinstance(app.screen, AlarmEscalationScreen)
        await pilot.pause()
        assert flashes == {True, False}
        assert rings[0] == 0.0 and len(rings) >= 15
        assert isinstance(app.screen, AlarmEscalationScreen)
        assert "NOT ACKNOWLEDGED" in str(app.escalation.text.render())
        assert "cx3.us head hot" in str(app.escalation.text.render())
        acked = HIGH.model_copy(update={"acknowledged": True, "acknowledged_by": "dana"})
        count = len(rings)
        for i in range(320, 360):
            clock.now_s = i / 10
            app.show(snapshot(clock.now_s, i, (acked,)))
            app.sound_tick()
        await pilot.pause()
        assert len(rings) == count and not isinstance(app.screen, AlarmEscalationScreen)
        assert not banner.has_class("flash")


async def test_audio_pause_silences_the_bell_and_says_so() -> None:
    clock = FakeClock()
    app = offline_app(clock)
    rings: list[float] = []
    app.bell = lambda: rings.append(clock.now_s)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        app.show(snapshot(0.0, 0, (COUPLING_ALARM,)))
        app.sound_tick()
        await pilot.press("p")
        await pilot.pause()
        for i in range(1, 100):
            clock.now_s = i / 10
            app.sound_tick()
        assert rings == [0.0]
        assert "AUDIO PAUSED" in str(app.session_screen._banner.render())
        assert "Audio paused" in str(app.session_screen._message.render())


def test_the_energy_bar_is_against_what_the_settings_deliver_over_their_time() -> None:
    us = ultrasound("us1", "US-1", 180.0)
    assert planned_energy_j(us) == 1500.0  # 1 W/cm2 x 5 cm2 x 100 % x 300 s
    assert planned_energy_j(us.model_copy(update={"era_cm2": None})) is None  # no ERA: no bar
    half_duty = us.settings.model_copy(update={"duty_pct": 50}) if us.settings else None
    assert planned_energy_j(us.model_copy(update={"settings": half_duty})) == 750.0
