"""Fixtures of the component tests."""

import builtins
import logging

import pytest

from components.testing import write_upstream


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    """Tiny outputs of the stages upstream of vlm_pretrain, vla_finetune and sim_eval (built once, ~35 s)."""
    return write_upstream(tmp_path_factory.mktemp("upstream"))


@pytest.fixture(autouse=True)
def kfp_local_globals():
    """kfp.local swaps ``builtins.print`` (indented) and the root logger's handlers while a task runs, and
    restores what it found; ParallelFor iterations running at once in threads can leave the swapped ones
    in place, which would indent and duplicate the output of every later test. Restored after each test."""
    print_, handlers, level = builtins.print, logging.root.handlers[:], logging.root.level
    yield
    builtins.print = print_
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)
