"""`plan check`: output and exit codes (0 none, 1 problems, 2 invalid files) on real files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sessionconsole.cli import build_parser
from sessionconsole.plans.cli import add_parser
from tests.plans import support
from tests.plans.support import BENCH_ROOM, EXAMPLE_PLAN

PATIENT = str(support.PATIENT)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sessionconsole")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_registered_in_the_main_cli() -> None:
    args = build_parser().parse_args(["plan", "check", "p.toml", "--room", "r.toml"])
    assert args.plan == "p.toml" and args.patient is None


def test_example_plan_is_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code = run("plan", "check", str(EXAMPLE_PLAN), "--room", str(BENCH_ROOM), "--patient", PATIENT)
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("step 4: note: us_subacute_3mhz: duty_pct: clinical range 33-50")
    assert out[-1] == f"{EXAMPLE_PLAN}: OK (4 steps)"


def test_problems_print_one_line_each_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'pseudonym = "PT-0042"\ntitle = "t"\nauthor = "T-01"\n'
        '[[steps]]\nkind = "stimulation"\nregion = "eye"\nside = "left"\nduration_s = 60\n'
        '[steps.stimulation]\noutput = "es2.ch2"\npreset = "nmes"\namplitude_ma = 10.0\n'
        "electrode_area_cm2 = 16.0\n"
    )
    assert run("plan", "check", str(plan), "--room", str(BENCH_ROOM), "--patient", PATIENT) == 1
    assert capsys.readouterr().out.splitlines() == [
        "step 1: refuse: region: stimulation on eye: no electrical stimulation over the eyes or "
        "the head [REF e-stim: eyes/head]"
    ]


def test_invalid_plan_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('pseudonym = "Jane Doe"\ntitle = "t"\nauthor = "T"\nsteps = []\n')
    assert run("plan", "check", str(plan), "--room", str(BENCH_ROOM)) == 2
    err = capsys.readouterr().err
    assert "invalid file" in err and "never a name" in err
    assert run("plan", "check", str(tmp_path / "missing.toml"), "--room", str(BENCH_ROOM)) == 2
