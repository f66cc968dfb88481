"""preprocess_robotics: its interface, and kfp.local fan-outs (plan_slices -> preprocess_robotics per group of
episodes -> merge_slices) whose shards, splits and stats.json with 2 slices equal a one-slice run's."""

import json
import re
import tarfile

import numpy as np
import pytest
from kfp import dsl, local
from kfp.dsl import Dataset

from components.merge_slices.test_component import _merged
from components.preprocess_robotics.component import preprocess_robotics
from components.testing import assert_interface
from pipelines.stages import preprocessed
from vlaforge.robotics.episodes import EpisodeWriter

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
OVERRIDES = "num_workers=0\nsamples_per_shard=16\nval_fraction=0.3"


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


def test_interface(tmp_path):
    assert_interface(preprocess_robotics, {"demos": "system.Dataset@0.0.1", "preset": "String", "overrides": "String",
                                           "extra_episode_uris": "String"}, {"robotics": "system.Dataset@0.0.1"},
                     "train", tmp_path)


@dsl.pipeline(name="preprocess-robotics-fanned-out")
def preprocess(demos_uri: str, extra: str, slices: int):
    raw = dsl.importer(artifact_uri=demos_uri, artifact_class=Dataset, reimport=False)
    preprocessed("tiny", OVERRIDES, raw.output, slices, extra)


def _members(shard) -> dict[str, bytes]:
    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_two_slices_write_the_dataset_of_one(tmp_path):
    demos = write_demos(tmp_path / "demos", 4, "reach-v3")
    extra = write_demos(tmp_path / "more", 3, "push-v3")  # 2 slices: episodes 0:3 and 3:7, across the datasets
    runs = {}
    for slices in (1, 2):
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / str(slices)))
        preprocess(demos_uri=demos, extra=extra, slices=slices)
        runs[slices] = _merged(tmp_path / str(slices))
    (one, one_metrics), (two, two_metrics) = runs[1], runs[2]
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir()) == \
           ["preprocessing_config.yaml", "splits.json", "stats.json", "train", "val"]
    for name in ("splits.json", "preprocessing_config.yaml"):
        assert (two / name).read_text() == (one / name).read_text()
    for split in ("train", "val"):
        assert (two / split / "manifest.jsonl").read_text() == (one / split / "manifest.jsonl").read_text()
        for shard in sorted((one / split).glob("*.tar")):
            assert _members(two / split / shard.name) == _members(shard)
    stats = {n: json.loads((m / "stats.json").read_text()) for n, m in ((1, one), (2, two))}
    assert stats[2].keys() == stats[1].keys() == {"proprio", "action"}
    for field, summary in stats[1].items():
        for key, value in summary.items():
            other = stats[2][field][key]
            if key.startswith("count"):
                assert other == value, (field, key)
            else:  # means and stds merged from partial moments: float64 rounding; extremes and percentiles exact
                np.testing.assert_allclose(np.array(other, float), np.array(value, float), rtol=1e-12, atol=1e-12,
                                           err_msg=f"{field}.{key}")
    assert one_metrics["episodes"] == 7 and one_metrics["train_samples"] + one_metrics["val_samples"] == \
           sum(range(6, 10)) + sum(range(6, 9))
    assert {k: v for k, v in two_metrics.items() if k not in ("seconds", "samples_per_s", "slowest_slice_seconds", "slices")} == \
           {k: v for k, v in one_metrics.items() if k not in ("seconds", "samples_per_s", "slowest_slice_seconds", "slices")}
    assert two_metrics["slices"] == 2


@pytest.mark.parametrize("width,message", [
    (0, "preprocess_slices must be an integer >= 1, got 0"),
    (3, "preprocess_slices=3 asks for more slices than there are items to split \\(2: episodes 0:2\\)")])
def test_a_width_that_cannot_be_cut_names_the_parameter(tmp_path, capfd, width, message):
    demos = write_demos(tmp_path / "demos", 2, "reach-v3")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    with pytest.raises(RuntimeError, match="FAILURE"):
        preprocess(demos_uri=demos, extra="", slices=width)
    assert re.search(message, "".join(capfd.readouterr()))
