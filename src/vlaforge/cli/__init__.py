"""The ``vlaforge`` command.

Each module of this package in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, which adds
its subcommands and sets ``func`` to a callable taking the parsed arguments. A stage's subcommand
calls the same entry point as its KFP component (:mod:`vlaforge.stages`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from vlaforge import __version__
from vlaforge.config import ConfigError

COMMAND_MODULES = [
    "vlaforge.cli.train",
    "vlaforge.cli.serve",
    "vlaforge.cli.kube",
    "vlaforge.cli.robotics",
    "vlaforge.cli.sim",
    "vlaforge.cli.analysis",
    "vlaforge.cli.hf_vlm",
    "vlaforge.cli.ablation",
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

