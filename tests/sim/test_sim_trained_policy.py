"""End to end: demos and captions from the simulator -> a tiny VLA -> the sim_eval component
(kfp.local) evaluates the trained bundle and writes valid results.json files and videos."""

import json
import os

from kfp import dsl, local
from kfp.dsl import Model
from sim_helpers import pretrain_vlm

from components.sim_eval.component import sim_eval
from vlaforge.models.vla import ActionExpertConfig
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.preprocess import preprocess
from vlaforge.sim.demos import DemoConfig, record_demos
from vlaforge.stages.vla_finetune import VLAStageConfig, vla_finetune
from vlaforge.train.config import TrainConfig


def _train(steps: int) -> TrainConfig:
    return TrainConfig(global_batch_size=16, micro_batch_size=16, lr=3e-3, warmup_steps=2, max_steps=steps,
                       val_every=steps, ckpt_every=10_000, log_every=steps)


def test_trained_policy_is_evaluated_through_kfp_local(tmp_path):
    root = tmp_path
    record_demos(DemoConfig(tasks=["reach-v3"], episodes_per_task=4, cameras=["corner"], image_size=32),
                 str(root / "demos"))
    pretrain_vlm(root, ["reach-v3"], ["corner"], 32, scenes_per_task=12, llm_layers=1, steps=4)
    preprocess(PreprocessConfig(future_steps=4, past_steps=1, num_workers=0, val_fraction=0.25),
               [str(root / "demos")], str(root / "robo"))
    vla_finetune(VLAStageConfig(expert=ActionExpertConfig(d_model=32, n_layers=1, n_heads=2, last_k_layers=1),
                                train=_train(10), execute_steps=2),
                 str(root / "vlm"), str(root / "robo"), str(root / "vla"))

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))

    @dsl.pipeline(name="sim-eval-trained-test")
    def pipe(bundle: str):
        policy = dsl.importer(artifact_uri=bundle, artifact_class=Model, reimport=False)
        sim_eval(policy=policy.output, preset="tiny", overrides="tasks=[reach-v3]\nimage_size=32\nmax_sample_size_per_model=200\n"
                                                                 "max_steps=30\nworkers=2\nvideos_per_task=1",
                 model_name="tiny_vla", episodes="0:3")

    pipe(bundle=str(root / "vla"))
    task_dir = next(os.path.join(r, d) for r, ds, _ in os.walk(root / "kfp") for d in ds if d == "sim-eval")
    rollouts = os.path.join(task_dir, "results", "tiny_vla", "ReachV3", "rollouts")
    (stamp,) = os.listdir(rollouts)
    with open(os.path.join(rollouts, stamp, "results.json")) as f:
        data = json.load(f)
    assert data["max_sample_size_per_model"] == 200
    entries = data["evaluations"]
    assert [e["scenario_index"] for e in entries] == [0, 1, 2]
    for e in entries:  # every episode ran: an untrained-ish policy may fail, but must not crash
        assert e["failure_message"] is None and isinstance(e["is_success"], bool), e
        assert e["skill_type"] == "ReachV3" and not e["is_pending"]
    with open(os.path.join(task_dir, "metrics")) as f:
        assert json.load(f)["reach-v3/episodes"] == 3
    with open(os.path.join(task_dir, "videos")) as f:
        assert f.read().count("data:image/gif;base64,") == 1
