"""Shared data and helpers of the foundation tests: a small corpus, tiny overrides, subprocess helpers.

Everything runs on a corpus of about 40 kB written by the tests, a 300-token BPE vocabulary and a
one-layer model, so each training run takes a second or two on one CPU core.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from vlaforge.data.corpus import robot_sentences

VLAFORGE = [sys.executable, "-m", "vlaforge.cli"]
WORDS = ("gripper arm table camera joint torque sensor policy action state reward episode goal puck drawer "
         "button lever block motion force contact trajectory vision language model token window").split()

# Small overrides of the tiny preset: a 300-token vocabulary, 32-token windows, a one-layer model.
TOKENIZE_OVERRIDES = ["vocab_size=300", "seq_len=32", "val_fraction=0.1", "samples_per_shard=100",
                      "robot_fraction=0.0"]
LLM_OVERRIDES = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.max_seq_len=64",
                 "train.global_batch_size=8", "train.micro_batch_size=8", "train.warmup_steps=5",
                 "train.val_batches=2", "train.num_threads=1"]


def make_documents(n: int = 60, seed: int = 0) -> list[str]:
    """``n`` documents of made-up prose and robot instructions, some with non-ASCII text and odd spacing."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        prose = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90)))
        robot = " ".join(robot_sentences(rng.randint(2, 6), seed=seed * 1000 + i))
        extra = rng.choice(["", "\n\n  naïve café — 東京 ✓", "\ttabs\tand  double  spaces", "\nLine two.\n"])
        docs.append(f"Document {i}. {prose.capitalize()}.\n{robot}{extra}")
    return docs


def write_corpus(folder: Path, docs: list[str]) -> Path:
    """Half of ``docs`` as .txt files, the other half as one .jsonl file."""
    folder.mkdir(parents=True, exist_ok=True)
    half = len(docs) // 2
    for i, doc in enumerate(docs[:half]):
        (folder / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    (folder / "rest.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[half:]),
                                       encoding="utf-8")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(**extra: str) -> dict:
    """Environment of a ``vlaforge`` subprocess: one CPU thread, unbuffered output."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def sigterm_after_first_checkpoint(cmd: list[str], out: Path) -> tuple[subprocess.Popen, str, int]:
    """Start ``cmd`` (training into ``out``), SIGTERM it once its first checkpoint is complete, as the
    kubelet stops a pod's main process; returns the process, its output and the checkpoint step."""
    proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    latest = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 120
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    log, _ = proc.communicate(timeout=120)
    return proc, log, json.loads(latest.read_text())["step"]
