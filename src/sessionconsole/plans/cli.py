"""`sessionconsole plan check PLAN --room ROOM [--patient FILE]`: the dry-run on the command line.

Exit 0: no problems; 1: problems (one line each); 2: a file is missing or invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError


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


def _cmd_check(args: argparse.Namespace) -> int:
    from sessionconsole.model.contraindication import load_contraindications
    from sessionconsole.model.limits import load_clinical_limits
    from sessionconsole.model.paths import config_dir
    from sessionconsole.model.plan import load_patient, load_plan
    from sessionconsole.model.preset import load_presets
    from sessionconsole.model.room import load_room
    from sessionconsole.model.vocabulary import load_vocabulary
    from sessionconsole.plans.check import check_plan, plan_notes

    config = Path(args.config) if args.config else config_dir()
    try:
        plan = load_plan(Path(args.plan))
        _, profiles = load_room(Path(args.room))
        patient = None if args.patient is None else load_patient(Path(args.patient))
        clinical = load_clinical_limits(config / "clinical-limits.toml")
        rules = load_contraindications(config / "contraindications.toml")
        presets = load_presets(config / "protocols")
        vocabulary = load_vocabulary(config / "vocabulary.toml")
    except (OSError, ValueError, ValidationError) as exc:  # ValidationError is a ValueError
        print(f"sessionconsole plan check: invalid file: {exc}", file=sys.stderr)
        return 2
    problems = check_plan(
        plan, profiles, clinical, patient, rules, presets=presets, vocabulary=vocabulary
    )
    for note in plan_notes(plan, presets):
        print(note)
    for problem in problems:
        print(problem.line())
    if not problems:
        print(f"{args.plan}: OK ({len(plan.steps)} steps)")
    return 1 if problems else 0
