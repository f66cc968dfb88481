"""PolicyClient: a served policy used through the Policy protocol, as the embedded simulator does."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from vlaforge.policy import ControlState, Observation, step_policy
from vlaforge.serve.client import PolicyClient, PolicyServerError
from vlaforge.serve.mapping import MappingConfig
from vlaforge.serve.server import ServeConfig, serve_policy

CAMERA_MAP = {"scene_right_0": "front"}


@pytest.fixture
def served(scripted):
    policy = scripted(n_obs_steps=2, execute_steps=3)
    mapping = MappingConfig(camera_map=CAMERA_MAP)
    server = serve_policy(policy, port=0, host="127.0.0.1", config=ServeConfig(mapping=mapping, batch_window_ms=1))
    client = PolicyClient(f"127.0.0.1:{server.port}", mapping=mapping)
    yield policy, server, client
    client.close()
    server.stop(None).wait()


def _obs(frame, x: float, instruction: str = "go left") -> Observation:
    return Observation(images={"front": frame}, proprio=np.array([x, 0.6, 0.2, 1.0], np.float32),
                       instruction=instruction)


def test_evaluator_loop_through_the_server(served, frame):
    policy, server, client = served
    assert client.name == "remote:scripted" and client.metadata.checkpoint_path == ""
    zs = []
    for episode, steps in enumerate([4, 4]):  # episode 1 ends mid-chunk
        control = ControlState(client.n_obs_steps, client.execute_steps)
        for t in range(steps):
            action = step_policy(client, control, _obs(frame, 0.01 * t), seed=100 * episode + t)
            np.testing.assert_allclose(action[[0, 1, 3]], [-0.5, 0.0, -1.0], atol=1e-4)
            zs.append(action[2])
    # the server re-plans every 3 steps and starts afresh at each episode (PolicyReset)
    np.testing.assert_allclose(zs, [0, 0.1, 0.2, 0, 0, 0.1, 0.2, 0], atol=1e-4)
    assert server.service.clients == [client.client_id(0)]
    seeds = [seed for _, seed, _ in policy.calls]
    assert seeds[0] is None and None not in seeds[2:]  # reset seeds 0 (= none) and 100


def test_batch_of_episodes_uses_one_client_id_each(served, frame):
    policy, server, client = served
    first = [_obs(frame, 0.0, "go left"), _obs(frame, 0.0, "go right")]
    chunks = client.predict([[o, o] for o in first], seed=5)
    assert [c.shape for c in chunks] == [(1, 4), (1, 4)]
    assert [round(float(c[0, 0]), 3) for c in chunks] == [-0.5, 0.5]
    assert sorted(server.service.clients) == [client.client_id(0), client.client_id(1)]


def test_server_errors_reach_the_caller(served, frame):
    _, _, client = served
    with pytest.raises(PolicyServerError, match="INTERNAL: policy 'scripted' failed: .*scripted failure") as err:
        client.predict([[_obs(frame, 0.0, "fail")]])
    assert err.value.code.name == "INTERNAL"
    odd_size = _obs(frame[:8].copy(), 0.0)
    assert client.predict([[odd_size]])[0].shape == (1, 4)  # resized on the server; the client goes on


def test_unreachable_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PolicyServerError, match=f"127.0.0.1:{port} not SERVING"):
        PolicyClient(f"127.0.0.1:{port}", wait_s=0.3)


def test_serves_a_baseline_by_spec(frame):
    server = serve_policy("baseline:random", port=0, host="127.0.0.1")
    try:
        with PolicyClient(f"127.0.0.1:{server.port}") as client:
            assert client.metadata.checkpoint_path == "baseline:random"
            assert not client.metadata.is_language_conditioned
            obs = Observation(images={"corner": frame}, proprio=np.array([0, 0.6, 0.2, 1], np.float32),
                              instruction="reach")
            later = Observation(images=obs.images, proprio=obs.proprio, instruction="reach")
            first = client.predict([[obs, obs]], seed=3)[0]  # an episode start: reset with seed 3
            second = client.predict([[obs, later]], seed=4)[0]  # same episode, next chunk
            again = client.predict([[obs, obs]], seed=3)[0]  # a new episode with seed 3
        assert first.shape == (1, 4) and np.all(np.abs(np.concatenate([first, second])) <= 1 + 1e-4)
        assert not np.allclose(first, second)  # random, not a constant
        np.testing.assert_allclose(again, first, atol=1e-6)  # the same seed gives the same actions
    finally:
        server.stop(None).wait()


class _Reacher:
    """Moves toward a fixed point in open-loop chunks of 3 (plans from the chunk's first observation)."""

    name, n_obs_steps, execute_steps = "reacher", 1, 3
    goal = np.array([0.05, 0.7, 0.25])

    def predict(self, histories, seed=None):
        out = []
        for history in histories:
            step = np.clip((self.goal - history[-1].proprio[:3]) * 40, -1, 1)
            out.append(np.array([[*(step * (1 - 0.2 * j)), 1.0 - j] for j in range(4)], dtype=np.float32))
        return out


def _trajectory(env, policy, seeds, steps) -> np.ndarray:
    proprios = []
    for seed in seeds:
        obs = env.reset(seed)
        control = ControlState(policy.n_obs_steps, policy.execute_steps)
        for _ in range(steps):
            obs, _, _ = env.step(step_policy(policy, control, obs, seed=seed))
            proprios.append(obs.proprio[:3])
    return np.array(proprios)


def test_metaworld_episodes_match_local_and_remote():
    make_env = pytest.importorskip("vlaforge.sim.env").make_env
    env = make_env("reach-v3", ("corner",), 32, max_steps=20)
    local = _trajectory(env, _Reacher(), seeds=[1, 2], steps=5)
    server = serve_policy(_Reacher(), port=0, host="127.0.0.1")
    try:
        with PolicyClient(f"127.0.0.1:{server.port}") as client:
            remote = _trajectory(env, client, seeds=[1, 2], steps=5)
    finally:
        server.stop(None).wait()
    assert np.abs(np.diff(local, axis=0)).max() > 1e-3  # the arm moves
    np.testing.assert_allclose(remote, local, atol=1e-4)
