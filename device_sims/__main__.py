"""`python -m device_sims MODEL ...`: start one simulator (one argparse subcommand per model)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .us1.app import US1Options, run_us1


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse HOST:PORT (port 0 = a free port) for argparse."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    """Build the CLI: a subcommand per simulated model."""
    parser = argparse.ArgumentParser(prog="python -m device_sims", description=__doc__)
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    us1 = models.add_parser("us1", help="US-1 ultrasound unit (Modbus TCP)")
    us1.add_argument(
        "--tcp",
        type=parse_hostport,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="Modbus TCP endpoint (default 127.0.0.1:0 = free port)",
    )
    us1.add_argument(
        "--control",
        type=parse_hostport,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="test port (default 127.0.0.1:0 = free port)",
    )
    us1.add_argument("--faults", type=Path, metavar="FILE", help="TOML fault schedule")
    us1.add_argument("--seed", type=int, default=0, help="physics random seed (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen simulator, return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    if args.model == "us1":
        options = US1Options(tcp=args.tcp, control=args.control, faults=args.faults, seed=args.seed)
        try:
            return asyncio.run(run_us1(options))
        except (OSError, ValueError) as exc:
            print(f"device_sims us1: {exc}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
