"""Options shared by the stage subcommands."""

from __future__ import annotations

import argparse


def existing_output_flags(p: argparse.ArgumentParser) -> None:
    """``--resume`` / ``--overwrite``: what a stage does with an output holding its own earlier artifact
    (:func:`vlaforge.artifacts.check_output`); another stage's artifact is never written over."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", dest="existing", action="store_const", const="resume",
                       help="continue the stage's own artifact in the output (training checkpoints, pending "
                            "episodes; the default)")
    group.add_argument("--overwrite", dest="existing", action="store_const", const="overwrite",
                       help="replace the stage's own artifact in the output (never another stage's)")


def port(text: str) -> int:
    """A TCP port for argparse: 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535, or 0 for any free port)")
    return value
