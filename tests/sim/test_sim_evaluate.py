"""Closed-loop evaluation: baselines bound the success rate, results follow the rollout layout,
crashes are recorded, and ranges are checked against what exists and the budget."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from vlaforge.analysis.results import load_results
from vlaforge.sim import env as sim_env
from vlaforge.sim.evaluate import EvalConfig, evaluate, flat_metrics, video_page
from vlaforge.sim.rollouts import RolloutError
from vlaforge.sim.video import encode_video
from vlaforge.stages.sim_eval import run
from vlaforge.stages.sim_eval_baselines import run as run_baselines


def _cfg(**kw) -> EvalConfig:
    base = dict(tasks=["reach-v3"], episodes="0:4", cameras=["corner"], image_size=32, workers=0)
    return EvalConfig(**{**base, **kw})


def _results(root: Path, model: str, task_dir: str) -> list[dict]:
    files = sorted((root / model / task_dir / "rollouts").glob("*/results.json"))
    return [e for f in files for e in json.loads(f.read_text())["evaluations"]]


def test_expert_succeeds_and_random_fails(tmp_path):
    overrides = ["tasks=[reach-v3, push-v3]", "image_size=32", "max_sample_size_per_model=200", "workers=0",
                 "videos_per_task=0"]
    reports = run_baselines("expert,random", "tiny", overrides, str(tmp_path), episodes="0:4")
    for task in ("reach-v3", "push-v3"):
        assert reports["expert"]["tasks"][task]["success_rate"] >= 0.75
        assert reports["random"]["tasks"][task]["success_rate"] <= 0.25
    entries = _results(tmp_path, "expert", "PushV3")
    assert [e["scenario_index"] for e in entries] == [0, 1, 2, 3]
    for e in entries:
        assert e["skill_type"] == "PushV3" and e["is_pending"] is False and e["failure_message"] is None
        assert isinstance(e["is_success"], bool) and e["total_time"] > 0
    data = json.loads(next((tmp_path / "random" / "ReachV3" / "rollouts").glob("*/results.json")).read_text())
    assert data["max_sample_size_per_model"] == 200
    metrics = flat_metrics(reports["expert"])
    assert metrics["push-v3/episodes"] == 4 and metrics["success_rate"] >= 0.75
    loaded = load_results([str(tmp_path)])  # the step_analysis stage's loader reads them as they are
    assert loaded.models == ["expert", "random"] and loaded.tasks == ["PushV3", "ReachV3"]
    assert loaded.outcomes("PushV3", "expert") == [e["is_success"] for e in entries]


def test_same_index_same_scene_for_every_policy(tmp_path):
    evaluate("baseline:expert", _cfg(episodes="0:3"), str(tmp_path), "first")
    evaluate("baseline:zero", _cfg(episodes="0:3"), str(tmp_path), "zero")
    evaluate("baseline:expert", _cfg(episodes="0:3", workers=2), str(tmp_path), "second")
    first, zero, second = (_results(tmp_path, m, "ReachV3") for m in ("first", "zero", "second"))
    assert [e["seed"] for e in first] == [e["seed"] for e in zero] == [e["seed"] for e in second]
    # The deterministic expert replays each scene step for step, in this process or in workers.
    assert [e["num_steps"] for e in first] == [e["num_steps"] for e in second]
    assert [e["is_success"] for e in zero] == [False] * 3


def test_a_crashing_episode_is_recorded_and_the_others_finish(tmp_path, monkeypatch):
    bad_seed = sim_env.episode_seed("reach-v3", 1, "eval")
    reset = sim_env.SimEnv.reset

    def flaky_reset(self, seed):
        if seed == bad_seed:
            raise RuntimeError("simulator exploded")
        return reset(self, seed)

    monkeypatch.setattr(sim_env.SimEnv, "reset", flaky_reset)
    report = evaluate("baseline:expert", _cfg(episodes="0:3"), str(tmp_path))
    entries = {e["scenario_index"]: e for e in _results(tmp_path, "expert", "ReachV3")}
    assert entries[1]["is_success"] is None and entries[1]["is_pending"] is False
    assert entries[1]["failure_message"].startswith("RuntimeError: simulator exploded")
    assert entries[0]["is_success"] is True and entries[2]["is_success"] is True
    assert report["tasks"]["reach-v3"] == {"episodes": 2, "successes": 2, "success_rate": 1.0,
                                           "crashed": 1, "pending": 0}


def test_bad_requests_are_refused_with_clear_messages(tmp_path):
    out = str(tmp_path)
    with pytest.raises(ValueError, match="unknown task 'fly-v3'"):
        evaluate("baseline:zero", _cfg(tasks=["reach-v3", "fly-v3"]), out)
    with pytest.raises(RolloutError, match="0:12 exceeds max_sample_size_per_model=10"):
        evaluate("baseline:zero", _cfg(episodes="0:12", max_sample_size_per_model=10), out)
    with pytest.raises(ValueError, match="episode range '4:2'"):
        evaluate("baseline:zero", _cfg(episodes="4:2"), out)
    with pytest.raises(ValueError, match="unknown baseline policy 'oracle'"):
        evaluate("baseline:oracle", _cfg(), out)
    assert not list(tmp_path.iterdir())  # refused before anything was written

    evaluate("baseline:zero", _cfg(episodes="0:2", max_sample_size_per_model=5, max_steps=5), out)
    with pytest.raises(RolloutError, match=r"episodes 1:2 already exist in .*results\.json"):
        evaluate("baseline:zero", _cfg(episodes="1:3", max_sample_size_per_model=5, max_steps=5), out)
    with pytest.raises(RolloutError, match="max_sample_size_per_model is 5"):
        evaluate("baseline:zero", _cfg(episodes="2:3", max_sample_size_per_model=6, max_steps=5), out)
    report = evaluate("baseline:zero", _cfg(episodes="2:5", max_sample_size_per_model=5, max_steps=5), out)
    assert report["tasks"]["reach-v3"]["episodes"] == 5
    with pytest.raises(RolloutError, match="5:6 exceeds max_sample_size_per_model=5"):
        evaluate("baseline:zero", _cfg(episodes="5:6", max_sample_size_per_model=5, max_steps=5), out)


def test_missing_policy_bundle_files_are_named(tmp_path):
    (tmp_path / "bundle").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        evaluate(str(tmp_path / "bundle"), _cfg(), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_videos_of_the_first_episodes(tmp_path):
    evaluate("baseline:expert", _cfg(episodes="0:2", videos_per_task=1, video_camera="topview"),
             str(tmp_path))
    videos = sorted(tmp_path.glob("expert/ReachV3/rollouts/*/videos/*"))
    assert [v.name for v in videos] == ["episode_000000.gif"]
    frames = iio.imread(videos[0])
    entry = _results(tmp_path, "expert", "ReachV3")[0]
    assert frames.shape == (entry["num_steps"] + 1, 32, 32, 3)
    page = video_page(str(tmp_path), "expert")
    assert page.count("data:image/gif;base64,") == 1 and "ReachV3 episode_000000" in page


def test_mp4_and_gif_encoding_round_trip():
    frames = [np.full((33, 33, 3), 20 * i, np.uint8) for i in range(6)]
    gif = iio.imread(encode_video(frames, "gif"))
    mp4 = iio.imread(encode_video(frames, "mp4", fps=10), extension=".mp4", plugin="pyav")
    assert gif.shape == (6, 33, 33, 3) and mp4.shape == (6, 34, 34, 3)  # H.264 needs even sizes
    assert abs(int(mp4[5].mean()) - 100) < 8
    with pytest.raises(ValueError, match="unknown video format 'avi'"):
        encode_video(frames, "avi")


def test_episode_ranges_in_overrides_stay_ranges(tmp_path):
    # unquoted, YAML would read 1:3 as the base-60 number 63
    report = run("baseline:zero", "tiny", "tasks=[reach-v3]; episodes=1:3; workers=0; max_steps=2; videos_per_task=0", str(tmp_path))
    assert report["tasks"]["reach-v3"]["episodes"] == 2
    assert [e["scenario_index"] for e in _results(tmp_path, "zero", "ReachV3")] == [1, 2]


def test_policy_eval_command_prints_success_with_clopper_pearson_intervals(tmp_path, capsys):
    from vlaforge.cli import main

    main(["policy-eval", "--preset", "tiny", "--episodes", "0:2", "--set", "max_steps=20", "--set", "workers=0",
          "--set", "tasks=[reach-v3]", "--policy", "baseline:expert", "--policy", "baseline:zero", "--out", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "baseline:expert" and out[3] == "baseline:zero"
    zero = out[4].split()
    assert zero[:4] == ["reach-v3", "0/2", "=", "0.0%"] and "95% CI [ 0.0%, 84.2%]" in out[4]  # exact binomial
    assert (tmp_path / "p1-zero").is_dir()  # results kept, one model folder per policy


class _InstructionRecorder:
    """A policy that stands still and records the instructions it was given."""

    name, n_obs_steps, execute_steps = "recorder", 1, 1

    def __init__(self):
        self.seen: set[str] = set()

    def predict(self, histories, seed=None):
        self.seen.update(h[-1].instruction for h in histories)
        return [np.zeros((1, 4), np.float32) for _ in histories]


def test_test_split_is_recorded_and_kept_apart_from_eval(tmp_path):
    rep = run("baseline:zero", "tiny", ["tasks=[reach-v3]", "max_sample_size_per_model=200", "workers=0",
                                        "videos_per_task=0", "split=test", "cameras=[corner]"],
              str(tmp_path), "zero", episodes="0:2")
    assert rep["split"] == "test"
    entries = _results(tmp_path, "zero", "ReachV3")
    assert [e["split"] for e in entries] == ["test", "test"]
    assert [e["seed"] for e in entries] == [sim_env.episode_seed("reach-v3", i, "test") for i in (0, 1)]
    with pytest.raises(ValueError, match="test-split episodes; this evaluation uses the eval split"):
        evaluate("baseline:zero", _cfg(episodes="2:4"), str(tmp_path), "zero")
    with pytest.raises(ValueError, match="sim_eval.split must be 'eval' or 'test'"):
        evaluate("baseline:zero", _cfg(split="train"), str(tmp_path), "other")


def test_swapped_instructions_reach_the_policy():
    from vlaforge.sim.evaluate import EpisodeJob, run_episode, swapped_instructions

    swap = swapped_instructions(["reach-v3", "push-v3"])
    assert swap == {"reach-v3": sim_env.TASKS["push-v3"].instruction, "push-v3": sim_env.TASKS["reach-v3"].instruction}
    policy = _InstructionRecorder()
    run_episode(policy, EpisodeJob("reach-v3", 0, ("corner",), 32, 3, "eval", swap["reach-v3"]))
    assert policy.seen == {sim_env.TASKS["push-v3"].instruction}
    with pytest.raises(ValueError, match="swap_instructions needs at least two"):
        evaluate("baseline:zero", _cfg(swap_instructions=True), "unused", "zero")
