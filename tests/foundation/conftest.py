"""Fixtures of the foundation tests (tokenize, LLM pretraining, training loop, storage).

``s3_server`` (a real S3 server on loopback) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from foundation_util import TOKENIZE_OVERRIDES, make_documents, write_corpus

from vlaforge.stages.tokenize import run as tokenize_run


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread in these tests (training runs here also set it), the previous setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def documents() -> list[str]:
    return make_documents()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, documents) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), documents)


@pytest.fixture(scope="session")
def tokenized(tmp_path_factory, corpus) -> Path:
    """The tokenize stage's output for the test corpus (shared: copy it before damaging it)."""
    out = tmp_path_factory.mktemp("tokenized") / "data"
    tokenize_run("tiny", TOKENIZE_OVERRIDES + [f"corpus={corpus}"], str(out))
    return out


@pytest.fixture
def tokenized_copy(tmp_path, tokenized) -> Path:
    """A private copy of the tokenized data that a test may damage."""
    return Path(shutil.copytree(tokenized, tmp_path / "data"))
