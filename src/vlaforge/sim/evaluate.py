"""Closed-loop evaluation of a policy in the embedded simulator (the sim_eval stage).

For each task and each episode index in ``start:end`` the scene is reset with
``episode_seed(task, index, split)`` (``split``: ``eval``, the development scenes, or ``test``, the
sealed scenes of a preset's headline figures; each episode record names it), so every policy meets
the same scenes, and the policy runs
with its action chunking (:func:`vlaforge.policy.step_policy`) until success or the task's time
limit. Episodes run in worker processes; results go to the rollout layout of
:mod:`vlaforge.sim.rollouts` after every episode, so a killed evaluation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from vlaforge import storage
from vlaforge.policy.interface import ControlState, Policy, step_policy
from vlaforge.policy.specs import load_policy
from vlaforge.sim.env import check_cameras, episode_seed, make_env, step_seed, task_spec
from vlaforge.sim.rollouts import load_task_results, parse_range, plan_task, summarize, task_dirname
from vlaforge.sim.video import FORMATS, html_gallery, write_video
from vlaforge.sim.workers import run_jobs

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=lambda: ["reach-v3"])
    episodes: str = "0:4"  # episode indices start:end (end exclusive)
    split: str = "eval"  # scene seeds: eval (development scenes) or test (sealed, for headline figures)
    swap_instructions: bool = False  # each task's episodes get the next task's instruction (the language ablation)
    max_sample_size_per_model: int = 200  # the episode budget per (model, task)
    cameras: list[str] = field(default_factory=lambda: ["corner", "behindGripper"])  # if the policy names none
    image_size: int = 64  # if the policy names none
    max_steps: int = 0  # time limit in control steps; 0: each task's own
    workers: int = 1  # episode worker processes; 0 runs in this process
    videos_per_task: int = 0  # record the first N episodes of the range of each task
    video_format: str = "gif"  # gif or mp4
    video_camera: str = "corner"
    video_fps: int = 20
    always_render: bool = False  # render cameras even for policies that read only the state (benchmarks)
    simulator: str = "embedded"  # embedded, or external: serve the policy for LBM Eval and collect its results
    external_results_uri: str = ""  # external: where the external simulator writes its rollouts
    policy_port: int = 50051  # external: the policy server's port
    external_timeout_s: float = 86400.0  # external: how long to wait for every episode's result


@dataclass(frozen=True)
class EpisodeJob:
    task: str
    index: int
    cameras: tuple[str, ...]
    image_size: int
    max_steps: int
    split: str = "eval"
    instruction: str = ""  # replaces the task's own instruction when set
    video_uri: str = ""  # where to write this episode's video ("" for none)
    video_format: str = "gif"
    video_camera: str = "corner"
    video_fps: int = 20


_WORKER: dict = {}


def _load_worker_policy(policy_spec: str) -> None:
    """Worker setup: load the policy once per process (kept when the parent already loaded it)."""
    if _WORKER.get("spec") != policy_spec:
        _WORKER.update(spec=policy_spec, policy=load_policy(policy_spec))


def run_episode(policy: Policy, job: EpisodeJob) -> dict:
    """Run one episode; returns its results.json entry (videos are written as a side effect)."""
    env = make_env(job.task, job.cameras, job.image_size, job.max_steps or None)
    seed = episode_seed(job.task, job.index, job.split)
    obs = _instructed(env.reset(seed), job)
    control = ControlState(policy.n_obs_steps, policy.execute_steps)
    frames = []
    success = False
    while True:
        if job.video_uri:
            frames.append(env.render(job.video_camera))
        action = step_policy(policy, control, obs, seed=step_seed(seed, env.steps))
        obs, success, done = env.step(action)
        obs = _instructed(obs, job)
        if success or done:
            break
    if job.video_uri:
        frames.append(env.render(job.video_camera))
        write_video(job.video_uri, frames, job.video_format, job.video_fps)
    return {"skill_type": task_dirname(job.task), "scenario_index": job.index, "is_success": success,
            "is_pending": False, "total_time": round(env.steps * env.dt, 4), "failure_message": None,
            "num_steps": env.steps, "seed": seed, "split": job.split}


def _instructed(obs, job: EpisodeJob):
    return dataclasses.replace(obs, instruction=job.instruction) if job.instruction else obs


def _episode_in_worker(job: EpisodeJob) -> dict:
    return run_episode(_WORKER["policy"], job)


def _crashed(job: EpisodeJob, message: str) -> dict:
    return {"skill_type": task_dirname(job.task), "scenario_index": job.index, "is_success": None,
            "is_pending": False, "total_time": 0.0, "failure_message": message,
            "seed": episode_seed(job.task, job.index, job.split), "split": job.split}


def _check(cfg: EvalConfig) -> tuple[int, int]:
    for task in cfg.tasks:
        task_spec(task)
    if not cfg.tasks:
        raise ValueError("sim_eval.tasks is empty")
    if cfg.split not in ("eval", "test"):
        raise ValueError(f"sim_eval.split must be 'eval' or 'test', got '{cfg.split}'")
    if cfg.swap_instructions and len(set(cfg.tasks)) < 2:
        raise ValueError("sim_eval.swap_instructions needs at least two sim_eval.tasks (whose instructions swap)")
    check_cameras(cfg.cameras)
    check_cameras([cfg.video_camera])
    if cfg.video_format not in FORMATS:
        raise ValueError(f"sim_eval.video_format '{cfg.video_format}' unknown; known: {', '.join(FORMATS)}")
    if cfg.max_sample_size_per_model < 1:
        raise ValueError(f"sim_eval.max_sample_size_per_model must be >= 1, got {cfg.max_sample_size_per_model}")
    return parse_range(cfg.episodes)


def swapped_instructions(tasks: list[str]) -> dict[str, str]:
    """Each task's instruction replaced by the next task's (cyclic): what the policy reads in the language ablation."""
    return {task: task_spec(tasks[(i + 1) % len(tasks)]).instruction for i, task in enumerate(tasks)}


def _check_split(run, split: str) -> None:
    """Results of one (model, task) come from one split (records before splits existed are ``eval``)."""
    other = {r.get("split", "eval") for r in run.records.values() if not r.get("is_pending")} - {split}
    if other:
        raise ValueError(f"{run.uri} holds {', '.join(sorted(other))}-split episodes; this evaluation uses the "
                         f"{split} split: write it to another output folder or model name")


def _policy_inputs(policy: Policy, cfg: EvalConfig) -> tuple[tuple[str, ...], int]:
    """Cameras and image size to render: the policy's own (a trained bundle names the ones it was
    trained with), else the config's; none for a policy that declares ``uses_images = False``
    (unless ``always_render``)."""
    if not getattr(policy, "uses_images", True) and not cfg.always_render:
        return (), cfg.image_size
    cameras = tuple(check_cameras(getattr(policy, "cameras", None) or cfg.cameras))
    return cameras, int(getattr(policy, "image_size", None) or cfg.image_size)


def evaluate(policy_spec: str, cfg: EvalConfig, out_uri: str, model_name: str | None = None) -> dict:
    """Evaluate ``policy_spec`` (``baseline:<name>`` or a policy bundle URI) on ``cfg.tasks``.

    Writes ``<out_uri>/<model_name>/<Task>/rollouts/<timestamp>/results.json`` and returns, per
    task, the success rate over every finished episode of that (model, task) in ``out_uri``.
    """
    start, end = _check(cfg)
    policy = load_policy(policy_spec)  # fails here, before anything is written, if it cannot load
    _WORKER.update(spec=policy_spec, policy=policy)  # workers=0 runs episodes in this process
    model = model_name or policy.name
    cameras, image_size = _policy_inputs(policy, cfg)
    runs = {task: plan_task(out_uri, model, task, start, end, cfg.max_sample_size_per_model)
            for task in cfg.tasks}
    for task in cfg.tasks:
        for existing in load_task_results(out_uri, model, task):
            _check_split(existing, cfg.split)
    instructions = swapped_instructions(cfg.tasks) if cfg.swap_instructions else {}
    jobs = []
    for task, run in runs.items():
        run.save()
        video_dir = storage.join(run.folder, "videos")
        for index in run.pending():
            video = index < start + cfg.videos_per_task
            uri = storage.join(video_dir, f"episode_{index:06d}.{cfg.video_format}") if video else ""
            jobs.append(EpisodeJob(task, index, cameras, image_size, cfg.max_steps, cfg.split,
                                   instructions.get(task, ""), uri, cfg.video_format, cfg.video_camera, cfg.video_fps))
    log.info("evaluating %s as '%s': %d episodes to run (%s, %s split %s%s), %d worker(s)", policy_spec, model,
             len(jobs), ", ".join(cfg.tasks), cfg.split, cfg.episodes,
             ", swapped instructions" if instructions else "", cfg.workers)
    started = time.perf_counter()
    results = run_jobs(_episode_in_worker, jobs, cfg.workers, _load_worker_policy, (policy_spec,))
    for job, record, error in tqdm(results, total=len(jobs), desc=f"sim_eval {model}", unit="episode"):
        if error is not None:
            log.warning("%s episode %d crashed: %s", job.task, job.index, error)
            record = _crashed(job, error)
        runs[job.task].update(record)
    elapsed = time.perf_counter() - started
    if jobs:
        log.info("%d episodes in %.1f s (%.1f episodes/min)", len(jobs), elapsed, 60 * len(jobs) / elapsed)
    return report(out_uri, model, cfg.tasks, cfg.split)


def report(out_uri: str, model: str, tasks: list[str], split: str = "eval") -> dict:
    """Per-task counts and success rates over all results of ``model`` in ``out_uri`` (scenes of ``split``)."""
    per_task = {task: summarize(load_task_results(out_uri, model, task)) for task in tasks}
    finished = [s for s in per_task.values() if s["episodes"]]
    mean = sum(s["success_rate"] for s in finished) / len(finished) if finished else float("nan")
    return {"model": model, "split": split, "success_rate": mean, "tasks": per_task}


def flat_metrics(rep: dict) -> dict[str, float]:
    """A report as flat ``name: number`` metrics (for KFP)."""
    out = {"success_rate": rep["success_rate"]}
    for task, summary in rep["tasks"].items():
        for key in ("success_rate", "episodes", "crashed"):
            out[f"{task}/{key}"] = summary[key]
    return out


def video_page(out_uri: str, title: str) -> str:
    """An HTML page embedding every episode video found under ``out_uri``."""
    fs, root = storage.filesystem(out_uri)
    videos = []
    for fmt in FORMATS:
        for path in sorted(fs.glob(f"{root.rstrip('/')}/*/*/rollouts/*/videos/*.{fmt}")):
            parts = path.split("/")
            caption = f"{parts[-6]} {parts[-5]} {parts[-1].rsplit('.', 1)[0]}"
            videos.append((caption, fmt, fs.cat_file(path)))
    return html_gallery(title, videos)


def evaluate_external(policy_spec: str, cfg: EvalConfig, preset: str, out_uri: str, model_name: str | None) -> dict:
    """Serve the policy to an external simulator (LBM Eval) and collect what it writes."""
    from vlaforge.serve.server import load_serve_config
    from vlaforge.sim.external import serve_and_collect

    if not cfg.external_results_uri or not model_name:
        raise ValueError("sim_eval.simulator=external needs sim_eval.external_results_uri (where the external "
                         "simulator writes its rollouts) and a model name (the folder it writes them under)")
    serve_and_collect(policy_spec, cfg.tasks, cfg.episodes, cfg.external_results_uri, out_uri, model_name,
                      cfg.policy_port, load_serve_config(preset), cfg.external_timeout_s)
    return report(out_uri, model_name, cfg.tasks)
