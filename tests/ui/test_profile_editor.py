"""Profile editing: each value a field, its problem under it, saved only valid, comments kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.message import Message
from textual.widgets import Input

from sessionconsole.model.paths import config_dir
from sessionconsole.model.validation import validate_profile_file
from sessionconsole.ui.profiles.editor import ProfileEditScreen
from sessionconsole.ui.profiles.fields import (
    Check,
    ProfileChanged,
    check,
    edited,
    fields_of,
    read_document,
    save_document,
)
from sessionconsole.ui.profiles.pin import PIN_ENV
from sessionconsole.ui.profiles.screen import ProfilesScreen
from tests.ui.fake_cli import FakeCli
from tests.ui.test_profiles_screen import offline
from tests.ui.test_session_views import screen_text
from tests.ui.test_summary_screen import stop_alls

PROFILES = config_dir() / "profiles"


def copy_of(name: str, folder: Path) -> Path:
    target = folder / name
    target.write_text((PROFILES / name).read_text())
    return target


@pytest.mark.parametrize("name", sorted(p.name for p in PROFILES.glob("*.toml")))
def test_every_shipped_profile_opens_as_fields_and_checks_valid(name: str) -> None:
    _, doc = read_document(PROFILES / name)
    fields = fields_of(doc)
    assert fields and check(doc, fields).ok
    untouched, problems = edited(doc, fields, {})
    assert problems == {} and untouched.as_string() == (PROFILES / name).read_text()


def test_problems_go_to_their_fields_and_the_rest_to_the_file(tmp_path: Path) -> None:
    _, doc = read_document(copy_of("us1-tcp.toml", tmp_path))
    fields = fields_of(doc)
    names = [f.name for f in fields]
    assert names[:3] == ["kind", "name", "era_cm2"] and "link.port" in names
    new, not_values = edited(
        doc,
        fields,
        {"link.port": "70000", "limits.max_intensity_w_cm2": "lots", "name": ""},
    )
    assert not_values == {
        "limits.max_intensity_w_cm2": "'lots' is not a value here: write a number, "
        "true/false or [a, b]"
    }
    result = check(new, fields)
    assert result.by_field == {
        "link.port": ["Input should be less than or equal to 65535"],
        "name": ["String should have at least 1 character"],
    }
    del new["name"]  # a missing key has no field to show it by: it is the file's problem
    assert check(new, fields_of(new)).whole_file == ["name: Field required"]
    new["kind"] = "toaster"
    assert "unknown device kind" in check(new, fields).by_field["kind"][0]


def test_register_map_problems_reach_their_fields(tmp_path: Path) -> None:
    _, doc = read_document(copy_of("us1-generic.toml", tmp_path))
    fields = fields_of(doc)
    address = next(f for f in fields if f.name.endswith(".address"))
    new, _ = edited(doc, fields, {address.name: "99999"})
    result = check(new, fields)
    assert not result.ok
    assert address.name in result.by_field or any(address.name in p for p in result.whole_file)


def test_saving_keeps_comments_and_refuses_a_file_changed_meanwhile(tmp_path: Path) -> None:
    path = copy_of("us1-tcp.toml", tmp_path)
    opened, doc = read_document(path)
    new, _ = edited(doc, fields_of(doc), {"link.port": "5021"})
    save_document(path, new, opened)
    text = path.read_text()
    assert "port = 5021" in text and "# printed on the head" in text
    assert validate_profile_file(path) == []
    with pytest.raises(ProfileChanged, match="changed on disk"):
        save_document(path, new, opened)  # opened is no longer what the file holds


async def settle(pilot: object, ready: object) -> None:
    """Let the app run until ready() holds or 15 s pass (callers assert)."""
    for _ in range(300):
        await pilot.pause(0.05)  # type: ignore[attr-defined]
        if callable(ready) and ready():
            return


async def test_edit_from_the_profiles_screen_shows_errors_by_the_field_and_saves_when_valid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PIN_ENV, "2468")
    path = copy_of("us1-tcp.toml", tmp_path)
    app = offline(FakeCli({}))
    posted: list[Message] = []
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        profiles = ProfilesScreen(tmp_path, app.records.run)
        await app.push_screen(profiles)
        await pilot.pause(0.1)
        await pilot.press("ctrl+e")  # locked: not offered
        assert not isinstance(app.screen, ProfileEditScreen)
        await pilot.press(*"2468", "enter")
        await settle(pilot, lambda: "VALID us1-tcp.toml" in screen_text(app))
        await pilot.press("ctrl+e")
        await settle(pilot, lambda: isinstance(app.screen, ProfileEditScreen))
        editor = app.screen
        assert isinstance(editor, ProfileEditScreen)
        await settle(pilot, lambda: bool(editor.fields))
        port = editor.input([f.name for f in editor.fields].index("link.port"))
        port.value = "70000"
        port.focus()
        await settle(pilot, lambda: "INVALID" in screen_text(app))  # checked once typing stops
        text = screen_text(app)
        assert "INVALID (1 problem(s)): us1-tcp.toml, unsaved changes" in text
        assert "^ Input should be less than or equal to 65535" in text  # under the field
        await pilot.press("ctrl+s")
        assert "NOT SAVED: fix the problems" in screen_text(app)
        assert "port = 5020" in path.read_text()
        await pilot.press("f12")  # STOP ALL from inside a field of the editor
        await pilot.pause(0.05)
        assert stop_alls(posted) == 1
        port.value = "5021"
        await settle(pilot, lambda: "VALID: us1-tcp.toml, unsaved changes" in screen_text(app))
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "SAVED us1-tcp.toml" in screen_text(app))
        assert "restart it to use this profile" in screen_text(app)
        assert "port = 5021" in path.read_text() and "# printed on the head" in path.read_text()
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is profiles)
        assert app.screen is profiles


async def test_leaving_with_unsaved_changes_needs_a_second_escape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = copy_of("es2-serial.toml", tmp_path)
    before = path.read_text()
    app = offline(FakeCli({}))
    async with app.run_test(size=(80, 24)) as pilot:
        editor = ProfileEditScreen(path)
        await app.push_screen(editor)
        await settle(pilot, lambda: bool(editor.fields))
        editor.query_one("#f1", Input).value = "renamed ES-2"
        await pilot.pause(0.05)
        await pilot.press("escape")
        assert app.screen is editor and "Esc again discards" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is not editor)
        assert app.screen is not editor
    assert path.read_text() == before


async def test_a_long_profile_opens_with_a_few_checks_not_one_per_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every input reports a change when mounted: 220 in us1-generic; checked once they stop."""
    path = copy_of("us1-generic.toml", tmp_path)
    calls: list[int] = []
    real = ProfileEditScreen._recheck

    def counted(self: ProfileEditScreen) -> Check:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(ProfileEditScreen, "_recheck", counted)
    app = offline(FakeCli({}))
    async with app.run_test(size=(100, 30)) as pilot:
        editor = ProfileEditScreen(path)
        await app.push_screen(editor)
        await settle(pilot, lambda: "VALID: us1-generic.toml" in screen_text(app))
        await pilot.pause(0.5)
        assert len(editor.fields) > 200
        assert "VALID: us1-generic.toml, no changes" in screen_text(app)
    assert 1 <= len(calls) < 20, len(calls)  # it was one per field (26 s to open here)
