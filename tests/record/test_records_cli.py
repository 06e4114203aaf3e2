"""`records list/show/verify`: output and exit codes on real database files."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

import pytest

from sessionconsole.record.cli import add_parser
from sessionconsole.record.signing import RecordKey
from sessionconsole.record.store import SessionStore
from tests.record.keys import installed_key

T0 = 1_000_000_000
WALL = "2026-11-03T10:00:00+00:00"
END = "2026-11-03T10:30:00+00:00"


def run(*argv: str) -> int:
    """Parse argv with a minimal CLI built by add_parser and run the chosen handler."""
    parser = argparse.ArgumentParser(prog="sessionconsole")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, str, str]:
    """A record with one completed session (4 entries) and, last, one open session (2)."""
    path = tmp_path / "record.db"
    with SessionStore(path, key=installed_key()) as store:
        done = store.open_session({"therapist": "T-01"}, T0, WALL)
        store.append(done, "technique", {"name": "trigger point", "region": "neck"}, T0 + 1, WALL)
        store.append(done, "pain_score", {"score": 3}, T0 + 2, WALL)
        store.end_session(done, "completed", None, {"minutes": 30}, T0 + 3, END)
        open_ = store.open_session({"therapist": "T-02"}, T0 + 4, END)
        store.append(open_, "note", {"text": "ça va"}, T0 + 5, END)
    return path, done, open_


def test_list_prints_one_line_per_session(
    db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, done, open_ = db
    assert run("records", "list", "--db", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{done}  {WALL}  {END}  completed  4 entries  T-01  -",
        f"{open_}  {END}  -  open  2 entries  T-02  -",
    ]


def test_show_last_prints_entries_one_per_line(
    db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = db
    assert run("records", "show", "last", "--db", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].split() == ["2", END, "note", '{"text":"ça', 'va"}']
    assert lines[0].split()[2] == "session_start"


def test_show_by_prefix_as_json(
    db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, done, _ = db
    assert run("records", "show", done[:10], "--json", "--db", str(path)) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in entries] == [
        "session_start",
        "technique",
        "pain_score",
        "session_end",
    ]
    assert entries[1]["payload"] == {"name": "trigger point", "region": "neck"}
    assert set(entries[0]) == {
        "session_id",
        "seq",
        "mono_ns",
        "wall",
        "kind",
        "payload",
        "prev_hash",
        "hash",
    }


def test_show_unknown_session_is_a_clear_error(
    db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = db
    assert run("records", "show", "ffffffff", "--db", str(path)) == 2
    assert "no session id starts with 'ffffffff'" in capsys.readouterr().err


def test_verify_ok(db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, done, _ = db
    assert run("records", "verify", "--db", str(path)) == 0
    key_id = installed_key().key_id
    assert (
        capsys.readouterr().out == f"OK: 2 sessions, 6 entries verified, signed by key {key_id}\n"
    )
    assert run("records", "verify", "--db", str(path), done) == 0
    assert (
        capsys.readouterr().out == f"OK: 1 sessions, 4 entries verified, signed by key {key_id}\n"
    )


def test_verify_names_the_edited_entry(
    db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, done, _ = db
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER entries_refuse_update")
    conn.execute(
        "UPDATE entries SET payload = '{\"score\":1}' WHERE seq = 3 AND session_id = ?", (done,)
    )
    conn.close()
    assert run("records", "verify", "--db", str(path)) == 1
    assert (
        capsys.readouterr().out == f"FAILED: session {done} entry 3 (pain_score): hash mismatch\n"
    )
    assert run("records", "verify", "--db", str(path), "last") == 0


def test_a_missing_database_is_exit_2_and_is_not_created(
    tmp_path: Path, key: RecordKey, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.db"
    for command in (["list"], ["show", "last"], ["verify"]):
        assert run("records", *command, "--db", str(missing)) == 2
        assert f"error: no record database at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_a_file_that_is_not_a_record_is_exit_2(
    tmp_path: Path, key: RecordKey, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello " * 1000)
    assert run("records", "verify", "--db", str(junk)) == 2
    assert "not a SQLite database" in capsys.readouterr().err


def test_an_empty_record_lists_nothing_and_verifies(
    tmp_path: Path, key: RecordKey, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.db"
    SessionStore(path).close()
    assert run("records", "list", "--db", str(path)) == 0
    assert capsys.readouterr().out == "no sessions recorded\n"
    assert run("records", "verify", "--db", str(path)) == 0
    assert capsys.readouterr().out.startswith("OK: 0 sessions, 0 entries verified, signed by")
    assert run("records", "show", "last", "--db", str(path)) == 2
    assert "holds no sessions" in capsys.readouterr().err


def test_db_is_required() -> None:
    with pytest.raises(SystemExit) as exit_:
        run("records", "list")
    assert exit_.value.code == 2


@pytest.fixture
def clinic(tmp_path: Path) -> tuple[Path, list[str]]:
    """Four sessions over three days, two therapists, two patients (and one without either)."""
    path = tmp_path / "clinic.db"
    starts = [
        ("2026-11-02T23:59:59+00:00", {"therapist": "T-01", "patient_pseudonym": "P-0042"}),
        ("2026-11-03T00:00:00+00:00", {"therapist": "T-02", "patient_pseudonym": "P-0042"}),
        ("2026-11-03T16:30:00+00:00", {"therapist": "T-01", "patient_pseudonym": "P-0077"}),
        ("2026-11-04T09:00:00+00:00", {"room": "Room 2"}),
    ]
    with SessionStore(path, key=installed_key()) as store:
        ids = [store.open_session(meta, T0 + i, wall) for i, (wall, meta) in enumerate(starts)]
    return path, ids


def listed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Session ids printed by `records list`."""
    return [line.split()[0] for line in capsys.readouterr().out.splitlines()]


