"""Policy-server throughput: steps/s with 1 vs N concurrent clients, batched vs unbatched.

Clients are separate processes (like LBM Eval's simulators) stepping over TCP as fast as the server
answers. Two policies: ``forward`` sleeps ``--forward-ms`` per predict call whatever the batch size
(a GPU forward pass: batching is what makes more clients cheaper) and ``baseline:random`` (pure
server overhead: decoding, mapping, gRPC). Every predict re-plans (``execute_steps`` 1) unless
``--execute-steps`` says otherwise. Ratios are against the 1-client run of the same policy, and
against ``max_batch=1`` (no batching) at the largest client count, all measured in this run.

    .venv/bin/python bench/policy_server.py [--clients 1 4] [--steps 150] [--lbm-cameras]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np

from vlaforge.serve.mapping import MappingConfig
from vlaforge.serve.server import ServeConfig, serve_policy


class ForwardPolicy:
    """Zero actions after a fixed-cost forward pass (``forward_ms``), any batch size."""

    name = "forward"
    n_obs_steps = 2

    def __init__(self, forward_ms: float, execute_steps: int):
        self.forward_s, self.execute_steps = forward_ms / 1000, execute_steps

    def predict(self, histories, seed=None):
        time.sleep(self.forward_s)
        return [np.zeros((max(8, self.execute_steps), 4), np.float32) for _ in histories]


def _client(target: str, index: int, steps: int, lbm_cameras: bool, barrier, results) -> None:
    import grpc

    from vlaforge.serve.protos import lbm_policy_interface_pb2 as pb
    from vlaforge.serve.protos import lbm_policy_interface_pb2_grpc as pb_grpc
    from vlaforge.serve.mapping import GRPC_OPTIONS

    h, w, n = (480, 640, 6) if lbm_cameras else (64, 64, 2)
    frame = np.random.default_rng(index).integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes()
    image = pb.Image(height=h, width=w, channels=3, data=frame)
    rot = np.eye(3).ravel().tolist()
    obs = pb.MultiarmObservation(
        robot=pb.PosesAndGrippersActualAndDesired(version=20241212, actual=pb.PosesAndGrippers(
            pose_status=[pb.RobotPoseStatus(robot_name=arm, pose=pb.RigidTransform(translation=[0, 0.6, 0.2],
                                                                                   rotation=rot))
                         for arm in ("right::panda", "left::panda")],
            gripper_status=[pb.RobotGripperStatus(gripper_name=g, gripper_position=0.04)
                            for g in ("right::panda_hand", "left::panda_hand")])),
        visuo=[pb.CameraImageSet(camera_serial=f"cam{i}", has_rgb=True, camera_rgb=pb.CameraImage(image=image))
               for i in range(n)],
        use_language_instruction=True, language_instruction="reach the goal")
    client_id = f"bench-{index}"
    with grpc.insecure_channel(target, options=GRPC_OPTIONS) as channel:
        step = pb_grpc.PolicyStepServiceStub(channel).PolicyStep
        pb_grpc.PolicyResetServiceStub(channel).PolicyReset(pb.PolicyResetRequest(client_identifier=client_id, seed=1))
        request = pb.PolicyStepRequest(client_identifier=client_id, observation=obs)
        for _ in range(5):  # warm up the connection
            step(request)
        barrier.wait()
        latencies = []
        start = time.perf_counter()
        for _ in range(steps):
            t = time.perf_counter()
            step(request)
            latencies.append(time.perf_counter() - t)
        results.put((time.perf_counter() - start, latencies))


def measure(policy, clients: int, steps: int, max_batch: int, lbm_cameras: bool, image_size: int | None) -> dict:
    if image_size:
        policy.image_size = image_size
    config = ServeConfig(max_batch=max_batch, batch_window_ms=5.0, mapping=MappingConfig(resize=True))
    server = serve_policy(policy, port=0, host="127.0.0.1", config=config)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(clients), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(f"127.0.0.1:{server.port}", i, steps, lbm_cameras, barrier, results))
             for i in range(clients)]
    try:
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
    finally:
        server.stop(None).wait()
    wall = max(elapsed for elapsed, _ in outcomes)
    latencies = np.concatenate([lat for _, lat in outcomes])
    batcher = server.service.batcher
    return {"steps_per_s": clients * steps / wall, "p50_ms": 1000 * float(np.median(latencies)),
            "mean_batch": batcher.items / max(1, batcher.calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=150, help="timed steps per client")
    parser.add_argument("--forward-ms", type=float, default=20.0)
    parser.add_argument("--execute-steps", type=int, default=1)
    parser.add_argument("--lbm-cameras", action="store_true", help="six 640x480 cameras per step (LBM Eval)")
    args = parser.parse_args()
    from vlaforge.policy.specs import load_policy

    most = max(args.clients)
    size = 64 if args.lbm_cameras else None  # the LBM frames are resized to what a small policy takes
    print(f"policy server: {args.steps} steps/client, {'6x640x480' if args.lbm_cameras else '2x64x64'} cameras, "
          f"execute_steps {args.execute_steps}")
    print(f"{'policy':<16}{'clients':>8}{'max_batch':>10}{'steps/s':>10}{'p50 ms':>9}{'batch':>7}{'vs 1 client':>13}")
    for label, make in [(f"forward {args.forward_ms:g}ms", lambda: ForwardPolicy(args.forward_ms, args.execute_steps)),
                        ("baseline:random", lambda: load_policy("baseline:random"))]:
        runs = [(n, 8, measure(make(), n, args.steps, 8, args.lbm_cameras, size)) for n in args.clients]
        runs.append((most, 1, measure(make(), most, args.steps, 1, args.lbm_cameras, size)))
        single = runs[0][2]["steps_per_s"]
        for n, max_batch, r in runs:
            print(f"{label:<16}{n:>8}{max_batch:>10}{r['steps_per_s']:>10.1f}{r['p50_ms']:>9.2f}"
                  f"{r['mean_batch']:>7.2f}{r['steps_per_s'] / single:>12.2f}x")
        batched, unbatched = runs[-2][2]["steps_per_s"], runs[-1][2]["steps_per_s"]
        print(f"{label:<16} batching at {most} clients: {batched / unbatched:.2f}x the steps/s of max_batch=1")


if __name__ == "__main__":
    main()
