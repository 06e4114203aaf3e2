"""The TUI driven with Pilot against a real controller process and a real US-1 simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Input

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import ConfigureCommand, StartCommand
from sessionconsole.model.settings import UltrasoundSettings
from sessionconsole.testing import SimProcess
from sessionconsole.ui.app import SessionConsoleApp
from tests.support import ControllerProcess, entries

SETTINGS = UltrasoundSettings(frequency_khz=1000, intensity_w_cm2=1.0, duty_pct=100, time_s=300)


def describe(pilot: object) -> str:
    """What the screen's message line and banner say, for a failing wait."""
    screen = pilot.app.session_screen  # type: ignore[attr-defined]
    return f"message={screen._message.render()!s} banner={screen._banner.render()!s}"


async def until(pilot: object, predicate: object, timeout_s: float = 10.0) -> None:
    """Let the app run until `predicate()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, f"condition not met in time; {describe(pilot)}"
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def output_on(sim: SimProcess) -> bool:
    return bool(sim.request({"op": "state"})["physics"]["output_active"])


async def start_from_api(controller: ControllerProcess, sim: SimProcess) -> None:
    client = ControllerClient(str(controller.socket_path), operator="tester")
    await client.connect()
    assert (await client.send(ConfigureCommand(device="us1", settings=SETTINGS))).ok
    await asyncio.sleep(0.2)
    assert (await client.send(StartCommand(device="us1"))).ok
    await client.close()
    for _ in range(100):
        if output_on(sim):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("output did not start")


async def test_f12_stops_the_running_output_even_from_a_text_field(
    controller: ControllerProcess, sim: SimProcess
) -> None:
    app = SessionConsoleApp(str(controller.socket_path), operator="pilot")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.client is not None and app._latest is not None)
        await start_from_api(controller, sim)
        await until(
            pilot, lambda: "OUTPUT ON" in str(app.session_screen.panels["us1"].state_line.render())
        )
        app.session_screen.query_one("#intensity", Input).focus()
        await pilot.press("f12")
        await until(pilot, lambda: not output_on(sim), timeout_s=8)
        await until(
            pilot, lambda: "OPERATOR_STOP" in str([e.payload for e in entries(controller.db)])
        )
        assert "STOP ALL" in str(app.session_screen._message.render())


async def test_space_stops_on_the_session_screen_but_types_in_inputs(
    controller: ControllerProcess, sim: SimProcess
) -> None:
    app = SessionConsoleApp(str(controller.socket_path), operator="pilot")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.client is not None and app._latest is not None)
        await start_from_api(controller, sim)
        minutes = app.session_screen.query_one("#minutes", Input)
        intensity = app.session_screen.query_one("#intensity", Input)
        intensity.focus()
        await pilot.press("space")
        await pilot.pause(0.3)
        assert output_on(sim), "space inside a text field must not stop"
        minutes.blur()
        intensity.blur()
        app.set_focus(None)
        await pilot.press("space")
        await until(pilot, lambda: not output_on(sim), timeout_s=8)


async def test_settings_and_start_from_the_form_then_alarm_banner_and_acknowledge(
    controller: ControllerProcess, sim: SimProcess, tmp_path: Path
) -> None:
    app = SessionConsoleApp(str(controller.socket_path), operator="pilot")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.client is not None and app._latest is not None)
        await until(pilot, lambda: app.session_screen.form.selected == "us1")  # offered
        await pilot.click("#configure")
        await until(pilot, lambda: sim.request({"op": "state"})["holding"][1] == 100)
        await pilot.press("s")
        await until(pilot, lambda: output_on(sim))
        # A refused setting is explained, not silently dropped.
        intensity = app.session_screen.query_one("#intensity", Input)
        intensity.value = "2.5"
        await pilot.click("#configure")
        await until(pilot, lambda: "Refused" in str(app.session_screen._message.render()))
        assert "2.50 W/cm²" in str(app.session_screen._message.render())
        # Overtemp: a high alarm in words on the banner, then acknowledge is recorded.
        sim.request({"op": "inject", "fault": "overtemp"})
        banner = app.session_screen._banner
        await until(pilot, lambda: "HIGH PRIORITY ALARM" in str(banner.render()), timeout_s=5)
        assert banner.has_class("high")
        await pilot.press("a")
        await until(pilot, lambda: "acknowledged" in str(banner.render()))
        acks = [
            e
            for e in entries(controller.db)
            if e.kind == "alarm" and e.payload["change"] == "acknowledged"
        ]
        assert acks and acks[0].payload["acknowledged_by"] == "pilot"


async def test_unreachable_controller_is_shown_and_the_ui_reconnects(
    sim: SimProcess, tmp_path: Path
) -> None:
    from tests.support import write_room

    _, port = sim.modbus_tcp
    room = write_room(tmp_path, port)
    ctl = ControllerProcess(room, tmp_path / "s.db", tmp_path / "api.sock")
    app = SessionConsoleApp(str(ctl.socket_path), operator="pilot")
    async with app.run_test(size=(100, 30)) as pilot:
        connection = app.session_screen._connection
        await until(pilot, lambda: connection.has_class("lost"))
        assert "CONTROLLER UNREACHABLE" in str(connection.render())
        ctl.start()
        try:
            await until(
                pilot, lambda: not connection.has_class("lost") and app._latest is not None, 8
            )
        finally:
            ctl.stop()
        await until(pilot, lambda: connection.has_class("lost"), 5)


async def test_technique_log_from_the_form_and_blank_choices_are_caught(
    controller: ControllerProcess, sim: SimProcess
) -> None:
    from textual.widgets import Select, TabbedContent

    app = SessionConsoleApp(str(controller.socket_path), operator="pilot")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.client is not None and app._latest is not None)
        app.session_screen.query_one("#side", TabbedContent).active = "tab-log"
        await pilot.pause(0.2)
        await pilot.click("#technique-begin")
        await until(
            pilot, lambda: "Choose a technique" in str(app.session_screen._message.render())
        )
        assert not [e for e in entries(controller.db) if e.kind == "technique"]
        app.session_screen.query_one("#technique", Select).value = "trigger_point"
        app.session_screen.query_one("#region", Select).value = "upper_back"
        await pilot.pause(0.5)  # past the button's press effect, as a person would be
        await pilot.click("#technique-begin")
        await until(
            pilot,
            lambda: (
                "trigger_point on upper_back: begin" in str(app.session_screen._message.render())
            ),
        )
        [entry] = [e for e in entries(controller.db) if e.kind == "technique"]
        assert (
            entry.payload["technique"] == "trigger_point" and entry.payload["operator"] == "pilot"
        )
        assert entry.payload["region"] == "upper_back" and entry.payload["action"] == "begin"


async def test_f12_works_with_a_select_menu_open(
    controller: ControllerProcess, sim: SimProcess
) -> None:
    from textual.widgets import Select

    app = SessionConsoleApp(str(controller.socket_path), operator="pilot")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.client is not None and app._latest is not None)
        await start_from_api(controller, sim)
        select = app.session_screen.query_one("#duty", Select)
        select.focus()
        await pilot.press("enter")  # opens the menu overlay
        await pilot.pause(0.2)
        assert select.expanded
        await pilot.press("f12")
        await until(pilot, lambda: not output_on(sim), timeout_s=8)
