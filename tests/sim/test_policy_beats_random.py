"""The from-scratch chain on a small budget learns a policy that beats random in closed loop.

Demos -> tokenizer -> LLM -> VLM -> VLA on two Meta-World tasks at 32x32, a few minutes on 2 CPU
cores; then the policy and the random baseline meet the same unseen evaluation scenes. This is the
regression guard of the metaworld4 results: a change that breaks learning (data, model, training or
inference) makes the policy fail every episode, as random does.
"""

from __future__ import annotations

from sim_helpers import pretrain_vlm

from vlaforge.models.vla import ActionExpertConfig
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.preprocess import preprocess
from vlaforge.sim.demos import DemoConfig, record_demos
from vlaforge.sim.evaluate import EvalConfig, evaluate
from vlaforge.stages.vla_finetune import VLAStageConfig, vla_finetune
from vlaforge.train.config import TrainConfig

TASK_SET = ["button-press-topdown-v3", "drawer-open-v3"]
CAMERAS = ["corner", "behindGripper"]


def _train(steps: int, lr: float = 3e-3, batch: int = 16) -> TrainConfig:
    return TrainConfig(global_batch_size=batch, micro_batch_size=batch, lr=lr, warmup_steps=5, max_steps=steps,
                       val_every=steps, ckpt_every=100_000, log_every=max(1, steps // 4), num_threads=2)


def test_small_budget_policy_beats_random(tmp_path):
    root = tmp_path
    record_demos(DemoConfig(tasks=TASK_SET, episodes_per_task=20, cameras=CAMERAS, image_size=32, workers=2),
                 str(root / "demos"))
    pretrain_vlm(root, TASK_SET, CAMERAS, 32, scenes_per_task=16, llm_layers=2, steps=20, warmup_steps=5,
                 conv_stem=True)
    preprocess(PreprocessConfig(image_indices=[0], future_steps=8, past_steps=0, num_workers=0, val_fraction=0.1,
                                jpeg_quality=95, jpeg_subsampling="4:4:4"), [str(root / "demos")], str(root / "robo"))
    expert = ActionExpertConfig(head="mlp", last_k_layers=2, prediction="actions")  # the metaworld4 expert
    vla_finetune(VLAStageConfig(expert=expert, freeze_backbone=True, data_in_memory=True, cache_backbone_states=True,
                                balance_tasks=True, train=_train(400, lr=1e-3, batch=32)),
                 str(root / "vlm"), str(root / "robo"), str(root / "policy"))

    cfg = EvalConfig(tasks=TASK_SET, episodes="0:10", workers=2)
    policy = evaluate(str(root / "policy"), cfg, str(root / "rollouts"), "policy")
    random = evaluate("baseline:random", cfg, str(root / "rollouts"), "random")
    wins = {t: (policy["tasks"][t]["successes"], random["tasks"][t]["successes"]) for t in TASK_SET}
    assert all(policy["tasks"][t]["episodes"] == 10 for t in TASK_SET), policy
    assert any(p > r for p, r in wins.values()), f"policy vs random successes per task: {wins}"
