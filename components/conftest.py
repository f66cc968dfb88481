"""Fixtures of the component tests."""

import pytest

from components.testing import write_upstream


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    """Tiny outputs of the stages upstream of vlm_pretrain, vla_finetune and sim_eval (built once, ~35 s)."""
    return write_upstream(tmp_path_factory.mktemp("upstream"))
