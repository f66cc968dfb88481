"""On a small budget the metaworld4 recipe learns every one of its four tasks, well above random.

Demos -> tokenizer -> LLM -> VLM -> VLA on reach, button-press-topdown, drawer-open and push at 64x64
(a few minutes on 2 CPU cores, budgets in optimizer steps), with what the metaworld4 preset's runs
taught (docs/experiments/metaworld4.md): clean labels, fingertip reach demos, full-resolution colour
frames, no proprio history, task-balanced sampling, and the ``mlp`` expert of run R (``metaworld4-conv``:
its own conv encoder) predicting actions over a frozen VLM whose states are cached. The policy and the random baseline then meet the same unseen
scenes, and the policy must clear a floor on every task where random scores nothing: this is the
regression guard of the metaworld4 results, and a change that breaks learning on any one task
(data, model, training or inference) fails it.
"""

from __future__ import annotations

import pytest
from sim_helpers import pretrain_vlm

from vlaforge.models.vla import ActionExpertConfig
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.preprocess import preprocess
from vlaforge.sim.demos import DemoConfig, record_demos
from vlaforge.sim.evaluate import EvalConfig, evaluate
from vlaforge.stages.vla_finetune import VLAStageConfig, vla_finetune
from vlaforge.train.config import TrainConfig

TASK_SET = ["reach-v3", "button-press-topdown-v3", "drawer-open-v3", "push-v3"]
CAMERAS = ["corner", "behindGripper"]
IMAGE_SIZE = 64  # the goal markers of reach and push are one or two pixels at this size
DEMOS_PER_TASK = 40
VLA_STEPS = 3000
EPISODES = "0:10"  # unseen scenes of the eval split, per task
# Successes out of 10 the policy must reach per task (random: 0 on these scenes). Measured with these
# budgets (two seeds: demo scenes 0-39 / 40-79, training seed 0 / 1): reach 10 / 8, button 10 / 10,
# drawer 10 / 10, push 4 / 6; each floor sits 2-3 below the worst of them.
FLOORS = {"reach-v3": 5, "button-press-topdown-v3": 7, "drawer-open-v3": 7, "push-v3": 2}


def _train(steps: int, seed: int) -> TrainConfig:
    return TrainConfig(global_batch_size=32, micro_batch_size=32, lr=1e-3, warmup_steps=50, max_steps=steps,
                       val_every=steps, val_batches=2, ckpt_every=100_000, log_every=max(1, steps // 4),
                       ema_decay=0.99, seed=seed, num_threads=2)


def build_upstream(root, first_demo: int = 0) -> None:
    """Demos of every task (train scenes from ``first_demo``), a tiny VLM and the robotics shards under ``root``."""
    record_demos(DemoConfig(tasks=TASK_SET, episodes_per_task=DEMOS_PER_TASK, first_episode=first_demo,
                            cameras=CAMERAS, image_size=IMAGE_SIZE, labels="clean", fingertips=True, workers=2),
                 str(root / "demos"))
    pretrain_vlm(root, TASK_SET, CAMERAS, IMAGE_SIZE, scenes_per_task=8, llm_layers=2, steps=20, warmup_steps=5,
                 conv_stem=True)
    preprocess(PreprocessConfig(image_indices=[0], future_steps=8, past_steps=0, num_workers=0, val_fraction=0.1,
                                jpeg_quality=95, jpeg_subsampling="4:4:4"), [str(root / "demos")], str(root / "robo"))


def train_policy(root, steps: int, seed: int = 0, name: str = "policy") -> str:
    """metaworld4-conv's expert (mlp head, x-prediction) on the frozen, cached VLM of ``root``, ``steps`` steps."""
    expert = ActionExpertConfig(head="mlp", mlp_width=512, map_channels=32, last_k_layers=2, prediction="actions")
    vla_finetune(VLAStageConfig(expert=expert, freeze_backbone=True, data_in_memory=True, cache_backbone_states=True,
                                balance_tasks=True, train=_train(steps, seed)),
                 str(root / "vlm"), str(root / "robo"), str(root / name))
    return str(root / name)


def successes(policy: str, root, name: str) -> dict[str, int]:
    """Successes of ``policy`` per task on the unseen scenes ``EPISODES``."""
    result = evaluate(policy, EvalConfig(tasks=TASK_SET, episodes=EPISODES, workers=2), str(root / "rollouts"), name)
    assert all(result["tasks"][t]["episodes"] == 10 for t in TASK_SET), result
    return {t: result["tasks"][t]["successes"] for t in TASK_SET}


@pytest.mark.timeout(2400)  # under load (2 shared cores) its 3000 VLA steps alone took 16-23 minutes
def test_small_budget_policy_clears_a_floor_on_every_task(tmp_path):
    build_upstream(tmp_path)
    policy = successes(train_policy(tmp_path, VLA_STEPS), tmp_path, "policy")
    random = successes("baseline:random", tmp_path, "random")
    wins = {t: (policy[t], random[t], FLOORS[t]) for t in TASK_SET}
    assert all(r < floor <= p for p, r, floor in wins.values()), f"successes per task (policy, random, floor): {wins}"
