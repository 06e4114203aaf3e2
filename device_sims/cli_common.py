"""Argument helpers shared by every simulator's command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse HOST:PORT (port 0 = a free port) for argparse."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--control, --faults, --seed: the options every simulator takes (SIMULATORS.md)."""
    parser.add_argument(
        "--control",
        type=parse_hostport,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="test port (default 127.0.0.1:0 = free port)",
    )
    parser.add_argument("--faults", type=Path, metavar="FILE", help="TOML fault schedule")
    parser.add_argument("--seed", type=int, default=0, help="physics random seed (default 0)")
