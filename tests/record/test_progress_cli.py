"""`sessionconsole progress`: text, JSON and CSV of real records; exit codes; clear errors."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from sessionconsole.record.progress_cli import add_parser
from tests.record.progress_support import WALK, three_visits
from tests.record.test_store import tamperer


def run(*argv: str) -> int:
    """Parse argv with a minimal CLI built by add_parser and run the chosen handler."""
    parser = argparse.ArgumentParser(prog="sessionconsole")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
def clinic(tmp_path: Path) -> tuple[Path, list[str]]:
    db = tmp_path / "record.db"
    return db, three_visits(db)


def test_text_lists_sessions_oldest_first_with_verification(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, (first, second, third, _other) = clinic
    assert run("progress", "PT-0042", "--db", str(db)) == 0
    out = capsys.readouterr().out
    assert out.startswith("Progress of PT-0042: 3 sessions\nall sessions verified")
    assert out.index(first) < out.index(second) < out.index(third)
    assert "pain (NPRS 0-10): before 7/10, after 5/10" in out
    assert "ROM knee flexion right passive: 128 deg" in out
    assert f"  {WALK}: 2026-03-02 not-started -> 2026-03-09 progressing -> 2026-03-16 met" in out


def test_json_is_one_document_the_tui_can_read(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = clinic
    assert run("progress", "PT-0042", "--db", str(db), "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1 and doc["pseudonym"] == "PT-0042" and doc["key_id"]
    assert [s["session_id"] for s in doc["sessions"]] == ids[:3]
    last = doc["sessions"][-1]
    assert (last["pain_before"], last["pain_after"], last["verification"]) == (3, 1, "verified")
    assert last["rom"][0] | {"wall": "?"} == {
        "joint": "knee",
        "movement": "flexion",
        "side": "right",
        "mode": "active",
        "degrees": 120,
        "notes": "",
        "wall": "?",
    }
    assert last["goals"][0]["status"] == "met" and last["goals"][0]["measure"] == "420 m"


def test_csv_has_one_row_per_measure(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, (first, *_rest) = clinic
    assert run("progress", "PT-0042", "--db", str(db), "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    mine = [(r["kind"], r["name"], r["side"], r["mode"], r["value"]) for r in rows]
    assert mine[:6] == [
        ("pain", "NPRS", "before", "", "7"),
        ("pain", "NPRS", "after", "", "5"),
        ("rom", "knee flexion", "right", "active", "85"),
        ("rom", "knee flexion", "right", "passive", "95"),
        ("goal", WALK, "", "", "not-started"),
        ("goal", "climb one flight of stairs", "", "", "not-started"),
    ]
    assert {r["session_id"] for r in rows[:6]} == {first}
    assert len(rows) == 6 + 4 + 5 and {r["verification"] for r in rows} == {"verified"}


def test_a_tampered_session_exits_1_and_is_named(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, (_first, _second, third, _other) = clinic
    with tamperer(db) as conn:
        conn.execute(
            'UPDATE entries SET payload = \'{"score": 0, "when": "after"}\''
            " WHERE session_id = ? AND kind = 'pain_score' AND payload LIKE '%after%'",
            (third,),
        )
    assert run("progress", "PT-0042", "--db", str(db)) == 1
    out = capsys.readouterr().out
    assert f"FAILED verification: session {third} (2026-03-16): entry " in out
    assert "(pain_score)" in out and "[FAILED]" in out


def test_no_verify_exits_3_and_says_not_checked(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ids = clinic
    assert run("progress", "PT-0042", "--db", str(db), "--no-verify") == 3
    assert out_lines_with(capsys, "NOT PROVEN") == 3


def out_lines_with(capsys: pytest.CaptureFixture[str], text: str) -> int:
    return sum(text in line for line in capsys.readouterr().out.splitlines())


def test_a_patient_with_no_sessions_says_so(
    clinic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ids = clinic
    assert run("progress", "PT-7777", "--db", str(db)) == 0
    assert "no sessions recorded for PT-7777" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("Jane Doe",), "patient pseudonym 'Jane Doe' must be a code"),
        (("PT-0042", "--key", "/nonexistent/record.key"), "or pass --no-verify"),
    ],
)
def test_bad_input_is_exit_2_with_one_clear_line(
    clinic: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
) -> None:
    db, _ids = clinic
    assert run("progress", *argv, "--db", str(db)) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and message in captured.err


def test_a_missing_database_is_exit_2_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    assert run("progress", "PT-0042", "--db", str(missing)) == 2
    assert f"no record database at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_a_file_that_is_not_a_record_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all, just text" * 100)
    assert run("progress", "PT-0042", "--db", str(junk)) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_bad_format_is_refused_by_the_parser(clinic: tuple[Path, list[str]]) -> None:
    db, _ids = clinic
    with pytest.raises(SystemExit) as exc:
        run("progress", "PT-0042", "--db", str(db), "--format", "xml")
    assert exc.value.code == 2
