"""What every policy looks like to the simulator, the evaluator and the policy server.

A policy maps a short history of observations to a chunk of future actions. The caller executes
the first ``execute_steps`` actions of each chunk, then asks again (action chunking).
:class:`ControlState` keeps that per-episode (or per-client) state, so the evaluator and the gRPC
server share one implementation and the server can batch several clients into one ``predict``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Observation:
    """One control step's observation, as a policy may see it.

    ``images`` maps camera name to an ``HxWx3`` uint8 frame, right side up. ``proprio`` is the
    end-effector position and gripper opening (float32, shape (4,)). ``state`` is the simulator's
    full flat observation: only privileged baselines (the scripted expert) may read it.
    """

    images: dict[str, np.ndarray]
    proprio: np.ndarray
    instruction: str
    task: str = ""
    state: np.ndarray | None = field(default=None, repr=False)


class Policy(Protocol):
    """A closed-loop policy.

    ``predict`` takes one observation history per episode (oldest first, ``n_obs_steps`` long) and
    returns one action chunk per episode, each ``(chunk_len, action_dim)`` float32.
    """

    name: str
    n_obs_steps: int
    execute_steps: int

    def predict(self, histories: list[list[Observation]], seed: int | None = None) -> list[np.ndarray]: ...


class ControlState:
    """Observation history and pending actions of one episode under one policy."""

    def __init__(self, n_obs_steps: int, execute_steps: int):
        self.n_obs_steps = max(1, n_obs_steps)
        self.execute_steps = max(1, execute_steps)
        self.reset()

    def reset(self) -> None:
        self._history: deque[Observation] = deque(maxlen=self.n_obs_steps)
        self._queue: deque[np.ndarray] = deque()

    def observe(self, obs: Observation) -> bool:
        """Record ``obs``; True when a new chunk must be predicted before the next action."""
        self._history.append(obs)
        return not self._queue

    def history(self) -> list[Observation]:
        """The last ``n_obs_steps`` observations, the first one repeated at an episode's start."""
        items = list(self._history)
        return [items[0]] * (self.n_obs_steps - len(items)) + items

    def plan(self, chunk: np.ndarray) -> None:
        self._queue = deque(np.asarray(chunk, dtype=np.float32)[: self.execute_steps])

    def next_action(self) -> np.ndarray:
        return self._queue.popleft()


def step_policy(policy: Policy, state: ControlState, obs: Observation, seed: int | None = None) -> np.ndarray:
    """One control step of one episode: observe, re-plan when the chunk is used up, act."""
    if state.observe(obs):
        state.plan(policy.predict([state.history()], seed=seed)[0])
    return state.next_action()
