"""Scripted-expert demonstrations in the raw episode format that preprocessing reads."""

import json

import numpy as np
import pytest

from vlaforge.config import ConfigError
from vlaforge.robotics.episodes import load_episode, read_index
from vlaforge.sim.baselines import GOAL, ExpertPolicy
from vlaforge.sim.demos import DemoConfig, record_demos
from vlaforge.sim.env import episode_seed, make_env
from vlaforge.stages.record_demos import run


def test_recorded_demos_are_complete_and_readable(tmp_path):
    cfg = DemoConfig(tasks=["reach-v3"], episodes_per_task=3, cameras=["corner", "behindGripper"],
                     image_size=32, action_noise=0.1, steps_after_success=4)
    report = record_demos(cfg, str(tmp_path))
    assert report["tasks"]["reach-v3"]["success_rate"] == 1.0 and report["kept"] == 3
    assert json.loads((tmp_path / "recording_report.json").read_text())["succeeded"] == 3
    lines = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [line["episode_id"] for line in lines] == ["reach-v3-000000", "reach-v3-000001", "reach-v3-000002"]
    first = lines[0]
    assert first["instruction"] == "reach the red goal" and first["success"] is True
    assert first["file"] == "episodes/reach-v3-000000.npz" and first["image_size"] == 32
    assert first["cameras"] == ["corner", "behindGripper"]
    assert first["seed"] == episode_seed("reach-v3", 0, "train")
    for meta in read_index(str(tmp_path)):  # the preprocessing stage's own reader
        ep = load_episode(meta, ["corner", "behindGripper"], proprio_dim=4, action_dim=4)
        T = meta.length
        assert ep.images["corner"].shape == (T, 32, 32, 3) and ep.images["corner"].dtype == np.uint8
        assert ep.proprio.dtype == np.float32 and np.abs(ep.action).max() <= 1.0
        first_success = int(np.argmax(ep.success))
        assert ep.success[first_success:].all() and T - 1 - first_success == 4  # stopped 4 steps later
        # action[t] moves the hand target by action * 1 cm; proprio[t + 1] shows where the hand went
        moved = ep.proprio[1:, :3] - ep.proprio[0, :3]
        axis = int(np.abs(moved[-1]).argmax())
        assert np.corrcoef(np.cumsum(ep.action[:-1, axis]), moved[:, axis])[0, 1] > 0.9


def test_noisy_demos_are_reproducible_in_any_number_of_processes(tmp_path):
    cfg = DemoConfig(tasks=["push-v3"], episodes_per_task=2, cameras=["corner"], image_size=32,
                     action_noise=0.3)
    record_demos(cfg, str(tmp_path / "a"))
    cfg.workers = 2
    record_demos(cfg, str(tmp_path / "b"))
    assert (tmp_path / "a" / "episodes.jsonl").read_text() == (tmp_path / "b" / "episodes.jsonl").read_text()
    for name in ("push-v3-000000.npz", "push-v3-000001.npz"):
        a, b = (np.load(tmp_path / d / "episodes" / name) for d in ("a", "b"))
        np.testing.assert_array_equal(a["action"], b["action"])
        np.testing.assert_array_equal(a["images_corner"], b["images_corner"])


def test_failed_demos_are_left_out_unless_kept(tmp_path):
    cfg = DemoConfig(tasks=["push-v3"], episodes_per_task=2, cameras=["corner"], image_size=32, max_steps=5)
    with pytest.raises(RuntimeError, match="no demonstration succeeded on push-v3"):
        record_demos(cfg, str(tmp_path / "dropped"))
    assert not (tmp_path / "dropped" / "episodes.jsonl").exists()
    cfg.keep_failed = True
    report = record_demos(cfg, str(tmp_path / "kept"))
    assert report["tasks"]["push-v3"] == {"attempted": 2, "succeeded": 0, "kept": 2, "success_rate": 0.0,
                                          "mean_length": 5.0}
    lines = (tmp_path / "kept" / "episodes.jsonl").read_text().splitlines()
    assert [json.loads(line)["success"] for line in lines] == [False, False]


