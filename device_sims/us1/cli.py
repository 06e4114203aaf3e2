"""Command line of the US-1 simulator: `python -m device_sims us1 ...`."""

from __future__ import annotations

import argparse
import asyncio

from device_sims.cli_common import add_common_arguments, parse_hostport
from device_sims.us1.app import US1Options, run_us1
from device_sims.us1.layout import LAYOUTS

HELP = "US-1 ultrasound unit (Modbus TCP and/or RTU on a pty)"
MAX_COUNT = 1000


def parse_count(text: str) -> int:
    """Parse --count: an integer in 1..MAX_COUNT."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected an integer in 1..{MAX_COUNT}, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The US-1's options."""
    parser.add_argument(
        "--tcp",
        type=parse_hostport,
        metavar="HOST:PORT",
        help="Modbus TCP endpoint (port 0 = free port; default 127.0.0.1:0 if no --rtu-pty)",
    )
    parser.add_argument(
        "--rtu-pty",
        action="store_true",
        help="Modbus RTU (19200 8E1, unit id 1) on a pseudo-terminal; READY gives its path",
    )
    parser.add_argument(
        "--count",
        type=parse_count,
        default=1,
        metavar="N",
        help="N independent units, each with its own endpoints (port P: unit i on P + i)",
    )
    parser.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default="icd",
        help="register map: icd (the US-1 ICD) or vendor-b (same unit, another vendor's map, "
        "unit id 7; docs/SIMULATORS.md)",
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT."""
    options = US1Options(
        tcp=args.tcp,
        rtu_pty=args.rtu_pty,
        control=args.control,
        faults=args.faults,
        seed=args.seed,
        count=args.count,
        layout=args.layout,
    )
    return asyncio.run(run_us1(options))
