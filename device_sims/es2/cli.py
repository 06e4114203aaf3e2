"""Command line of the ES-2 simulator: `python -m device_sims es2 ...`."""

from __future__ import annotations

import argparse
import asyncio

from device_sims.cli_common import add_common_arguments, parse_hostport
from device_sims.es2.app import ES2Options, run_es2

HELP = "ES-2 two-channel stimulator (serial frames on a pty and/or TCP)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ES-2's options."""
    parser.add_argument(
        "--pty", action="store_true", help="serve on a pseudo-terminal (default if no --tcp)"
    )
    parser.add_argument(
        "--tcp",
        type=parse_hostport,
        metavar="HOST:PORT",
        help="serve the byte stream on TCP (socket://HOST:PORT; port 0 = free port)",
    )
    parser.add_argument("--count", type=int, default=1, help="independent units (default 1)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT."""
    options = ES2Options(
        pty=args.pty,
        tcp=args.tcp,
        control=args.control,
        faults=args.faults,
        seed=args.seed,
        count=args.count,
    )
    return asyncio.run(run_es2(options))
