"""The TUI with all three simulators and a real mosquitto: a panel per output, stimulation set
from the form with the attended mark, pain and a note recorded, F12 stops every unit."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Input, Select, TabbedContent

from sessionconsole.api.messages import ConfigureCommand, StartCommand, StopAllCommand
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.messages import SendCommand
from tests.core.test_controller_three_units import OUTPUTS, Room, outputs_on
from tests.core.test_controller_three_units import room as room  # the fixture, re-exported
from tests.support import entries
from tests.ui.test_tui_pilot import until


async def test_stimulation_from_the_form_pain_and_note_then_f12_stops_every_unit(
    room: Room,
) -> None:
    posted: list[Message] = []
    app = SessionConsoleApp(str(room.controller.socket_path), operator="pilot")
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        screen = app.session_screen
        await until(pilot, lambda: list(screen.panels) == list(OUTPUTS), timeout_s=10)
        form = screen.form
        await until(pilot, lambda: form.selected is not None)  # the outputs are offered
        form.select("es2.ch1")
        await pilot.pause()
        form.query_one("#amplitude_ma", Input).value = "8.0"
        form.query_one("#ramp_s", Input).value = "1"
        form.query_one("#attended").focus()
        await pilot.press("space")  # ticks "attended": space is the checkbox's, not STOP ALL
        await pilot.click("#configure")
        await until(pilot, lambda: "es2.ch1 settings applied" in str(screen._message.render()))
        await pilot.press("s")
        await until(pilot, lambda: outputs_on(room)["es2.ch1"], timeout_s=5)
        await until(pilot, lambda: "OUTPUT ON" in str(screen.panels["es2.ch1"].state_line.render()))
        screen.query_one("#side", TabbedContent).active = "tab-log"
        await pilot.pause(0.2)
        screen.query_one("#pain-score", Select).value = 7
        await pilot.click("#pain-record")
        screen.query_one("#note", Input).focus()
        await pilot.press(*"tingling", "enter")
        await until(pilot, lambda: "Note added" in str(screen._message.render()))
        await pilot.press("f12")  # focus is still in the note field
        await until(pilot, lambda: not any(outputs_on(room).values()), timeout_s=3)
    sent = [m.command for m in {id(m): m for m in posted if isinstance(m, SendCommand)}.values()]
    assert [type(c) for c in sent[:2]] == [ConfigureCommand, StartCommand]
    assert sent[1] == StartCommand(device="es2.ch1", attended=True)
    assert isinstance(sent[-1], StopAllCommand)
    everything = entries(room.controller.db)
    start = next(e.payload for e in everything if e.kind == "output_start")
    assert start["device"] == "es2.ch1" and start["attended"] is True
    assert start["settings"]["amplitude_ma"] == 8.0
    assert [
        (e.payload["when"], e.payload["score"]) for e in everything if e.kind == "pain_score"
    ] == [("before", 7)]
    assert [e.payload["text"] for e in everything if e.kind == "note"] == ["tingling"]
