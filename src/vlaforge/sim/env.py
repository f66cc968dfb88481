"""Meta-World tasks as vlaforge environments: task registry, per-episode seeds, fast CPU rendering.

``make_env(task, cameras, image_size)`` gives a :class:`SimEnv` whose ``reset(seed)`` draws the
scene (object and goal positions) from ``seed`` alone and whose observations are
:class:`vlaforge.policy.Observation` objects: camera frames right side up, proprioception (hand
xyz and gripper opening) and the instruction; ``state`` carries the full flat Meta-World
observation for privileged baselines only.

Rendering follows the measured recipe of docs/reference/environment.md: one ``mujoco.Renderer``
per simulator with anti-aliasing, shadows, reflections, skybox, fog and haze off (~6 ms a 64x64
frame). With OSMesa a new renderer returns garbage once an earlier one has been garbage-collected
in the same process, so simulators are cached per process and never freed: every ``make_env`` for
the same (task, image size) in one process shares one simulator.
"""

from __future__ import annotations

import atexit
import os
import zlib
from dataclasses import dataclass

import mujoco  # safe: the package's __init__ (run first) has chosen the OSMesa backend
import numpy as np

from vlaforge.policy.interface import Observation

CAMERAS = ("corner", "corner2", "corner3", "topview", "behindGripper", "gripperPOV")
SPLITS = ("train", "eval", "caption", "test")  # test: sealed scenes for a preset's headline figures
_INTERLEAVED = 3  # train / eval / caption share one seed space (split = seed mod 3); test lies above it
MAX_INDEX = 1 << 24
_TASK_BITS = 20  # task-name hash bits in a seed: seeds stay below 2**46, exact in any JSON reader


@dataclass(frozen=True)
class TaskSpec:
    """One task: its instruction, time limit (control steps) and how captions name its things."""

    name: str
    instruction: str
    max_steps: int
    object: str = ""  # caption phrase for the object at obs[4:7]; "" when the task has none
    goal: str = ""  # caption phrase for the visible goal marker at obs[36:39]; "" when none


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("reach-v3", "reach the red goal", 150, goal="red goal sphere"),
    TaskSpec("push-v3", "push the puck to the green goal", 200, "red puck", "green goal dot"),
    TaskSpec("pick-place-v3", "pick up the puck and place it at the blue goal", 200, "red puck",
             "blue goal dot"),
    TaskSpec("drawer-open-v3", "open the drawer", 200, "green drawer"),
    TaskSpec("drawer-close-v3", "close the drawer", 200, "green drawer"),
    TaskSpec("button-press-topdown-v3", "press the red button from above", 200,
             "red button on a yellow box"),
    TaskSpec("door-open-v3", "open the door", 200, "black safe door", "green goal dot"),
)}


def task_spec(task: str) -> TaskSpec:
    """The registry entry of ``task``; an unknown name is an error listing the known ones."""
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task '{task}'; known tasks: {', '.join(TASKS)}") from None


def check_cameras(cameras: list[str] | tuple[str, ...]) -> list[str]:
    cameras = list(cameras)
    if not cameras:
        raise ValueError(f"no camera given; choose among {', '.join(CAMERAS)}")
    for cam in cameras:
        if cam not in CAMERAS:
            raise ValueError(f"unknown camera '{cam}'; known cameras: {', '.join(CAMERAS)}")
    return cameras


