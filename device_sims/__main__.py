"""`python -m device_sims MODEL ...`: start one simulator (one argparse subcommand per model).

Each model is a package with a `cli` module providing `HELP`, `add_arguments(parser)` and
`run(args) -> int`; models are found by name, so adding one touches no shared file.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from types import ModuleType

MODELS = ("es2", "us1", "cx3")


def _model_cli(name: str) -> ModuleType | None:
    try:
        if importlib.util.find_spec(f"device_sims.{name}.cli") is None:
            return None
    except ModuleNotFoundError:  # the model's package itself is not there
        return None
    return importlib.import_module(f"device_sims.{name}.cli")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """Build the CLI: a subcommand per simulated model that is present."""
    parser = argparse.ArgumentParser(prog="python -m device_sims", description=__doc__)
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    clis: dict[str, ModuleType] = {}
    for name in MODELS:
        cli = _model_cli(name)
        if cli is None:
            continue
        clis[name] = cli
        cli.add_arguments(models.add_parser(name, help=cli.HELP))
    return parser, clis


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen simulator, return its exit code."""
    parser, clis = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    try:
        code: int = clis[args.model].run(args)
    except (OSError, ValueError) as exc:
        print(f"device_sims {args.model}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
