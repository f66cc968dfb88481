"""Concurrent predict requests share one forward pass; failures reach every waiting caller."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vlaforge.policy import Observation
from vlaforge.serve.batching import PolicyError, PredictBatcher, batch_seed


def _history(instruction: str) -> list[Observation]:
    obs = Observation(images={"front": np.zeros((16, 16, 3), np.uint8)}, proprio=np.zeros(4, np.float32),
                      instruction=instruction)
    return [obs, obs]


def _concurrently(batcher: PredictBatcher, instructions: list[str]):
    start = threading.Barrier(len(instructions))

    def call(instruction):
        start.wait()
        return batcher.predict(_history(instruction), seed=7)

    with ThreadPoolExecutor(len(instructions)) as pool:
        return list(pool.map(call, instructions))


def test_waiting_requests_form_one_batch(scripted):
    policy = scripted(delay_s=0.01)
    batcher = PredictBatcher(policy, window_s=0.5, max_batch=4)
    try:
        chunks = _concurrently(batcher, ["go left", "go right", "go left", "go right"])
    finally:
        batcher.close()
    assert [len(h) for h in policy.calls[0][2]] == [2] * 4
    assert [c[0] for c in policy.calls] == [4]  # the full batch ends the window early
    assert [c[0, 0] for c in chunks] == [-0.5, 0.5, -0.5, 0.5]  # each caller gets its own chunk
    assert batcher.calls == 1 and batcher.items == 4


def test_max_batch_is_respected(scripted):
    policy = scripted()
    batcher = PredictBatcher(policy, window_s=0.2, max_batch=2)
    try:
        _concurrently(batcher, ["a"] * 5)
    finally:
        batcher.close()
    sizes = [c[0] for c in policy.calls]
    assert sum(sizes) == 5 and max(sizes) <= 2


def test_lone_caller_does_not_wait_for_the_window(scripted):
    policy = scripted()
    batcher = PredictBatcher(policy, window_s=30.0, max_batch=8, expected=lambda: 1)
    try:
        batcher.predict(_history("a"))  # would take 30 s if the window were waited out
    finally:
        batcher.close()
    assert [c[0] for c in policy.calls] == [1]


def test_failure_reaches_every_caller_and_the_batcher_goes_on(scripted):
    policy = scripted()
    batcher = PredictBatcher(policy, window_s=0.5, max_batch=2)
    try:
        with pytest.raises(PolicyError, match="policy 'scripted' failed: RuntimeError: scripted failure"):
            _concurrently(batcher, ["fail", "fine"])
        assert batcher.predict(_history("go left"))[0, 0] == -0.5
    finally:
        batcher.close()


class _Broken:
    name, n_obs_steps, execute_steps = "broken", 1, 1

    def __init__(self, reply):
        self.reply = reply

    def predict(self, histories, seed=None):
        return self.reply


@pytest.mark.parametrize("reply, message", [
    ([], r"returned 0 chunks for 1 histories"),
    ([np.zeros(4)], r"chunk of shape \(4,\)"),
    ([np.full((2, 4), np.inf)], r"non-finite actions"),
])
def test_malformed_predictions_are_errors(reply, message):
    batcher = PredictBatcher(_Broken(reply), window_s=0.0)
    try:
        with pytest.raises(PolicyError, match=message):
            batcher.predict(_history("a"))
    finally:
        batcher.close()


def test_closed_batcher_refuses(scripted):
    batcher = PredictBatcher(scripted())
    batcher.close()
    with pytest.raises(PolicyError, match="closed"):
        batcher.predict(_history("a"))


def test_batch_seed():
    assert batch_seed([None, None]) is None
    assert batch_seed([3]) == batch_seed([3]) != batch_seed([4])
    assert batch_seed([3, None]) != batch_seed([None, 3])
    assert 0 <= batch_seed([0, 2**32 - 1]) < 2**32