def test_bad_config_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'reach-v2'"):
        run("tiny", ["tasks=[reach-v2]"], str(tmp_path))
    with pytest.raises(ValueError, match="unknown camera 'wrist'"):
        run("tiny", ["cameras=[corner, wrist]"], str(tmp_path))
    with pytest.raises(ConfigError, match="unknown key 'demos.episodes'"):
        run("tiny", ["episodes=3"], str(tmp_path))
    with pytest.raises(ValueError, match="task_episodes names 'push-v3', which is not in demos.tasks"):
        run("tiny", ["task_episodes={push-v3: 2}"], str(tmp_path))
    with pytest.raises(ValueError, match="task_episodes.reach-v3 must be an integer >= 1"):
        run("tiny", ["tasks=[reach-v3]", "task_episodes={reach-v3: 0}"], str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_per_task_episode_counts(tmp_path):
    cfg = DemoConfig(tasks=["reach-v3", "push-v3"], episodes_per_task=1, task_episodes={"reach-v3": 3},
                     cameras=["corner"], image_size=16, max_steps=3, keep_failed=True)
    report = record_demos(cfg, str(tmp_path))
    assert {t: r["attempted"] for t, r in report["tasks"].items()} == {"reach-v3": 3, "push-v3": 1}
    lines = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [line["task"] for line in lines] == ["reach-v3"] * 3 + ["push-v3"]


def test_clean_labels_record_the_experts_choice_along_the_noisy_path(tmp_path):
    cfg = DemoConfig(tasks=["reach-v3"], episodes_per_task=1, cameras=["corner"], image_size=32, action_noise=0.3)
    record_demos(cfg, str(tmp_path / "executed"))
    cfg.labels = "clean"
    record_demos(cfg, str(tmp_path / "clean"))
    clean, executed = (np.load(tmp_path / d / "episodes" / "reach-v3-000000.npz") for d in ("clean", "executed"))
    np.testing.assert_array_equal(clean["proprio"], executed["proprio"])  # the same noisy path
    noise = executed["action"] - clean["action"]
    assert 0.15 < noise[:, :3].std() < 0.35  # the executed actions carry the N(0, 0.3) noise (clipped to the box)
    assert np.abs(np.diff(clean["action"][:, :3], axis=0)).mean() < np.abs(np.diff(executed["action"][:, :3], axis=0)).mean() / 2
    with pytest.raises(ValueError, match="demos.labels must be 'clean' or 'executed'"):
        record_demos(DemoConfig(labels="noisy"), str(tmp_path / "bad"))


def test_fingertip_expert_brings_the_fingertips_onto_the_reach_goal(tmp_path):
    env = make_env("reach-v3", [], 32)
    ends = {}
    for fingertips in (False, True):
        expert = ExpertPolicy(fingertips=fingertips)
        obs = env.reset(episode_seed("reach-v3", 0))
        for _ in range(120):
            obs, _, _ = env.step(expert.predict([[obs]])[0][0])
        ends[fingertips] = np.linalg.norm(env._sim.env.tcp_center - obs.state[GOAL])
    assert ends[False] > 0.04  # the wrist on the goal: the fingertips 4.5 cm below, at the success radius's edge
    assert ends[True] < 0.015
    first_z = {}
    for fingertips in (False, True):  # the recorded demonstrations follow the setting
        cfg = DemoConfig(tasks=["reach-v3"], episodes_per_task=1, cameras=["corner"], image_size=16,
                         action_noise=0.0, labels="clean", fingertips=fingertips)
        out = str(tmp_path / f"fingertips-{fingertips}")
        record_demos(cfg, out)
        first_z[fingertips] = load_episode(read_index(out)[0], ["corner"], proprio_dim=4, action_dim=4).action[0, 2]
    assert first_z[True] - first_z[False] > 0.1  # p = 5 on a goal 4.5 cm higher
