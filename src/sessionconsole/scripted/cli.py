"""`sessionconsole session run`: validate a script, start the console, run it, summarise.

Exit 0 when every expectation held, 1 when one failed, 2 on invalid input (script, room,
profile) with one line naming the file, step and field, 3 when the console could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from sessionconsole.demo import (
    CONTROLLER_READY_S,
    DemoStack,
    spawn_controller,
    stop_controller,
    wait_for_socket,
)
from sessionconsole.model.paths import config_dir
from sessionconsole.model.room import Room, load_profile, read_toml
from sessionconsole.model.validation import AnyProfile
from sessionconsole.model.vocabulary import Vocabulary, load_vocabulary
from sessionconsole.scripted.plan import Plan, RoomUnits, make_plan
from sessionconsole.scripted.runner import ConsoleUnavailable, RunResult, ScriptRunner
from sessionconsole.scripted.script import Script, ScriptError, load_script
from sessionconsole.scripted.summary import Summary, build_summary, error_summary

DEFAULT_PATIENT = "SCRIPT-0001"


class InvalidInput(ValueError):
    """A room or profile that cannot be used (one line, naming the file and field)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `session run` to a CLI's sub-commands."""
    session = subparsers.add_parser("session", help="headless scripted sessions")
    commands = session.add_subparsers(dest="session_command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run a TOML script of steps against the console (docs/SCRIPTED_SESSIONS.md)"
    )
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--demo", action="store_true", help="the simulated three-unit demo room")
    where.add_argument("--room", metavar="FILE", help="a room TOML file (sim_control for `sim`)")
    run.add_argument("--script", required=True, metavar="FILE", help="the script (TOML)")
    run.add_argument("--db", required=True, metavar="PATH", help="session database (SQLite)")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    run.add_argument("--operator", default=os.environ.get("USER", "script"))
    run.add_argument(
        "--patient",
        default=None,
        metavar="PSEUDONYM",
        help=f"default: the plan's, else {DEFAULT_PATIENT}",
    )
    run.add_argument(
        "--plan", default=None, metavar="FILE", help="a treatment plan: the session is guided by it"
    )
    run.set_defaults(func=cmd_run)
    schema = commands.add_parser("schema", help="print the JSON schema of the --json summary")
    schema.set_defaults(func=cmd_schema)


