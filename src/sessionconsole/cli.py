"""The `sessionconsole` command: controller, tui, demo, profiles, records and progress."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from sessionconsole import __version__


def _default_socket() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return str(Path(runtime) / f"sessionconsole-{os.getuid()}.sock")


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be 1 or more")
    return value


def _rt_priority(text: str) -> int:
    """An argparse type: a SCHED_FIFO priority, 1 to 99."""
    value = int(text)
    if not 1 <= value <= 99:
        raise argparse.ArgumentTypeError(f"{value}: a real-time priority is 1 to 99")
    return value


def _cmd_controller(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sessionconsole.core.main import (
        ControllerAlreadyRunning,
        RealtimeRefused,
        build_config,
        run_controller,
    )
    from sessionconsole.model.session import SessionPeople
    from sessionconsole.record.signing import RecordKeyError

    key = None if args.key is None else Path(args.key)
    try:
        people = None
        if args.patient is not None:
            people = SessionPeople(therapist=args.therapist, patient_pseudonym=args.patient)
        config = build_config(Path(args.room), Path(args.db), Path(args.socket), key, people)
        if args.plan is not None:
            from sessionconsole.model.plan import load_plan

            plan = load_plan(Path(args.plan))
            if people is not None and plan.pseudonym != people.patient_pseudonym:
                raise ValueError(
                    f"{args.plan}: the plan is for {plan.pseudonym}, "
                    f"not for --patient {people.patient_pseudonym}"
                )
            config = dataclasses.replace(config, plan=plan)
    except (OSError, ValidationError, ValueError, RecordKeyError) as exc:
        print(f"sessionconsole controller: invalid configuration: {exc}", file=sys.stderr)
        return 2
    config = dataclasses.replace(
        config,
        period_s=1.0 / args.rate_hz,
        api_group=args.group,
        overrun_periods=args.overrun_periods,
        overruns_to_stop=args.overruns_to_stop,
        rt_priority=args.rt_priority,
    )
    if args.group is not None:
        from sessionconsole.core.peers import group_id

        try:
            group_id(args.group)
        except ValueError as exc:
            print(f"sessionconsole controller: invalid configuration: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(run_controller(config))
    except (ControllerAlreadyRunning, RealtimeRefused) as exc:
        print(f"sessionconsole controller: {exc}", file=sys.stderr)
        return 2
    return 0


HANGUP_GRACE_S = 5.0


def _leave_on_hangup(cleanup: Callable[[], object] | None = None) -> None:
    """SIGHUP (the terminal closed) and SIGTERM leave through the normal path (SystemExit,
    which unwinds every `with`); if that has not ended the process within HANGUP_GRACE_S,
    `cleanup` runs and the process exits anyway. Textual's input thread can spin on a
    terminal that is gone, and the exit then waits for it forever (seen after tmux
    kill-session: the demo's controller and units kept running)."""

    def hang_up(signum: int, _frame: object) -> None:
        def last_resort() -> None:
            if cleanup is not None:
                with contextlib.suppress(Exception):
                    cleanup()
            os._exit(128 + signum)

        timer = threading.Timer(HANGUP_GRACE_S, last_resort)
        timer.daemon = True
        timer.start()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGHUP, hang_up)
    signal.signal(signal.SIGTERM, hang_up)


def _cmd_tui(args: argparse.Namespace) -> int:
    from sessionconsole.ui.app import run_tui

    _leave_on_hangup()
    return run_tui(args.socket, operator=args.operator, db=args.db)


def _cmd_demo(args: argparse.Namespace) -> int:
    from sessionconsole.demo import DEMO_PATIENT, DemoStack
    from sessionconsole.ui.app import run_tui

    # A closed terminal (SIGHUP) or a kill (SIGTERM) must not leave the stack running.
    _leave_on_hangup()
    # cli.py is the composition root: the only place that starts the UI.
    plan_path, patient = None, DEMO_PATIENT
    if args.plan is not None:  # a guided session: the demo's patient is the plan's
        from sessionconsole.model.plan import load_plan

        plan_path = Path(args.plan)
        try:
            patient = load_plan(plan_path).pseudonym
        except (OSError, ValueError) as exc:
            print(f"sessionconsole demo: {args.plan}: {exc}", file=sys.stderr)
            return 2
    with DemoStack(db=args.db, operator=args.operator, patient=patient, plan=plan_path) as stack:
        _leave_on_hangup(stack.close)  # from here on the last resort stops the stack too
        for unit, why in stack.left_out.items():
            print(f"demo: {unit} left out: {why}", file=sys.stderr)
        print(
            f"demo: session database {stack.db}, controller log {stack.log_path}", file=sys.stderr
        )
        code = run_tui(str(stack.socket_path), operator=args.operator, db=str(stack.db))
    print(f"demo: stopped; the session record is in {stack.db}", file=sys.stderr)
    return code