def test_list_filters_by_day_therapist_and_patient(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, (a, b, c, d) = clinic
    db = ["--db", str(path)]
    assert run("records", "list", *db, "--since", "2026-11-03") == 0
    assert listed(capsys) == [b, c, d]
    assert run("records", "list", *db, "--until", "2026-11-03") == 0
    assert listed(capsys) == [a, b, c]
    assert run("records", "list", *db, "--since", "2026-11-03", "--until", "2026-11-03") == 0
    assert listed(capsys) == [b, c]
    assert run("records", "list", *db, "--therapist", "T-01") == 0
    assert listed(capsys) == [a, c]
    assert run("records", "list", *db, "--patient", "P-0042", "--therapist", "T-02") == 0
    assert listed(capsys) == [b]
    assert run("records", "list", *db, "--patient", "P-9999") == 0
    assert capsys.readouterr().out == "no sessions match the filters\n"


def test_show_last_with_filters_is_the_last_match(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, (a, b, c, _) = clinic
    assert run("records", "show", "last", "--db", str(path), "--patient", "P-0042", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["session_id"] == b
    assert run("records", "show", a, "--db", str(path), "--therapist", "T-01") == 0
    capsys.readouterr()
    assert run("records", "show", c, "--db", str(path), "--therapist", "T-02") == 2
    assert f"session {c} does not match the filters" in capsys.readouterr().err
    assert run("records", "show", "last", "--db", str(path), "--patient", "nobody") == 2
    assert "no session matches the filters" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--since", "2026-13-01", "--since '2026-13-01' is not a date: use YYYY-MM-DD (UTC)"),
        ("--until", "yesterday", "--until 'yesterday' is not a date: use YYYY-MM-DD (UTC)"),
        ("--since", "2026-11-03T10:00", "--since '2026-11-03T10:00' is not a date"),
    ],
)
def test_bad_dates_are_clear_errors(
    clinic: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    message: str,
) -> None:
    path, _ = clinic
    for command in ("list", "show"):
        extra = ["last"] if command == "show" else []
        assert run("records", command, *extra, "--db", str(path), option, value) == 2
        assert message in capsys.readouterr().err


def test_an_empty_date_range_is_refused(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = clinic
    argv = ["--since", "2026-11-04", "--until", "2026-11-03"]
    assert run("records", "list", "--db", str(path), *argv) == 2
    assert "--since 2026-11-04 is after --until 2026-11-03" in capsys.readouterr().err
