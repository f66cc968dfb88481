"""Policies that need no training, evaluated by the same code as trained ones.

``expert`` is Meta-World's scripted policy for the task (the upper bound; it reads the simulator's
full state, which a learned policy never sees), optionally with Gaussian action noise so that
recorded demonstrations include recoveries. ``random`` draws uniformly from the action box and
``zero`` never moves (lower bounds). All act one step at a time (``n_obs_steps = execute_steps = 1``).

Noise comes from ``np.random.default_rng(seed)`` when ``predict`` is given a seed (reproducible
per call) and from the policy's own generator otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np

from vlaforge.policy.interface import Observation

ACTION_DIM = 4
# Meta-World's reach expert steers the hand (the wrist, obs[0:3]) onto the goal, but the task's success
# is measured at the fingertips 4.5 cm below it: the expert's end point lies 4.5 cm inside the 5 cm
# success radius, so a policy that copies it with any error below the goal misses. Told of a goal
# raised by that offset, the same scripted policy brings the fingertips onto the goal instead.
FINGERTIP_GOAL_OFFSET = {"reach-v3": np.array([0.0, 0.0, 0.045])}
GOAL = slice(36, 39)  # the goal position in the flat Meta-World observation


class _Baseline:
    n_obs_steps = 1
    execute_steps = 1
    uses_images = False  # the evaluator skips rendering for policies that declare this

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng(seed)

    def _generator(self, seed: int | None) -> np.random.Generator:
        return self._rng if seed is None else np.random.default_rng(seed)

    def predict(self, histories: list[list[Observation]], seed: int | None = None) -> list[np.ndarray]:
        rng = self._generator(seed)
        return [np.clip(self._act(h[-1], rng), -1.0, 1.0).astype(np.float32)[None] for h in histories]

    def _act(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class ExpertPolicy(_Baseline):
    """Meta-World's scripted expert of each observation's task, plus N(0, ``noise``) per action.

    With ``fingertips`` the tasks of :data:`FINGERTIP_GOAL_OFFSET` aim the fingertips, not the wrist,
    at their goal (for demonstrations; the evaluation baseline is Meta-World's expert as it is).
    """

    name = "expert"

    def __init__(self, noise: float = 0.0, seed: int = 0, fingertips: bool = False):
        super().__init__(seed)
        if noise < 0:
            raise ValueError(f"expert action noise must be >= 0, got {noise}")
        self.noise = float(noise)
        self.fingertips = fingertips
        self._experts: dict = {}

    def _expert(self, task: str):
        if task not in self._experts:
            from metaworld.policies import ENV_POLICY_MAP

            if task not in ENV_POLICY_MAP:
                raise ValueError(f"no scripted expert for task '{task}'")
            self._experts[task] = ENV_POLICY_MAP[task]()
        return self._experts[task]

    def _act(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
        if obs.state is None:
            raise ValueError("the expert baseline needs Observation.state (the simulator's full "
                             "observation); it cannot act on images alone")
        state = obs.state
        if self.fingertips and obs.task in FINGERTIP_GOAL_OFFSET:
            state = state.copy()
            state[GOAL] += FINGERTIP_GOAL_OFFSET[obs.task]
        with warnings.catch_warnings():  # the scripted policies warn whenever they saturate
            warnings.simplefilter("ignore", UserWarning)
            action = self._expert(obs.task).get_action(state)
        if self.noise:
            action = action + rng.normal(0.0, self.noise, ACTION_DIM)
        return action


class RandomPolicy(_Baseline):
    """Uniform actions in [-1, 1]^4."""

    name = "random"

    def _act(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, ACTION_DIM)


class ZeroPolicy(_Baseline):
    """Always the zero action: the arm holds still."""

    name = "zero"

    def _act(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(ACTION_DIM)


BASELINES = {cls.name: cls for cls in (ExpertPolicy, RandomPolicy, ZeroPolicy)}


def make_baseline(name: str, **kwargs) -> _Baseline:
    """``expert`` (kwargs ``noise``, ``seed``), ``random`` or ``zero`` (kwarg ``seed``)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline policy '{name}'; known: {', '.join(BASELINES)}")
    return BASELINES[name](**kwargs)