def episode_seed(task: str, index: int, split: str = "eval") -> int:
    """The scene seed of episode ``index`` of ``task`` in ``split`` (train / eval / caption / test).

    It depends on nothing else, so every policy sees the same scene for one (task, index), and the
    seeds of different splits are disjoint by construction: train, eval and caption seeds are
    ``scene * 3 + split`` (below ``3 * 2**44``), test seeds ``3 * 2**44 + scene``. ``eval`` is the
    development set design decisions may look at; ``test`` is for a preset's headline figures only.
    """
    task_spec(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; known splits: {', '.join(SPLITS)}")
    if not 0 <= index < MAX_INDEX:
        raise ValueError(f"episode index {index} outside 0..{MAX_INDEX - 1}")
    scene = _task_hash(task) * MAX_INDEX + index
    if split == "test":
        return _INTERLEAVED * (MAX_INDEX << _TASK_BITS) + scene
    return scene * _INTERLEAVED + SPLITS.index(split)


def step_seed(seed: int, step: int) -> int:
    """The policy's random seed at ``step`` of the episode of ``seed`` (a well-mixed uint32).

    Seeding generators with ``seed + step`` instead gives visibly correlated noise: the expert's
    noisy demonstrations then fail far more often.
    """
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _task_hash(task: str) -> int:
    return zlib.crc32(task.encode()) % (1 << _TASK_BITS)


assert len({_task_hash(t) for t in TASKS}) == len(TASKS), "two tasks share a seed hash"


class _Simulator:
    """One Meta-World environment and its renderer, kept for the life of the process.

    The renderer is made on the first frame asked for (making one and its first frame cost seconds
    with OSMesa), so state-only episodes never pay for it.
    """

    def __init__(self, task: str, image_size: int):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        self.env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"]()
        self.image_size = image_size
        self.renderer: mujoco.Renderer | None = None

    def _make_renderer(self) -> mujoco.Renderer:
        model, size = self.env.model, self.image_size
        model.vis.global_.offwidth = size
        model.vis.global_.offheight = size
        model.vis.quality.offsamples = 0
        try:
            renderer = mujoco.Renderer(model, size, size)
        except mujoco.FatalError as err:
            raise RuntimeError(
                f"cannot render with MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {err}. Install libosmesa6, and "
                "set MUJOCO_GL=osmesa (or import vlaforge.sim before anything imports mujoco)") from err
        flags = mujoco.mjtRndFlag
        for flag in (flags.mjRND_SHADOW, flags.mjRND_REFLECTION, flags.mjRND_SKYBOX, flags.mjRND_FOG,
                     flags.mjRND_HAZE):
            renderer.scene.flags[flag] = 0
        return renderer

    def render(self, camera: str) -> np.ndarray:
        if self.renderer is None:
            self.renderer = self._make_renderer()
        self.renderer.update_scene(self.env.data, camera=camera)
        return np.ascontiguousarray(self.renderer.render()[::-1])  # MuJoCo's frames are upside down


_SIMULATORS: dict[tuple[str, int], _Simulator] = {}


@atexit.register
def _close_renderers() -> None:
    """Free the OpenGL contexts while the interpreter is whole (not in a teardown-time __del__)."""
    for sim in _SIMULATORS.values():
        if sim.renderer is not None:
            sim.renderer.close()


def _simulator(task: str, image_size: int) -> _Simulator:
    key = (task, image_size)
    if key not in _SIMULATORS:
        _SIMULATORS[key] = _Simulator(task, image_size)
    return _SIMULATORS[key]


class SimEnv:
    """One task with fixed cameras and image size; ``reset(seed)`` then ``step(action)``."""

    action_dim = 4

    def __init__(self, task: str, cameras: list[str], image_size: int, max_steps: int | None = None):
        self.spec = task_spec(task)
        self.task = task
        self.cameras = check_cameras(cameras) if cameras else []  # none: state-only observations
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
        self.image_size = image_size
        self.max_steps = max_steps or self.spec.max_steps
        self._sim = _simulator(task, image_size)
        limit = self._sim.env.max_path_length
        if not 0 < self.max_steps <= limit:
            raise ValueError(f"max_steps for {task} must be in 1..{limit}, got {self.max_steps}")
        self.dt = float(self._sim.env.dt)
        self.steps = 0
        self._state: np.ndarray | None = None

    def reset(self, seed: int) -> Observation:
        """Start an episode in the scene drawn from ``seed`` (object and goal positions)."""
        env = self._sim.env
        mujoco.mj_resetData(env.model, env.data)  # no trace of the last episode (arm posture, warm start)
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.seed(int(seed))
        state, _ = env.reset()
        # Tasks such as reach move their goal site in the model after the last forward pass, so the
        # first frame would show it where it is not until the first step; recompute the positions.
        mujoco.mj_forward(env.model, env.data)
        self.steps = 0
        return self._observe(state)

    def step(self, action: np.ndarray) -> tuple[Observation, bool, bool]:
        """Apply ``action`` (4 numbers in [-1, 1]); returns (observation, success, time limit reached)."""
        if self._state is None:
            raise RuntimeError(f"{self.task}: step() before reset()")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
            raise ValueError(f"{self.task}: an action must be {self.action_dim} finite numbers, "
                             f"got {action.tolist()}")
        state, _, _, _, info = self._sim.env.step(np.clip(action, -1.0, 1.0))
        self.steps += 1
        return self._observe(state), bool(info["success"]), self.steps >= self.max_steps

    def render(self, camera: str) -> np.ndarray:
        """The current frame of ``camera`` (any of :data:`CAMERAS`), right side up."""
        check_cameras([camera])
        return self._sim.render(camera)

    def _observe(self, state: np.ndarray) -> Observation:
        self._state = np.array(state, dtype=np.float64)
        return Observation(
            images={cam: self._sim.render(cam) for cam in self.cameras},
            proprio=self._state[:4].astype(np.float32),
            instruction=self.spec.instruction,
            task=self.task,
            state=self._state.copy(),
        )


def make_env(task: str, cameras: list[str] | tuple[str, ...] = ("corner", "behindGripper"),
             image_size: int = 64, max_steps: int | None = None) -> SimEnv:
    """A :class:`SimEnv` for ``task`` rendering ``cameras`` at ``image_size`` x ``image_size``.

    With no cameras, observations carry no images (for baselines that read only the state).

    ``max_steps`` overrides the task's time limit. Environments of one (task, image size) in one
    process share their simulator: use them one after another, not interleaved.
    """
    return SimEnv(task, list(cameras), int(image_size), max_steps)
