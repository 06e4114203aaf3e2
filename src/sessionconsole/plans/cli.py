"""`sessionconsole plan check|new`: the dry-run, and building a plan from presets.

`plan check PLAN --room ROOM [--patient FILE]`: exit 0: no problems; 1: problems (one line
each); 2: a file is missing or invalid.
`plan new PSEUDONYM --title T --step SPEC... [--room ROOM] [-o FILE]` (`plans/writer.py`):
writes config/plans/PSEUDONYM/<name>.toml; with --room it is checked first (every line of
`plan check` shown) and not written while a step is refused (exit 1); confirm and warn lines
are for the therapist to read. Exit 2 for a bad step or an existing file (no --force).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from sessionconsole.model.plan import TreatmentPlan
from sessionconsole.plans.check import Problem


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `plan check` on the main command's subparsers."""
    plan = subparsers.add_parser("plan", help="treatment plans").add_subparsers(
        dest="plan_command", required=True
    )
    check = plan.add_parser(
        "check", help="dry-run a plan: one line per problem; exit 1 if any, 2 if a file is invalid"
    )
    check.add_argument("plan", help="plan TOML file")
    check.add_argument("--room", required=True, help="room TOML file (its units and profiles)")
    check.add_argument("--patient", default=None, help="patient TOML file (conditions, limits)")
    check.add_argument(
        "--config",
        default=None,
        help="configuration folder (default: $SESSIONCONSOLE_CONFIG or config/)",
    )
    check.set_defaults(func=_cmd_check)
    new = plan.add_parser(
        "new",
        help="build a plan from presets, one --step per step (--room: checked first)",
    )
    new.add_argument("pseudonym", help="the patient's pseudonym (a code, never a name)")
    new.add_argument("--title", required=True)
    new.add_argument("--author", default=os.environ.get("USER", "therapist"))
    new.add_argument(
        "--step",
        action="append",
        required=True,
        metavar="SPEC",
        help="kind,key=value,...: e.g. ultrasound,preset=us_chronic_1mhz,output=us1,"
        "region=lumbar,side=left,min=8 (see docs/PLANS.md)",
    )
    new.add_argument("--max-intensity", type=float, default=None, help="patient cap, W/cm2")
    new.add_argument("--max-rms-ma", type=float, default=None, help="patient cap, mA rms")
    new.add_argument("--room", default=None, help="check the plan against this room first")
    new.add_argument("--patient", default=None, help="patient TOML file (with --room)")
    new.add_argument("--name", default="plan", help="file name in the patient's folder")
    new.add_argument("-o", "--output", default=None, help="write here instead")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.add_argument("--config", default=None, help="configuration folder (as for check)")
    new.set_defaults(func=_cmd_new)


def _cmd_new(args: argparse.Namespace) -> int:
    from sessionconsole.model.paths import config_dir
    from sessionconsole.model.preset import load_presets
    from sessionconsole.model.session import check_pseudonym
    from sessionconsole.plans.writer import build_plan, plan_toml

    def fail(why: str) -> int:
        print(f"sessionconsole plan new: {why}", file=sys.stderr)
        return 2

    config = Path(args.config) if args.config else config_dir()
    limits = {
        key: value
        for key, value in (
            ("max_intensity_w_cm2", args.max_intensity),
            ("max_rms_ma", args.max_rms_ma),
        )
        if value is not None
    }
    try:
        check_pseudonym(args.pseudonym)
        presets = load_presets(config / "protocols")
        plan = build_plan(args.pseudonym, args.title, args.author, args.step, presets, limits)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    target = (
        Path(args.output)
        if args.output
        else config / "plans" / args.pseudonym / f"{args.name}.toml"
    )
    if target.exists() and not args.force:
        return fail(f"{target} exists (--force to overwrite it)")
    text = plan_toml(plan, f"by {args.author}")
    if args.room is not None:
        patient = None if args.patient is None else Path(args.patient)
        try:
            notes, problems = _dry_run(plan, Path(args.room), patient, config)
        except (OSError, ValueError) as exc:
            return fail(f"invalid file: {exc}")
        for line in [*notes, *(problem.line() for problem in problems)]:
            print(line)
        refused = [p for p in problems if p.severity == "refuse"]
        if refused:
            print(f"not written: {len(refused)} step problem(s) to fix; run again")
            return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"{target}: written ({len(plan.steps)} steps)")
    return 0


def _dry_run(
    plan: TreatmentPlan, room: Path, patient_file: Path | None, config: Path
) -> tuple[list[str], list[Problem]]:
    """(notes, problems) of `plan` in `room`; OSError or ValueError if a file is bad."""
    from sessionconsole.model.contraindication import load_contraindications
    from sessionconsole.model.limits import load_clinical_limits
    from sessionconsole.model.plan import load_patient
    from sessionconsole.model.preset import load_presets
    from sessionconsole.model.room import load_room
    from sessionconsole.model.vocabulary import load_vocabulary
    from sessionconsole.plans.check import check_plan, plan_notes

    _, profiles = load_room(room)
    patient = None if patient_file is None else load_patient(patient_file)
    clinical = load_clinical_limits(config / "clinical-limits.toml")
    rules = load_contraindications(config / "contraindications.toml")
    presets = load_presets(config / "protocols")
    vocabulary = load_vocabulary(config / "vocabulary.toml")
    problems = check_plan(
        plan, profiles, clinical, patient, rules, presets=presets, vocabulary=vocabulary
    )
    return plan_notes(plan, presets), problems


def _cmd_check(args: argparse.Namespace) -> int:
    from sessionconsole.model.paths import config_dir
    from sessionconsole.model.plan import load_plan

    config = Path(args.config) if args.config else config_dir()
    patient = None if args.patient is None else Path(args.patient)
    try:
        plan = load_plan(Path(args.plan))
        notes, problems = _dry_run(plan, Path(args.room), patient, config)
    except (OSError, ValueError, ValidationError) as exc:  # ValidationError is a ValueError
        print(f"sessionconsole plan check: invalid file: {exc}", file=sys.stderr)
        return 2
    for line in [*notes, *(problem.line() for problem in problems)]:
        print(line)
    if not problems:
        print(f"{args.plan}: OK ({len(plan.steps)} steps)")
    return 1 if problems else 0
