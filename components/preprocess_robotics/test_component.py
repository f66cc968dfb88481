"""preprocess_robotics: its interface, and a kfp.local SubprocessRunner run on tiny synthetic demos."""

import json
import os

import numpy as np
import pytest
from kfp import compiler, dsl, local
from kfp.dsl import Dataset

from components.preprocess_robotics.component import preprocess_robotics
from vlaforge.robotics.episodes import EpisodeWriter


def write_demos(out, n: int, task: str) -> str:
    rng = np.random.default_rng(len(task))
    writer = EpisodeWriter(str(out))
    for i in range(n):
        T = 6 + i
        frames = rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8)
        writer.write(f"{task}-{i:06d}", task, f"solve {task}", {"corner": frames},
                     rng.normal(size=(T, 4)), rng.normal(size=(T, 4)))
    writer.close()
    return str(out)


def test_interface_and_image(tmp_path):
    spec = preprocess_robotics.component_spec
    assert set(spec.inputs) == {"demos", "preset", "overrides", "extra_episode_uris"}
    assert set(spec.outputs) == {"robotics", "metrics"}
    assert "vlaforge-train:" in spec.implementation.container.image
    compiler.Compiler().compile(preprocess_robotics, str(tmp_path / "c.yaml"))


@pytest.fixture
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield tmp_path


def test_local_run_writes_shards_stats_and_metrics(local_runner):
    tmp = local_runner
    demos = write_demos(tmp / "demos", 4, "reach-v3")
    extra = write_demos(tmp / "more", 2, "push-v3")

    @dsl.pipeline(name="preprocess-robotics-test")
    def pipe(demos_uri: str, extra: str):
        raw = dsl.importer(artifact_uri=demos_uri, artifact_class=Dataset, reimport=False)
        preprocess_robotics(demos=raw.output, preset="tiny", overrides="num_workers=0\nsamples_per_shard=16",
                            extra_episode_uris=extra)

    pipe(demos_uri=demos, extra=extra)
    task_dirs = [os.path.join(r, d) for r, ds, _ in os.walk(tmp / "root") for d in ds if d == "preprocess-robotics"]
    assert len(task_dirs) == 1
    out = os.path.join(task_dirs[0], "robotics")
    assert sorted(os.listdir(out)) == ["preprocessing_config.yaml", "splits.json", "stats.json", "train", "val"]
    with open(os.path.join(task_dirs[0], "metrics")) as f:
        metrics = json.load(f)
    assert metrics["episodes"] == 6 and metrics["train_samples"] + metrics["val_samples"] == sum(range(6, 10)) + 13
    with open(os.path.join(out, "preprocessing_config.yaml")) as f:
        assert "push-v3" in f.read()
