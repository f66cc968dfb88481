"""The Meta-World wrapper: task registry, seeds, observations, and one scene per seed."""

import numpy as np
import pytest
from sim_helpers import reset_state

from vlaforge.sim.env import CAMERAS, SPLITS, TASKS, episode_seed, make_env, step_seed
from vlaforge.sim.workers import run_jobs

ISSUE_11_TASKS = ["reach-v3", "button-press-topdown-v3", "drawer-open-v3", "push-v3"]


def test_registry_holds_the_benchmark_tasks_with_instructions():
    for task in ISSUE_11_TASKS:
        assert TASKS[task].instruction and TASKS[task].max_steps <= 500
    assert TASKS["reach-v3"].instruction == "reach the red goal"


def test_unknown_task_and_camera_are_named():
    with pytest.raises(ValueError, match="unknown task 'reach-v9'.*reach-v3"):
        make_env("reach-v9")
    with pytest.raises(ValueError, match="unknown camera 'wrist'.*behindGripper"):
        make_env("reach-v3", ["corner", "wrist"], 32)
    with pytest.raises(ValueError, match="max_steps"):
        make_env("reach-v3", ["corner"], 32, max_steps=501)


def test_seeds_are_deterministic_and_splits_disjoint():
    seeds = {split: {episode_seed(t, i, split) for t in TASKS for i in range(300)} for split in SPLITS}
    assert all(len(s) == 300 * len(TASKS) for s in seeds.values())
    for a in SPLITS:
        for b in SPLITS:
            assert a == b or not seeds[a] & seeds[b], (a, b)
    assert episode_seed("push-v3", 7, "eval") == episode_seed("push-v3", 7, "eval")
    assert episode_seed("push-v3", 7, "eval") == 38_706_295_603_222  # the seeds of earlier results stay
    assert max(max(s) for s in seeds.values()) < 2**46 and min(seeds["test"]) >= 3 * 2**44
    with pytest.raises(ValueError, match="split 'dev'"):
        episode_seed("push-v3", 0, "dev")
    assert len({step_seed(5, t) for t in range(100)}) == 100


def test_observation_holds_images_proprio_instruction_and_state():
    env = make_env("push-v3", ["corner", "behindGripper"], 32)
    obs = env.reset(episode_seed("push-v3", 0))
    assert set(obs.images) == {"corner", "behindGripper"}
    for frame in obs.images.values():
        assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8 and frame.std() > 5
    assert obs.proprio.dtype == np.float32 and obs.proprio.shape == (4,)
    np.testing.assert_allclose(obs.proprio, obs.state[:4], rtol=1e-6)
    assert obs.instruction == "push the puck to the green goal" and obs.task == "push-v3"
    assert obs.state.shape == (39,)
    before = obs.proprio.copy()
    obs, success, done = env.step(np.array([1.0, 0.0, 0.0, 0.0]))
    assert obs.proprio[0] > before[0] and not success and not done
    with pytest.raises(ValueError, match="4 finite numbers"):
        env.step(np.zeros(3))
    assert set(CAMERAS) >= {"corner", "corner2", "corner3", "topview", "behindGripper", "gripperPOV"}


def test_time_limit_ends_the_episode():
    env = make_env("reach-v3", [], 32, max_steps=3)
    env.reset(1)
    assert [env.step(np.zeros(4))[2] for _ in range(3)] == [False, False, True]


def test_one_scene_per_seed_in_any_order_and_process():
    env = make_env("reach-v3", ["corner"], 32)
    a, b = episode_seed("reach-v3", 0), episode_seed("reach-v3", 1)
    first = env.reset(a)
    rng = np.random.default_rng(0)
    for _ in range(80):  # move the arm far: its posture must not leak into the next episode
        env.step(rng.uniform(-1, 1, 4))
    other = env.reset(b)
    again = env.reset(a)
    np.testing.assert_array_equal(first.state, again.state)
    np.testing.assert_array_equal(first.images["corner"], again.images["corner"])
    assert not np.allclose(first.state[36:39], other.state[36:39])  # another goal
    # A fresh worker process (its own simulator and renderer) sees the same scenes.
    results = {job[1]: state for job, state, err in run_jobs(reset_state, [("reach-v3", a), ("reach-v3", b)], 1)}
    np.testing.assert_array_equal(results[a], first.state)
    np.testing.assert_array_equal(results[b], other.state)


def test_first_frame_shows_the_goal_where_it_is():
    """Reach moves its goal site after Meta-World's last forward pass: the reset frame must not lag."""
    env = make_env("reach-v3", ["corner"], 64)
    frames = []
    for index in (0, 1):
        obs = env.reset(episode_seed("reach-v3", index))
        after, _, _ = env.step(np.zeros(4))  # the goal does not move; the arm does the same in both scenes
        frames.append((obs.images["corner"].astype(int), after.images["corner"].astype(int)))
    (a0, a1), (b0, b1) = frames
    goals_at_reset = np.abs(a0 - b0).sum(-1) > 40  # where the two scenes differ: their goal spheres
    goals_after_a_step = np.abs(a1 - b1).sum(-1) > 40
    assert goals_after_a_step.any()
    overlap = (goals_at_reset & goals_after_a_step).sum() / (goals_at_reset | goals_after_a_step).sum()
    assert overlap > 0.8, f"the goal markers moved between the reset frame and the next (overlap {overlap:.2f})"