def _cmd_profiles_validate(args: argparse.Namespace) -> int:
    from sessionconsole.model.validation import validate_profile_file

    bad = 0
    for name in args.files:
        problems = validate_profile_file(Path(name))
        for line in problems:
            print(line)
        if problems:
            bad += 1
        else:
            print(f"{name}: OK")
    return 2 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line interface."""
    from sessionconsole.drivers import probe as probe_cli
    from sessionconsole.plans import cli as plans_cli
    from sessionconsole.record import cli as records_cli
    from sessionconsole.record import progress_cli
    from sessionconsole.scripted import cli as scripted_cli

    parser = argparse.ArgumentParser(prog="sessionconsole", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)

    ctl = sub.add_parser("controller", help="run the core loop, devices and recorder (headless)")
    ctl.add_argument("--room", required=True, help="room TOML file")
    ctl.add_argument("--db", required=True, help="session database (SQLite)")
    ctl.add_argument("--socket", default=_default_socket(), help="local API socket path")
    ctl.add_argument("--rate-hz", type=float, default=100.0, help="core loop rate (default 100)")
    ctl.add_argument(
        "--overrun-periods",
        type=_at_least_one,
        default=5,
        metavar="N",
        help="LOOP_OVERRUN: a tick later than N periods (default 5, the product's; a wider "
        "bound is for tests on a loaded machine that do not test overruns)",
    )
    ctl.add_argument(
        "--overruns-to-stop",
        type=_at_least_one,
        default=3,
        metavar="N",
        help="LOOP_OVERRUN_STOP: N such ticks in a row stop every output (default 3)",
    )
    ctl.add_argument(
        "--rt-priority",
        type=_rt_priority,
        default=None,
        metavar="N",
        help="run the core loop at real-time priority N (SCHED_FIFO, 1-99): ready ticks then "
        "never wait behind other programs for a CPU; needs CAP_SYS_NICE or RLIMIT_RTPRIO "
        "(default: normal scheduling)",
    )
    ctl.add_argument(
        "--key",
        default=None,
        metavar="PATH",
        help="record-signing key file (default: $SESSIONCONSOLE_RECORD_KEY or "
        "~/.config/sessionconsole/record.key, created on first use)",
    )
    ctl.add_argument(
        "--group",
        default=None,
        help="also let members of this group use the API socket (default: owner only)",
    )
    ctl.add_argument(
        "--plan",
        default=None,
        metavar="FILE",
        help="the treatment plan this session follows (recorded in the session start)",
    )
    ctl.add_argument(
        "--therapist",
        default=os.environ.get("USER", "therapist"),
        help="therapist for the session record (default: $USER)",
    )
    ctl.add_argument(
        "--patient",
        default=None,
        metavar="PSEUDONYM",
        help="the patient's pseudonym (a code such as PT-0042, never a name)",
    )
    ctl.set_defaults(func=_cmd_controller)

    tui = sub.add_parser("tui", help="the therapist's terminal UI (a client of the controller)")
    tui.add_argument("--socket", default=_default_socket(), help="controller API socket path")
    tui.add_argument("--operator", default=os.environ.get("USER", "therapist"))
    tui.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="session database, read through `records` for billing, history and export",
    )
    tui.set_defaults(func=_cmd_tui)

    demo = sub.add_parser(
        "demo", help="simulated US-1, ES-2 and CX-3 + controller + TUI on embedded defaults"
    )
    demo.add_argument("--db", default=None, help="session database (default: a temporary file)")
    demo.add_argument("--operator", default=os.environ.get("USER", "therapist"))
    demo.add_argument(
        "--plan", default=None, help="run this treatment plan as a guided session (its patient)"
    )
    demo.set_defaults(func=_cmd_demo)

    profiles = sub.add_parser("profiles", help="device profiles").add_subparsers(
        dest="profiles_command", required=True
    )
    validate = profiles.add_parser("validate", help="check profile files; exit 2 if any is invalid")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=_cmd_profiles_validate)

    probe_cli.add_parser(sub)
    records_cli.add_parser(sub)
    progress_cli.add_parser(sub)
    plans_cli.add_parser(sub)
    scripted_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
