"""The ``vlaforge`` command. Each subcommand lives beside the stage it runs.

A module in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, which adds its subcommand and
sets ``func`` to a callable taking the parsed arguments. The CLI and the KFP components call the
same library entry points.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from vlaforge import __version__
from vlaforge.config import ConfigError

COMMAND_MODULES = [
    "vlaforge.commands",
    "vlaforge.serve.cli",
    "vlaforge.kube.cli",
    "vlaforge.robotics.cli",
    "vlaforge.sim.cli",
    "vlaforge.analysis.cli",
    "vlaforge.models.hf_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlaforge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vlaforge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        result = args.func(args)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError, FloatingPointError) as err:
        print(f"vlaforge {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
