"""Tiny real artifacts of every kind (written by the stages themselves, a few steps each, no simulator),
and helpers that run the ``vlaforge`` command as a user does and check how it fails."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.testing import LLM, VLA, VLM
from synthetic_data import write_caption_shards, write_episodes
from vlaforge.data.corpus import robot_sentences

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def upstream(tmp_path_factory) -> SimpleNamespace:
    """Paths of tiny stage outputs: tok -> llm, captions -> vlm, episodes -> robotics -> policy, rollouts."""
    from vlaforge.stages import llm_pretrain, preprocess_robotics, sim_eval, tokenize, vla_finetune, vlm_pretrain

    root = tmp_path_factory.mktemp("upstream")
    out = SimpleNamespace(**{name: str(root / name) for name in
                             ("tok", "llm", "captions", "vlm", "episodes", "robotics", "policy", "rollouts")})
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(robot_sentences(300, seed=1)), encoding="utf-8")
    tokenize.run("tiny", [f"corpus={corpus}", "vocab_size=280", "seq_len=16", "robot_fraction=0"], out.tok)
    llm_pretrain.run("tiny", LLM, out.tok, out.llm)
    write_caption_shards(out.captions, 16)
    vlm_pretrain.run("tiny", VLM, out.llm, out.captions, out.vlm)
    write_episodes(out.episodes, 4, length=12)
    preprocess_robotics.run("tiny", ["num_workers=0", "val_fraction=0.5", "future_steps=4"], [out.episodes],
                            out.robotics)
    vla_finetune.run("tiny", VLA, out.vlm, out.robotics, out.policy)
    sim_eval.run("baseline:zero", "tiny", ["tasks=[reach-v3]", "workers=0", "max_steps=3", "videos_per_task=0"],
                 out.rollouts, "zero", "0:1")
    return out


def copy_artifact(src: str, dst: Path) -> str:
    shutil.copytree(src, dst)
    return str(dst)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (an empty dict for a missing root)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def vlaforge(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m vlaforge.cli ARGS`` in a subprocess with this tree first on the path."""
    full_env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "MUJOCO_GL": "osmesa",
                "PYOPENGL_PLATFORM": "osmesa", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vlaforge.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_clean_error(proc: subprocess.CompletedProcess, *names: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, and the last stderr line (the error) names every one of ``names``."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "error:" in line, proc.stderr
    for name in names:
        assert name in line, line
    return line


def read_only_dir(tmp_path: Path) -> Path:
    """A folder this process cannot write into: chmod 555, or (root ignores modes) one under /sys."""
    if os.geteuid() == 0:
        return Path("/sys/vlaforge-badinput-test")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder
