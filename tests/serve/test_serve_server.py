"""The policy server over real gRPC, driven by a client built from the protocol's field list."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import yaml

from vlaforge.serve.mapping import MappingConfig
from vlaforge.serve.server import ServeConfig, serve_policy

SCALE = 0.01
CAMERA_MAP = {"scene_right_0": "front"}


@pytest.fixture
def serve():
    servers = []

    def start(policy, **config):
        mapping = MappingConfig(camera_map=CAMERA_MAP, action_scale=SCALE, resize=config.pop("resize", True))
        server = serve_policy(policy, port=0, host="127.0.0.1", config=ServeConfig(mapping=mapping, **config),
                              checkpoint_path="file:///bundles/scripted")
        servers.append(server)
        return server, f"127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop(None).wait()


def _check_well_formed(reply):
    assert reply.success
    action = reply.action
    assert [p.robot_name for p in action.pose_status] == ["right::panda", "left::panda"]
    assert [g.gripper_name for g in action.gripper_status] == ["right::panda_hand", "left::panda_hand"]
    for pose in action.pose_status:
        assert len(pose.pose.translation) == 3 and np.all(np.isfinite(pose.pose.translation))
        rot = np.asarray(pose.pose.rotation).reshape(3, 3)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(rot) == pytest.approx(1.0)
    assert all(np.isfinite(g.gripper_position) for g in action.gripper_status)


def _moves(reply, xyz=(0.0, 0.6, 0.2)) -> np.ndarray:
    """The right arm's commanded move in action units."""
    return (np.asarray(reply.action.pose_status[0].pose.translation) - xyz) / SCALE


def test_health_and_metadata(serve, scripted, wire):
    _, target = serve(scripted())
    client = wire.client(target)
    assert client.health() == 1  # SERVING
    reply = client.metadata()
    assert reply.success
    meta = reply.policy_metadata
    assert meta.name == "scripted" and meta.checkpoint_path == "file:///bundles/scripted"
    assert meta.is_language_conditioned
    config = yaml.safe_load(meta.raw_policy_config)
    assert config["cameras"] == ["front"] and config["image_size"] == 16 and config["config"]["chunk_len"] == 5
    assert config["serve"]["mapping"]["camera_map"] == CAMERA_MAP
    assert {"vlaforge_version", "grpcio", "protobuf", "hostname", "max_batch"} <= set(meta.runtime_information)


def test_two_concurrent_clients_keep_their_own_state(serve, scripted, wire, frame):
    policy = scripted(n_obs_steps=2, execute_steps=3)
    server, target = serve(policy)
    client = wire.client(target)
    steps = 7

    def episode(client_id: str, instruction: str):
        assert client.reset(client_id, seed=11).success
        replies = [client.step(client_id, wire.observation({"scene_right_0": frame}, instruction=instruction))
                   for _ in range(steps)]
        return client_id, instruction, replies

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda a: episode(*a), [("uuid-a", "go left"), ("uuid-b", "go right and close")]))
    for client_id, instruction, replies in results:
        for reply in replies:
            _check_well_formed(reply)
        moves = np.array([_moves(r) for r in replies])
        np.testing.assert_allclose(moves[:, 0], -0.5 if "left" in instruction else 0.5, atol=1e-9)
        # each client runs its own chunks: rows 0, 1, 2 of each, re-planned every 3 steps
        np.testing.assert_allclose(moves[:, 2], [0, 0.1, 0.2, 0, 0.1, 0.2, 0], atol=1e-9)
        widths = {r.action.gripper_status[0].gripper_position for r in replies}
        assert widths == ({0.0} if "close" in instruction else {0.08})
    assert set(server.service.clients) == {"uuid-a", "uuid-b"}
    assert sum(size for size, _, _ in policy.calls) == 2 * 3  # three chunks per client
    for size, seed, histories in policy.calls:
        assert seed is not None and all(len(h) == 2 for h in histories)
    # reset clears the chunk being executed
    client.step("uuid-a", wire.observation({"scene_right_0": frame}, instruction="go left"))
    assert client.reset("uuid-a").success
    reply = client.step("uuid-a", wire.observation({"scene_right_0": frame}, instruction="go left"))
    assert _moves(reply)[2] == pytest.approx(0.0)
    assert policy.calls[-1][1] is None  # seed 0 means no seed
    first, second = policy.calls[-1][2][0]
    assert first is second  # a fresh history repeats the first observation


def test_concurrent_clients_share_forward_passes(serve, scripted, wire, frame):
    policy = scripted(execute_steps=1, delay_s=0.05)
    _, target = serve(policy, max_batch=3, batch_window_ms=20)
    client = wire.client(target)
    start = threading.Barrier(4)

    def run(i):
        client.reset(f"c{i}", seed=i + 1)
        start.wait()
        return [client.step(f"c{i}", wire.observation({"scene_right_0": frame})).success for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        assert all(all(r) for r in pool.map(run, range(4)))
    sizes = [size for size, _, _ in policy.calls]
    assert sum(sizes) == 20 and max(sizes) <= 3
    assert max(sizes) >= 2 and len(sizes) < 20


def test_malformed_observation_is_rejected_and_others_keep_going(serve, scripted, wire, frame):
    _, target = serve(scripted())
    client = wire.client(target)
    good = wire.observation({"scene_right_0": frame})
    bad = wire.observation({"scene_right_0": frame[:15]})  # declares 15 rows...
    bad.visuo[0].camera_rgb.image.height = 16  # ...but claims 16
    client.reset("good", 1)
    client.reset("bad", 2)
    assert client.step("good", good).success
    with pytest.raises(grpc.RpcError) as err:
        client.step("bad", bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("observation.visuo[0].camera_rgb.image.data: 720 bytes, but "
                                          "height*width*channels = 16*16*3 = 768")
    assert client.step("good", good).success
    assert client.step("bad", good).success  # the bad client recovers with a good observation
    with pytest.raises(grpc.RpcError) as err:
        client.step("", good)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "client_identifier" in err.value.details()


def test_wrong_image_size_without_resize(serve, scripted, wire, frame):
    _, target = serve(scripted(), resize=False)
    client = wire.client(target)
    big = np.zeros((24, 32, 3), np.uint8)
    with pytest.raises(grpc.RpcError) as err:
        client.step("x", wire.observation({"scene_right_0": big}))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "observation.visuo[0].camera_rgb.image: image is 24x32, the policy expects 16x16"
    assert client.step("x", wire.observation({"scene_right_0": frame})).success


def test_policy_failure_is_internal_and_the_server_goes_on(serve, scripted, wire, frame):
    _, target = serve(scripted())
    client = wire.client(target)
    with pytest.raises(grpc.RpcError) as err:
        client.step("x", wire.observation({"scene_right_0": frame}, instruction="fail"))
    assert err.value.code() == grpc.StatusCode.INTERNAL and "scripted failure" in err.value.details()
    assert client.step("x", wire.observation({"scene_right_0": frame})).success


def test_full_size_six_camera_request(serve, scripted, wire):
    """Six 640x480 cameras (over gRPC's default 4 MiB limit) are accepted and resized."""
    _, target = serve(scripted())
    rng = np.random.default_rng(1)
    serials = ["scene_right_0", "scene_left_0", "wrist_left_minus", "wrist_left_plus", "wrist_right_minus",
               "wrist_right_plus"]
    obs = wire.observation({s: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for s in serials})
    assert obs.ByteSize() > 5 * 2**20
    _check_well_formed(wire.client(target).step("big", obs))


def test_stop_reports_not_serving(scripted, wire):
    server = serve_policy(scripted(), port=0, host="127.0.0.1", config=ServeConfig())
    client = wire.client(f"127.0.0.1:{server.port}")
    assert client.health() == 1
    server.stop(None).wait()
    with pytest.raises(grpc.RpcError):
        client.health()


def test_port_in_use_is_an_error(serve, scripted):
    server, _ = serve(scripted())
    with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        serve_policy(scripted(), port=server.port, host="127.0.0.1")
