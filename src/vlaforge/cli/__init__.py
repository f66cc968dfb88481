"""The ``vlaforge`` command.

Each module of this package in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, which adds
its subcommands and sets ``func`` to a callable taking the parsed arguments. A stage's subcommand
calls the same entry point as its KFP component (:mod:`vlaforge.stages`).

Errors end the command with one line naming the culprit (exit code 2; 1 for an unexpected error,
whose traceback ``-v`` shows). A stage's ``--resume`` / ``--overwrite`` set what it does with an
output that already holds its own artifact (:mod:`vlaforge.artifacts`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from vlaforge import __version__
from vlaforge.artifacts import EXISTING_ENV
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


def _one_line(err: BaseException) -> str:
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


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
    before = os.environ.get(EXISTING_ENV)
    if getattr(args, "existing", None):
        os.environ[EXISTING_ENV] = args.existing  # for the stage and the processes it starts; restored after
    try:
        result = args.func(args)
    except (ConfigError, OSError, ValueError, RuntimeError, FloatingPointError) as err:
        print(f"vlaforge {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - no raw traceback for a user; -v shows it
        if args.verbose:
            raise
        print(f"vlaforge {args.command}: error: {type(err).__name__}: {_one_line(err)} (-v shows the traceback)",
              file=sys.stderr)
        return 1
    finally:
        if before is None:
            os.environ.pop(EXISTING_ENV, None)
        else:
            os.environ[EXISTING_ENV] = before
    return int(result or 0)

