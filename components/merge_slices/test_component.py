"""merge_slices: its interface, and kfp.local fan-outs (plan_slices -> ParallelFor -> merge_slices) whose merged
outputs equal a one-slice run's: sim_eval per-episode results of a deterministic policy, record_demos episodes,
caption_data shards."""

import json
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl, local
from kfp.dsl import Model

from components.caption_data.component import caption_data
from components.merge_slices.component import merge_slices
from components.record_demos.component import record_demos
from components.sim_eval.component import sim_eval
from components.testing import assert_interface
from pipelines.stages import fanned_out
from vlaforge.robotics.episodes import read_index

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
EVAL = "tasks=[reach-v3, button-press-topdown-v3]\nepisodes=\"0:2\"\nworkers=0\nmax_steps=8\nvideos_per_task=1"
DEMOS = "tasks=[reach-v3]\nepisodes_per_task=3\ncameras=[corner]\nimage_size=16"
CAPTIONS = "tasks=[reach-v3, push-v3]\nscenes_per_task=3\ncameras=[corner]\nimage_size=16\nsamples_per_shard=4"


def test_interface(tmp_path):
    assert_interface(merge_slices, {"section": "String", "preset": "String", "overrides": "String",
                                    "slices": "system.Dataset@0.0.1"},
                     {"merged": "system.Dataset@0.0.1", "metrics": "system.Metrics@0.0.1"}, "sim", tmp_path)
    assert merge_slices.component_spec.inputs["slices"].is_artifact_list


@dsl.pipeline(name="sim-eval-fanned-out")
def evaluate(policy_uri: str, slices: int):
    policy = dsl.importer(artifact_uri=policy_uri, artifact_class=Model, reimport=False)
    fanned_out("sim_eval", "sim_eval", slices, "tiny", EVAL,
               lambda item: sim_eval(policy=policy.output, preset="tiny", overrides=item, model_name="tiny_policy"),
               "results")


@dsl.pipeline(name="record-demos-fanned-out")
def record(slices: int):
    fanned_out("demos", "record_demos", slices, "tiny", DEMOS,
               lambda item: record_demos(preset="tiny", overrides=item), "demos")


@dsl.pipeline(name="caption-data-fanned-out")
def render(slices: int):
    fanned_out("captions", "caption_data", slices, "tiny", CAPTIONS,
               lambda item: caption_data(preset="tiny", overrides=item), "captions")


def _merged(root: Path) -> tuple[Path, dict]:
    """The merge task's output folder and metrics of the one run under ``root``."""
    (task,) = [p for p in root.rglob("merge-slices") if p.is_dir()]
    return task / "merged", json.loads((task / "metrics").read_text())


def _evaluations(merged: Path) -> dict[str, list[dict]]:
    out = {}
    for results in sorted(merged.glob("tiny_policy/*/rollouts/*/results.json")):
        assert results.parent.parent.name == "rollouts" and len(list(results.parent.parent.iterdir())) == 1
        out[results.parts[-4]] = json.loads(results.read_text())["evaluations"]
    return out


def test_sim_eval_in_two_and_three_slices_equals_one(upstream, tmp_path, capfd):
    runs = {}
    # 2: episode 0 then episode 1 of both tasks (balanced blocks); 3, more slices than episodes: reach 0:1
    # and 1:2, button-press 0:2 (a split task and a whole one)
    for slices in (1, 2, 3):
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / str(slices)))
        evaluate(policy_uri=upstream.policy, slices=slices)
        runs[slices] = _merged(tmp_path / str(slices))
    (one, one_metrics), (two, _), (three, three_metrics) = runs[1], runs[2], runs[3]
    assert _evaluations(two) == _evaluations(three) == _evaluations(one)
    assert set(_evaluations(one)) == {"ReachV3", "ButtonPressTopdownV3"}
    assert all(len(e) == 2 and not any(r["is_pending"] for r in e) for e in _evaluations(one).values())
    assert {k: v for k, v in three_metrics.items() if "slice" not in k} == \
           {k: v for k, v in one_metrics.items() if "slice" not in k}
    assert three_metrics["slices"] == 3 and one_metrics["slices"] == 1
    assert "sim_eval slice 3/3:" in "".join(capfd.readouterr())
    videos = {n: sorted(f"{p.parents[3].name}/{p.name}" for p in merged.glob("tiny_policy/*/rollouts/*/videos/*"))
              for n, merged in ((1, one), (2, two), (3, three))}
    assert videos[3] == videos[2] == videos[1] == ["ButtonPressTopdownV3/episode_000000.gif", "ReachV3/episode_000000.gif"]


def test_record_demos_in_two_slices_equals_one(tmp_path):
    merged = {}
    for slices in (1, 2):
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / str(slices)))
        record(slices=slices)
        merged[slices] = _merged(tmp_path / str(slices))[0]
    one, two = (read_index(str(merged[n])) for n in (1, 2))
    assert [(m.episode_id, m.seed, m.length, m.success) for m in two] == \
           [(m.episode_id, m.seed, m.length, m.success) for m in one]
    assert len(one) >= 2
    for a, b in zip(one, two):
        with np.load(a.uri) as ea, np.load(b.uri) as eb:
            assert sorted(ea.files) == sorted(eb.files)
            for name in ea.files:
                np.testing.assert_array_equal(ea[name], eb[name])
    report_one, report_two = (json.loads((merged[n] / "recording_report.json").read_text()) for n in (1, 2))
    for key in ("attempted", "succeeded", "kept"):
        assert report_two[key] == report_one[key]
    assert report_two["tasks"]["reach-v3"]["mean_length"] == pytest.approx(report_one["tasks"]["reach-v3"]["mean_length"])
    assert report_two["config"] == report_one["config"]


def test_caption_data_in_three_slices_writes_the_same_shards(tmp_path):
    merged = {}
    for slices in (1, 3):  # 3: reach 0:1 and 1:3, push 0:3; shards of 4 samples cut across slices
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / str(slices)))
        render(slices=slices)
        merged[slices], metrics = _merged(tmp_path / str(slices))
        assert metrics["num_samples"] == 6 and metrics["slices"] == slices and metrics["slowest_slice_seconds"] > 0
    files = {n: {p.name: p.read_bytes() for p in merged[n].iterdir()} for n in (1, 3)}
    assert files[3] == files[1]
    assert sorted(files[1]) == ["captions-000000.tar", "captions-000001.tar", "manifest.jsonl"]

