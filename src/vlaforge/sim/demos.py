"""Demonstrations recorded by Meta-World's scripted experts (the record_demos stage).

Each episode of a task is reset with ``episode_seed(task, index, "train")`` (disjoint from the
evaluation seeds), and the expert acts with Gaussian action noise so that the data covers
recoveries. Frames of the configured cameras, proprioception (hand xyz, gripper), the applied
actions and the per-step success flag go to the raw episode format of
:mod:`vlaforge.robotics.episodes`; ``recording_report.json`` tells the per-task success of the
experts. Failed demonstrations are left out unless ``keep_failed``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from vlaforge import storage
from vlaforge.robotics.episodes import EpisodeWriter
from vlaforge.sim.baselines import ExpertPolicy
from vlaforge.sim.env import SimEnv, check_cameras, episode_seed, make_env, step_seed, task_spec
from vlaforge.sim.workers import run_jobs

log = logging.getLogger(__name__)

REPORT = "recording_report.json"


@dataclass
class DemoConfig:
    tasks: list[str] = field(default_factory=lambda: ["reach-v3"])
    episodes_per_task: int = 4
    task_episodes: dict[str, int] = field(default_factory=dict)  # per-task counts instead of episodes_per_task
    first_episode: int = 0  # index (and so seed) of every task's first episode; a fan-out slice starts later
    cameras: list[str] = field(default_factory=lambda: ["corner", "behindGripper"])
    image_size: int = 64
    action_noise: float = 0.1  # std of the Gaussian noise added to the executed expert actions
    labels: str = "executed"  # recorded actions: "executed" (with the noise) or "clean" (the expert's own; DART-style)
    fingertips: bool = False  # reach: the expert aims the fingertips (where success is measured), not the wrist
    steps_after_success: int = 5  # keep recording this many steps after the first success
    max_steps: int = 0  # time limit in control steps; 0: each task's own
    keep_failed: bool = False
    workers: int = 0  # recording processes; 0 records in this process

    def episodes(self, task: str) -> int:
        """How many episodes of ``task`` to record."""
        return self.task_episodes.get(task, self.episodes_per_task)

    def indices(self, task: str) -> range:
        """The episode indices of ``task`` to record."""
        return range(self.first_episode, self.first_episode + self.episodes(task))


@dataclass
class Demo:
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8
    proprio: np.ndarray  # (T, 4) float32
    action: np.ndarray  # (T, 4) float32, applied after observing step t
    success: np.ndarray  # (T,) bool: the task was achieved after action t

    @property
    def succeeded(self) -> bool:
        return bool(self.success.any())


def record_episode(env: SimEnv, expert: ExpertPolicy, seed: int, steps_after_success: int,
                   labeler: ExpertPolicy | None = None) -> Demo:
    """One expert episode in the scene of ``seed``; stops at the time limit or shortly after success.

    The arm executes ``expert``'s (noisy) actions, so the demonstrations visit states off the ideal
    path and show the way back. With a noise-free ``labeler`` the recorded action is its choice in
    each visited state (DART-style clean labels), so a policy learns the correction, not the noise.
    """
    obs = env.reset(seed)
    frames: dict[str, list] = {cam: [] for cam in env.cameras}
    proprio, actions, success = [], [], []
    first_success = None
    while True:
        action = expert.predict([[obs]], seed=step_seed(seed, env.steps))[0][0]
        for cam in env.cameras:
            frames[cam].append(obs.images[cam])
        proprio.append(obs.proprio)
        actions.append(action if labeler is None else labeler.predict([[obs]])[0][0])
        obs, ok, done = env.step(action)
        success.append(ok)
        if ok and first_success is None:
            first_success = env.steps
        if done or (first_success is not None and env.steps - first_success >= steps_after_success):
            break
    return Demo({cam: np.stack(f) for cam, f in frames.items()}, np.stack(proprio).astype(np.float32),
                np.stack(actions).astype(np.float32), np.array(success, dtype=bool))


def _check(cfg: DemoConfig) -> None:
    if not cfg.tasks:
        raise ValueError("demos.tasks is empty")
    for task in cfg.tasks:
        task_spec(task)
    check_cameras(cfg.cameras)
    if cfg.episodes_per_task < 1:
        raise ValueError(f"demos.episodes_per_task must be >= 1, got {cfg.episodes_per_task}")
    for task, n in cfg.task_episodes.items():
        if task not in cfg.tasks:
            raise ValueError(f"demos.task_episodes names '{task}', which is not in demos.tasks ({', '.join(cfg.tasks)})")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"demos.task_episodes.{task} must be an integer >= 1, got {n!r}")
    if cfg.first_episode < 0:
        raise ValueError(f"demos.first_episode must be >= 0, got {cfg.first_episode}")
    if cfg.labels not in ("clean", "executed"):
        raise ValueError(f"demos.labels must be 'clean' or 'executed', got {cfg.labels!r}")
    if cfg.steps_after_success < 0:
        raise ValueError(f"demos.steps_after_success must be >= 0, got {cfg.steps_after_success}")


@dataclass(frozen=True)
class _DemoJob:
    task: str
    index: int
    cfg: DemoConfig
    out_uri: str


def _record_job(job: _DemoJob) -> dict:
    """Record one episode and, when it is kept, write its file; returns its outcome and index line."""
    cfg = job.cfg
    env = make_env(job.task, cfg.cameras, cfg.image_size, cfg.max_steps or None)
    seed = episode_seed(job.task, job.index, "train")
    demo = record_episode(env, ExpertPolicy(noise=cfg.action_noise, fingertips=cfg.fingertips), seed,
                          cfg.steps_after_success,
                          labeler=ExpertPolicy(fingertips=cfg.fingertips) if cfg.labels == "clean" else None)
    line = None
    if demo.succeeded or cfg.keep_failed:
        line = EpisodeWriter(job.out_uri).write(f"{job.task}-{job.index:06d}", job.task, env.spec.instruction,
                                                demo.images, demo.proprio, demo.action, demo.success, seed=seed)
    return {"succeeded": demo.succeeded, "length": len(demo.action), "line": line}


def _task_report(outcomes: list[dict]) -> dict:
    succeeded = sum(o["succeeded"] for o in outcomes)
    return {"attempted": len(outcomes), "succeeded": succeeded, "kept": sum(o["line"] is not None for o in outcomes),
            "success_rate": succeeded / len(outcomes), "mean_length": float(np.mean([o["length"] for o in outcomes]))}


def record_demos(cfg: DemoConfig, out_uri: str) -> dict:
    """Record ``cfg.episodes(task)`` expert episodes of every task into ``out_uri``.

    Episodes run in ``cfg.workers`` processes (0: in this one); the result does not depend on it.
    Returns the recording report (also written to ``<out_uri>/recording_report.json``): per task
    attempted / succeeded / success_rate / kept / mean_length, plus totals.
    """
    _check(cfg)
    jobs = [_DemoJob(task, index, cfg, out_uri) for task in cfg.tasks for index in cfg.indices(task)]
    outcomes: dict[tuple[str, int], dict] = {}
    started = time.perf_counter()
    for job, outcome, error in tqdm(run_jobs(_record_job, jobs, cfg.workers), total=len(jobs),
                                    desc="record_demos", unit="episode"):
        if error is not None:
            raise RuntimeError(f"recording {job.task} episode {job.index} failed: {error}")
        outcomes[job.task, job.index] = outcome
    elapsed = time.perf_counter() - started
    steps = sum(o["length"] for o in outcomes.values())
    log.info("recorded %d steps in %.1f s (%.0f steps/s)", steps, elapsed, steps / max(elapsed, 1e-9))
    tasks = {task: _task_report([outcomes[task, i] for i in cfg.indices(task)]) for task in cfg.tasks}
    for task, t in tasks.items():
        log.info("%s: expert succeeded %d/%d, kept %d", task, t["succeeded"], t["attempted"], t["kept"])
    index = EpisodeWriter(out_uri)
    index.lines = [o["line"] for o in (outcomes[j.task, j.index] for j in jobs) if o["line"] is not None]
    if not index.lines:
        raise RuntimeError(f"no demonstration succeeded on {', '.join(cfg.tasks)}; nothing to keep "
                           "(lower demos.action_noise, or set demos.keep_failed=true)")
    index.close()
    return _write_report(tasks, cfg, out_uri)


def _write_report(tasks: dict[str, dict], cfg: DemoConfig, out_uri: str) -> dict:
    """The recording report of per-task counts, with totals, written to ``<out_uri>/recording_report.json``."""
    attempted = sum(t["attempted"] for t in tasks.values())
    succeeded = sum(t["succeeded"] for t in tasks.values())
    report = {"tasks": tasks, "attempted": attempted, "succeeded": succeeded, "success_rate": succeeded / attempted,
              "kept": sum(t["kept"] for t in tasks.values()), "config": asdict(cfg)}
    storage.write_text(storage.join(out_uri, REPORT), json.dumps(report, indent=2) + "\n")
    return report


def merge_reports(reports: list[dict], cfg: DemoConfig, out_uri: str) -> dict:
    """The recording reports of fan-out slices of ``cfg`` as the one report a single recording writes."""
    sums: dict[str, dict] = {task: {"attempted": 0, "succeeded": 0, "kept": 0, "steps": 0.0} for task in cfg.tasks}
    for report in reports:
        for task, t in report["tasks"].items():
            for key in ("attempted", "succeeded", "kept"):
                sums[task][key] += t[key]
            sums[task]["steps"] += t["mean_length"] * t["attempted"]
    tasks = {task: {"attempted": s["attempted"], "succeeded": s["succeeded"], "kept": s["kept"],
                    "success_rate": s["succeeded"] / s["attempted"], "mean_length": s["steps"] / s["attempted"]}
             for task, s in sums.items()}
    return _write_report(tasks, cfg, out_uri)


def report_metrics(report: dict) -> dict[str, float]:
    """A recording report as flat metrics: totals and per-task expert success rates."""
    out = {key: report[key] for key in ("attempted", "succeeded", "success_rate", "kept")}
    for task, stats in report["tasks"].items():
        out[f"{task}/success_rate"] = stats["success_rate"]
        out[f"{task}/kept"] = stats["kept"]
    return out
