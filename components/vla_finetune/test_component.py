"""The vla_finetune component: its interface, and one kfp.local run on a VLM and robotics shards imported by URI."""

import json
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl, local
from kfp.dsl import Dataset, Model

from components.testing import VLA, assert_interface
from components.vla_finetune.component import vla_finetune
from vlaforge.policy import ControlState, Observation, load_policy, step_policy
from vlaforge.policy.bundle import REQUIRED

# Locally the component runs in this Python environment instead of its image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_interface(tmp_path):
    assert_interface(vla_finetune, {"preset": "String", "overrides": "String", "backbone": "system.Model@0.0.1",
                                    "robotics": "system.Dataset@0.0.1"},
                     {"policy": "system.Model@0.0.1", "metrics": "system.Metrics@0.0.1"}, "train", tmp_path)


@dsl.pipeline(name="vla-finetune-on-artifacts")
def finetune_on(backbone_uri: str, robotics_uri: str, overrides: str) -> Model:
    backbone = dsl.importer(artifact_uri=backbone_uri, artifact_class=Model, reimport=False)
    robotics = dsl.importer(artifact_uri=robotics_uri, artifact_class=Dataset, reimport=False)
    return vla_finetune(preset="tiny", overrides=overrides, backbone=backbone.output,
                        robotics=robotics.output).outputs["policy"]


def test_local_run(upstream, tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    policy = finetune_on(backbone_uri=upstream.vlm, robotics_uri=upstream.robotics,
                         overrides="\n".join([*VLA, "execute_steps=2"])).output

    out = Path(policy.path)
    assert set(REQUIRED) | {"tokenizer", "stats.json"} <= {p.name for p in out.iterdir()}
    assert policy.metadata == {"kind": "vla", "framework": "pytorch"}
    metrics = json.loads(Path(out.parent, "metrics").read_text())
    assert metrics["steps"] == 2 and np.isfinite(metrics["final_val_loss"])
    bundle = load_policy(str(out))  # the bundle alone is enough to act
    assert bundle.execute_steps == 2 and bundle.cameras == ["corner", "behindGripper"]
    obs = Observation(images={c: np.zeros((32, 32, 3), np.uint8) for c in bundle.cameras},
                      proprio=np.zeros(4, np.float32), instruction="reach the goal")
    action = step_policy(bundle, ControlState(bundle.n_obs_steps, bundle.execute_steps), obs, seed=0)
    assert action.shape == (4,) and np.isfinite(action).all()
