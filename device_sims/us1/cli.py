"""Command line of the US-1 simulator: `python -m device_sims us1 ...`."""

from __future__ import annotations

import argparse
import asyncio

from device_sims.cli_common import add_common_arguments, parse_hostport
from device_sims.us1.app import US1Options, run_us1

HELP = "US-1 ultrasound unit (Modbus TCP)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The US-1's options."""
    parser.add_argument(
        "--tcp",
        type=parse_hostport,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="Modbus TCP endpoint (default 127.0.0.1:0 = free port)",
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT."""
    options = US1Options(tcp=args.tcp, control=args.control, faults=args.faults, seed=args.seed)
    return asyncio.run(run_us1(options))
