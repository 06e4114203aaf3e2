"""Profiles screen: locked without a PIN, refuses a wrong one, then list, validate, probe, F12."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.message import Message

from sessionconsole.model.paths import config_dir
from sessionconsole.ui.app import SessionConsoleApp
from sessionconsole.ui.cli_runner import RecordsAccess
from sessionconsole.ui.profiles.pin import PIN_ENV, pin_matches
from sessionconsole.ui.profiles.screen import ProfilesScreen
from tests.ui.fake_cli import FakeCli
from tests.ui.fixed_snapshots import FakeClock
from tests.ui.test_session_views import screen_text
from tests.ui.test_summary_screen import stop_alls

PROBE = "us1: US-1 firmware 2.3 answered in 12 ms\n"


def test_the_pin_must_be_set_and_equal() -> None:
    assert pin_matches("2468", "2468")
    assert not pin_matches("2469", "2468")
    assert not pin_matches("", None) and not pin_matches("2468", None)


def profiles_folder(tmp_path: Path) -> Path:
    good = (config_dir() / "profiles" / "us1-tcp.toml").read_text()
    (tmp_path / "a-good.toml").write_text(good)
    (tmp_path / "b-bad.toml").write_text('kind = "toaster"\n')
    return tmp_path


def offline(cli: FakeCli) -> SessionConsoleApp:
    records = RecordsAccess(db=None, export_dir="exports", run=cli)
    return SessionConsoleApp(
        "/x.sock", "dana", autoconnect=False, clock=FakeClock(), records=records
    )


async def test_without_a_pin_the_screen_says_how_to_set_one_and_stays_locked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PIN_ENV, raising=False)
    app = offline(FakeCli({}))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = ProfilesScreen(profiles_folder(tmp_path), app.records.run)
        await app.push_screen(screen)
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "LOCKED" in text and f"export {PIN_ENV}=" in text
        assert "a-good.toml" not in text
        screen.action_unlock()
        assert not screen.unlocked and screen.selected() is None


async def test_a_wrong_pin_is_refused_the_right_one_unlocks_validate_and_probe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PIN_ENV, "2468")
    cli = FakeCli({("devices", "probe"): (0, PROBE)})
    app = offline(cli)
    posted: list[Message] = []
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        folder = profiles_folder(tmp_path)
        screen = ProfilesScreen(folder, app.records.run)
        await app.push_screen(screen)
        await pilot.pause(0.1)
        await pilot.press(*"1111", "enter")
        await pilot.pause(0.05)
        assert not screen.unlocked and "LOCKED: wrong PIN" in screen_text(app)
        await pilot.press("f12")  # in the PIN field
        await pilot.press(*"2468", "enter")
        for _ in range(40):
            await pilot.pause(0.05)
            if "VALID a-good.toml" in screen_text(app):
                break
        text = screen_text(app)
        assert screen.unlocked and "UNLOCKED" in text and "b-bad.toml" in text
        assert "VALID a-good.toml" in text and 'kind = "us1"' in text  # the file is shown
        await pilot.press("ctrl+r")
        for _ in range(40):
            await pilot.pause(0.05)
            if "PROBE OK" in screen_text(app):
                break
        assert cli.calls == [("devices", "probe", "--profile", str(folder / "a-good.toml"))]
        assert "PROBE OK a-good.toml: us1: US-1 firmware 2.3" in screen_text(app)
        await pilot.press("down")
        for _ in range(40):
            await pilot.pause(0.05)
            if "INVALID b-bad.toml" in screen_text(app):
                break
        text = screen_text(app)
        assert "INVALID b-bad.toml" in text and "unknown device kind" in text
        assert "PROBE OK" not in text
        await pilot.press("f12")  # in the list
        await pilot.pause(0.05)
        assert stop_alls(posted) == 2


async def test_a_failed_probe_says_so_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PIN_ENV, "2468")
    app = offline(FakeCli({("devices", "probe"): (3, "no answer from 10.0.0.9:502\n")}))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(ProfilesScreen(profiles_folder(tmp_path), app.records.run))
        await pilot.press(*"2468", "enter")
        await pilot.pause(0.2)
        await pilot.press("ctrl+r")
        for _ in range(40):
            await pilot.pause(0.05)
            if "PROBE FAILED" in screen_text(app):
                break
        assert "PROBE FAILED (exit 3) a-good.toml: no answer" in screen_text(app)


async def test_the_palette_action_opens_the_real_profiles_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PIN_ENV, raising=False)
    app = offline(FakeCli({}))
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_profiles()
        await pilot.pause(0.1)
        assert isinstance(app.screen, ProfilesScreen)
        assert app.screen.folder == config_dir() / "profiles"
        await pilot.press("escape")
        assert not isinstance(app.screen, ProfilesScreen)
