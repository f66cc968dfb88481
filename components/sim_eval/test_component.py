"""The sim_eval component: its interface, and a kfp.local run of a policy bundle imported by URI."""

import json

import pytest
from kfp import dsl, local
from kfp.dsl import Model

from components.sim_eval.component import sim_eval
from components.testing import assert_interface

# Locally the component runs in this Python environment instead of its image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
OVERRIDES = ["tasks=[reach-v3]", "image_size=32", "workers=0", "max_steps=6", "videos_per_task=1", "video_format=gif"]


def test_interface(tmp_path):
    assert_interface(sim_eval, {"policy": "system.Model@0.0.1", "preset": "String", "overrides": "String",
                                "model_name": "String", "episodes": "String",
                                "input_fingerprint": "String"},
                     {"results": "system.Dataset@0.0.1", "metrics": "system.Metrics@0.0.1",
                      "videos": "system.HTML@0.0.1"}, "sim", tmp_path)


@dsl.pipeline(name="sim-eval-of-a-bundle")
def evaluate(policy_uri: str):
    policy = dsl.importer(artifact_uri=policy_uri, artifact_class=Model, reimport=False)
    sim_eval(policy=policy.output, preset="tiny", overrides="\n".join(OVERRIDES), model_name="tiny_policy",
             episodes="0:1")


def test_local_run_of_a_policy_bundle(upstream, tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    evaluate(policy_uri=upstream.policy)

    (task_dir,) = [p for p in (tmp_path / "root").rglob("sim-eval") if p.is_dir()]
    metrics = json.loads((task_dir / "metrics").read_text())
    assert metrics["reach-v3/episodes"] == 1 and metrics["reach-v3/crashed"] == 0
    (results,) = (task_dir / "results" / "tiny_policy" / "ReachV3" / "rollouts").glob("*/results.json")
    (episode,) = json.loads(results.read_text())["evaluations"]
    assert episode["scenario_index"] == 0 and not episode["is_pending"] and episode["num_steps"] == 6
    assert (task_dir / "videos").read_text().count("data:image/gif;base64,") == 1