def cmd_schema(_args: argparse.Namespace) -> int:
    """The `session schema` command: the summary's JSON schema."""
    print(json.dumps(Summary.model_json_schema(), indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The `session run` command."""
    script_path = Path(args.script)
    try:
        script = load_script(script_path)
        room_path = config_dir() / "rooms" / "demo.toml" if args.demo else Path(args.room)
        room, profiles = load_room_checked(room_path)
        units = RoomUnits.of(room, profiles)
        if args.demo:  # the demo's test ports are known once it runs; plan with stand-ins
            units = RoomUnits(units.outputs, dict.fromkeys(units.outputs, "demo"))
        _patient_of_plan(args)
        make_plan(script_path, script, units, _vocabulary(), args.plan is not None)
    except (ScriptError, InvalidInput) as exc:
        return _report(args, error_summary(script_path, "invalid_input", str(exc)))

    def hang_up(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the clean-up: nothing left running

    signal.signal(signal.SIGHUP, hang_up)
    signal.signal(signal.SIGTERM, hang_up)
    try:
        summary = _run(args, script_path, script, None if args.demo else room_path)
    except ConsoleUnavailable as exc:
        summary = error_summary(script_path, "console_unavailable", str(exc))
    return _report(args, summary)


def _run(args: argparse.Namespace, script_path: Path, script: Script, room: Path | None) -> Summary:
    """Start the stack (demo) or a controller (room), run, end the session, summarise."""
    db = Path(args.db).resolve()
    if room is None:
        treatment = None if args.plan is None else Path(args.plan).resolve()
        with DemoStack(
            db=str(db), operator=args.operator, patient=args.patient, plan=treatment
        ) as stack:
            try:
                plan = _plan_on(stack.room_path, script_path, script, args.plan is not None)
            except (ScriptError, InvalidInput) as exc:
                why = "; ".join(f"{u} left out: {w}" for u, w in stack.left_out.items())
                raise ConsoleUnavailable(f"{exc} ({why or 'demo room'})") from exc
            result = _execute(str(stack.socket_path), plan, args.operator, stack.close)
    else:
        plan = _plan_on(room, script_path, script, args.plan is not None)
        workdir = Path(tempfile.mkdtemp(prefix="sessionconsole-script-"))
        socket_path, log_path = workdir / "api.sock", workdir / "controller.log"
        treatment = None if args.plan is None else Path(args.plan).resolve()
        controller = spawn_controller(
            room, db, socket_path, log_path.open("ab"), args.operator, args.patient, treatment
        )
        try:
            try:
                wait_for_socket(controller, socket_path, log_path, CONTROLLER_READY_S)
            except (RuntimeError, TimeoutError) as exc:
                raise ConsoleUnavailable(f"{exc} (controller log: {log_path})") from exc
            result = _execute(str(socket_path), plan, args.operator, lambda: None)
        finally:
            stop_controller(controller)
        # Kept when the controller could not start (its log says why); gone after a run.
        shutil.rmtree(workdir, ignore_errors=True)
    return build_summary(
        script_path, db, result, len(plan.steps), plan.treated_area_cm2, plan.warnings
    )


def _execute(socket_path: str, plan: Plan, operator: str, end: object) -> RunResult:
    """Run the plan; then end the session (controller SIGTERM) before the record is read."""
    runner = ScriptRunner(socket_path, plan, operator)
    try:
        return asyncio.run(runner.run())
    finally:
        if callable(end):
            end()


def _plan_on(room_path: Path, script_path: Path, script: Script, has_plan: bool) -> Plan:
    room, profiles = load_room_checked(room_path)
    units = RoomUnits.of(room, profiles)
    return make_plan(script_path, script, units, _vocabulary(), has_plan)


def _patient_of_plan(args: argparse.Namespace) -> None:
    """Read `--plan` (InvalidInput when it cannot be used); the patient defaults to the plan's
    pseudonym, else SCRIPT-0001; a plan for another patient is refused."""
    if args.plan is None:
        args.patient = args.patient or DEFAULT_PATIENT
        return
    from sessionconsole.model.plan import load_plan

    try:
        plan = load_plan(Path(args.plan))
    except OSError as exc:
        raise InvalidInput(f"{args.plan}: cannot read: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        raise InvalidInput(_first(Path(args.plan), exc)) from exc
    except ValueError as exc:
        raise InvalidInput(f"{args.plan}: not valid TOML: {exc}") from exc
    if args.patient is not None and args.patient != plan.pseudonym:
        raise InvalidInput(f"{args.plan}: the plan is for {plan.pseudonym}, not {args.patient}")
    args.patient = plan.pseudonym


def _vocabulary() -> Vocabulary:
    return load_vocabulary(config_dir() / "vocabulary.toml")


def load_room_checked(path: Path) -> tuple[Room, dict[str, AnyProfile]]:
    """A room and its profiles; InvalidInput names the file (room or profile) and the field."""
    try:
        room = Room.model_validate(read_toml(path))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        raise InvalidInput(_first(path, exc)) from exc
    except ValueError as exc:  # TOML syntax
        raise InvalidInput(f"{path}: not valid TOML: {exc}") from exc
    profiles: dict[str, AnyProfile] = {}
    for name, device in room.devices.items():
        profile_path = path.parent / device.profile
        try:
            profiles[name] = load_profile(profile_path, device.link)
        except OSError as exc:
            raise InvalidInput(
                f"{path}: devices.{name}.profile: cannot read {profile_path}: {exc.strerror}"
            ) from exc
        except ValidationError as exc:
            raise InvalidInput(_first(profile_path, exc)) from exc
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
    return room, profiles


def _first(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    return f"{path}: {field}: {err['msg']}"


def _report(args: argparse.Namespace, summary: Summary) -> int:
    """Print the summary (JSON line with --json, else a few lines); the exit status."""
    if summary.error is not None:
        print(f"sessionconsole session run: {summary.error}", file=sys.stderr)
    if args.json:
        print(summary.model_dump_json())
    else:
        _print_text(summary)
    return summary.exit_status


def _print_text(s: Summary) -> None:
    if s.session_id is None:
        return
    print(f"session {s.session_id}: {s.result} ({s.steps_run}/{s.steps_total} steps)")
    for a in s.alarms:
        print(f"  alarm {a.rule_id} ({a.priority}) on {a.device} at +{a.raised_t_s:.2f} s")
    for r in s.refused:
        print(f"  step {r.step} ({r.do} {r.device or ''}) refused: {r.rule_id}: {r.error}")
    for name, o in s.outputs.items():
        print(f"  {name}: on {o.on_time_s:.1f} s in {o.runs} run(s)")
    if s.failed_expectation is not None:
        f = s.failed_expectation
        print(f"  FAILED step {f.step}: {f.condition} within {f.within_s} s; saw {f.observed}")
    for w in s.warnings:
        print(f"  warning: {w}")
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
