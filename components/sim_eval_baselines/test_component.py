"""The sim_eval_baselines component: its interface, and a kfp.local run of two baselines."""

import json
import os

import pytest
from kfp import dsl, local

from components.sim_eval_baselines.component import sim_eval_baselines
from components.testing import assert_interface

# Locally the component runs in this Python environment instead of its image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_interface(tmp_path):
    assert_interface(sim_eval_baselines, {"preset": "String", "overrides": "String", "baselines": "String",
                                          "episodes": "String"},
                     {"results": "system.Dataset@0.0.1", "metrics": "system.Metrics@0.0.1"}, "sim", tmp_path)


def test_local_run_of_the_baselines(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    @dsl.pipeline(name="sim-eval-baselines-test")
    def pipe():
        sim_eval_baselines(preset="tiny", overrides="workers=0\ntasks=[reach-v3]\nimage_size=32", baselines="expert,zero", episodes="0:2")

    pipe()
    task_dir = next(os.path.join(r, d) for r, ds, _ in os.walk(tmp_path / "root") for d in ds
                    if d == "sim-eval-baselines")
    with open(os.path.join(task_dir, "metrics")) as f:
        metrics = json.load(f)
    assert metrics["expert/reach-v3/success_rate"] == 1.0 and metrics["zero/reach-v3/success_rate"] == 0.0
    results = os.path.join(task_dir, "results")
    assert sorted(os.listdir(results)) == ["expert", "zero"]
    for model in ("expert", "zero"):
        (stamp,) = os.listdir(os.path.join(results, model, "ReachV3", "rollouts"))
        with open(os.path.join(results, model, "ReachV3", "rollouts", stamp, "results.json")) as f:
            data = json.load(f)
        assert [e["scenario_index"] for e in data["evaluations"]] == [0, 1]
