"""The HF path end to end in the library: hf_vlm stage -> vla_finetune -> policy bundle -> actions."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from synthetic_data import write_episodes

from vlaforge.models.vla import ActionExpertConfig
from vlaforge.policy import Observation
from vlaforge.policy.bundle import VLAPolicy
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.preprocess import preprocess
from vlaforge.stages.hf_vlm import run as hf_vlm_run
from vlaforge.stages.vla_finetune import VLAStageConfig, vla_finetune
from vlaforge.train.config import TrainConfig


@pytest.fixture(scope="module")
def hf_vla(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-vla")
    hf_vlm_run("tiny", ["model=tiny:qwen3_vl"], str(root / "vlm"))
    write_episodes(str(root / "episodes"), 8, length=8)
    preprocess(PreprocessConfig(future_steps=4, past_steps=1, num_workers=0, val_fraction=0.25),
               [str(root / "episodes")], str(root / "robo"))
    cfg = VLAStageConfig(expert=ActionExpertConfig(d_model=32, n_layers=1, n_heads=2, last_k_layers=2),
                         train=TrainConfig(global_batch_size=8, micro_batch_size=8, lr=1e-3, warmup_steps=1,
                                           max_steps=4, val_every=4, val_batches=1, ckpt_every=10_000, log_every=4))
    summary = vla_finetune(cfg, str(root / "vlm"), str(root / "robo"), str(root / "vla"))
    return root, summary


def observation(side: str) -> Observation:
    img = np.full((32, 32, 3), 235, np.uint8)
    img[10:20, (2 if side == "left" else 20):(12 if side == "left" else 30)] = (220, 30, 30)
    return Observation(images={"cam": img}, proprio=np.zeros(4, np.float32),
                       instruction="move toward the square", task="toward-square")


def test_vla_trains_on_an_hf_backbone_and_reloads_identically(hf_vla, tmp_path):
    root, summary = hf_vla
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    copy = tmp_path / "bundle"
    shutil.copytree(root / "vla", copy, ignore=shutil.ignore_patterns("checkpoints"))
    history = [[observation("left")] * 2, [observation("right")] * 2]
    first = VLAPolicy(str(root / "vla")).predict(history, seed=3)
    second = VLAPolicy(str(copy)).predict(history, seed=3)
    for a, b in zip(first, second):
        assert a.shape == (4, 4) and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
