"""Closed-loop evaluation throughput: episodes per minute with 1 and 2 worker processes.

Evaluates the scripted expert on the same episodes once per worker count, in fresh output folders,
and prints episodes/min and the speed-up against 1 worker measured in the same run. Two settings:
``rendered`` renders the observation cameras every step as for a vision policy (2 cameras at
64x64 by default), ``state-only`` is the baselines' own setting (no rendering). Times include
starting the worker processes. On a shared machine the figures move with its load: the load
average is printed beside them.

    .venv/bin/python bench/sim_eval.py [--tasks reach-v3 push-v3] [--episodes 8] [--workers 1 2]

Worker start-up (spawning, importing MuJoCo and Meta-World, loading the policy: seconds on a busy
machine) is part of every figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from vlaforge.sim.evaluate import EvalConfig, evaluate


def measure(tasks: list[str], episodes: int, workers: int, render: bool, image_size: int) -> float:
    """Episodes per minute of one evaluation of the expert."""
    cfg = EvalConfig(tasks=tasks, episodes=f"0:{episodes}", cameras=["corner", "behindGripper"],
                     image_size=image_size, workers=workers, always_render=render)
    with tempfile.TemporaryDirectory(prefix="bench-sim-eval-") as out:
        start = time.perf_counter()
        report = evaluate("baseline:expert", cfg, out)
        elapsed = time.perf_counter() - start
    done = sum(t["episodes"] for t in report["tasks"].values())
    assert done == episodes * len(tasks), report
    return 60 * done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["reach-v3", "push-v3"])
    parser.add_argument("--episodes", type=int, default=8, help="episodes per task, rendered")
    parser.add_argument("--state-only-episodes", type=int, default=32,
                        help="episodes per task, state-only (short episodes: more of them, so that starting "
                             "the workers does not dominate)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"sim_eval throughput: expert on {', '.join(args.tasks)}, {os.cpu_count()} CPUs, "
          f"{args.image_size}x{args.image_size} corner + behindGripper when rendered")
    print(f"{'setting':<12} {'episodes':>8} {'workers':>7} {'episodes/min':>13} {'vs 1st':>7} {'load avg':>9}")
    for render, episodes in ((True, args.episodes), (False, args.state_only_episodes)):
        base = None
        for workers in args.workers:
            rate = measure(args.tasks, episodes, workers, render, args.image_size)
            base = base or rate
            print(f"{'rendered' if render else 'state-only':<12} {episodes * len(args.tasks):>8} {workers:>7} "
                  f"{rate:>13.1f} {rate / base:>6.2f}x {os.getloadavg()[0]:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
