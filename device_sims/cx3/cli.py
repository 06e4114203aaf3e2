"""Command line of the CX-3 simulator: `python -m device_sims cx3 --broker mqtt://HOST:PORT`."""

from __future__ import annotations

import argparse
import asyncio
import re

from device_sims.cli_common import add_common_arguments
from device_sims.cx3.app import CX3Options, run_cx3
from device_sims.cx3.mqtt_io import Broker, parse_broker_url

HELP = "CX-3 combination unit (MQTT)"
TOPIC_LEVEL = re.compile(r"[^/+#\s]+")


def _broker(text: str) -> Broker:
    """argparse type for --broker."""
    try:
        return parse_broker_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _topic_level(text: str) -> str:
    """argparse type for --serial: one topic level (no '/', '+', '#' or spaces)."""
    if not TOPIC_LEVEL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a single MQTT topic level: {text!r}")
    return text


def _topic_root(text: str) -> str:
    """argparse type for --root: topic levels without wildcards."""
    if not all(TOPIC_LEVEL.fullmatch(level) for level in text.split("/")):
        raise argparse.ArgumentTypeError(f"not a topic prefix without wildcards: {text!r}")
    return text


def _positive(text: str) -> int:
    """argparse type for --count."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The CX-3's options."""
    parser.add_argument(
        "--broker", type=_broker, required=True, metavar="mqtt://HOST:PORT", help="MQTT broker"
    )
    parser.add_argument(
        "--serial", type=_topic_level, default="CX3-0001", help="serial (default CX3-0001)"
    )
    parser.add_argument("--root", type=_topic_root, default="cx3", help="topic root (default cx3)")
    parser.add_argument(
        "--count", type=_positive, default=1, help="units in this process (serials count up)"
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT."""
    options = CX3Options(
        broker=args.broker,
        serial=args.serial,
        root=args.root,
        control=args.control,
        faults=args.faults,
        seed=args.seed,
        count=args.count,
    )
    return asyncio.run(run_cx3(options))
