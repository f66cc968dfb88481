"""lerobot_import: its interface, and a kfp.local run importing the committed LeRobot v3.0 dataset
(written by the real lerobot-dataset package, see tests/robotics/test_robotics_lerobot_v30.py)."""

import json
import os
from pathlib import Path

import pytest
from kfp import compiler, dsl, local

from components.lerobot_import.component import lerobot_import
from components.merge_slices.test_component import _merged
from pipelines.stages import preprocessed

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "robotics" / "data" / "lerobot_v30" / "so100_mixed"


def test_interface(tmp_path):
    spec = lerobot_import.component_spec
    assert (set(spec.inputs), set(spec.outputs)) == ({"dataset_uri", "preset", "overrides", "input_fingerprint"},
                                                         {"episodes", "metrics"})
    assert spec.inputs["dataset_uri"].type == "String"  # a plain URI parameter in the KFP UI
    assert spec.implementation.container.image.rsplit("/", 1)[-1].startswith("vlaforge-train:")
    compiler.Compiler().compile(lerobot_import, str(tmp_path / "c.yaml"))


def _run_locally(pipeline, root: Path) -> None:
    """``pipeline`` on kfp.local's SubprocessRunner with its outputs under ``root``."""
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    pipeline(dataset_uri=str(FIXTURE))


def _task_dir(root, name: str) -> str:
    (found,) = [os.path.join(r, d) for r, ds, _ in os.walk(root) for d in ds if d == name]
    return found


def test_local_run_imports_v30_and_feeds_preprocessing(tmp_path):
    @dsl.pipeline(name="lerobot-import-test")
    def pipe(dataset_uri: str):
        raw = lerobot_import(dataset_uri=dataset_uri, preset="tiny",
                             overrides='state_slice="1:5"\ncameras={observation.images.wrist: corner}')
        preprocessed("tiny", "num_workers=0\nsamples_per_shard=16\nfuture_steps=2", raw.outputs["episodes"])

    _run_locally(pipe, tmp_path)
    task = _task_dir(tmp_path, "lerobot-import")
    lines = (Path(task) / "episodes" / "episodes.jsonl").read_text().splitlines()
    assert [json.loads(line)["instruction"] for line in lines] == ["pick up the red cube", "open the top drawer",
                                                                   "pick up the red cube"]
    assert {tuple(json.loads(line)["cameras"]) for line in lines} == {("corner",)}
    metrics = json.loads((Path(task) / "metrics").read_text())
    assert metrics["episodes"] == 3 and metrics["frames"] == 28 and metrics["frames_per_s"] > 0
    robotics, _ = _merged(tmp_path)  # preprocess_robotics as the pipelines run it: plan -> slice -> merge
    config = (robotics / "preprocessing_config.yaml").read_text()
    assert "so100_mixed" in config and "corner" in config


def test_local_run_fails_on_a_wrong_camera_key(tmp_path, capfd):
    @dsl.pipeline(name="lerobot-import-bad")
    def pipe(dataset_uri: str):
        lerobot_import(dataset_uri=dataset_uri, preset="tiny", overrides="cameras={observation.images.side: s}")

    with pytest.raises(RuntimeError, match="lerobot-import"):
        _run_locally(pipe, tmp_path)
    logs = "".join(capfd.readouterr())
    assert "no camera feature observation.images.side; camera features: observation.images.top, " in logs
    task = _task_dir(tmp_path, "lerobot-import")
    assert not list(Path(task).rglob("episodes.jsonl")) and not list(Path(task).rglob("*.npz"))
