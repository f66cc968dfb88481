"""Dynamic batching: predict requests of several clients share one ``policy.predict`` call.

A worker thread takes the first waiting request and every other one already waiting (up to
``max_batch``), then waits for more while fewer than ``expected()`` are in (the server's count of
active clients due for a new chunk), at most ``window_s``: a lone client pays no window while
clients that step in lockstep converge on full batches. The wait is also capped by the running mean
duration of a predict call: waiting longer than a forward pass takes costs more than running a
second one. The batch runs as one forward pass.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vlaforge.policy.interface import Observation, Policy

log = logging.getLogger(__name__)
POLL_S = 0.0005


class PolicyError(RuntimeError):
    """The policy failed or returned something that is not an action chunk."""


@dataclass
class _Request:
    history: list[Observation]
    seed: int | None
    future: Future = field(default_factory=Future)


def batch_seed(seeds: list[int | None]) -> int | None:
    """One seed for a batch: None when no request has one, else a hash of all of them.

    A client alone on the server thus gets the same actions for the same seeds; in a batch the
    noise depends on who else is in it.
    """
    if all(s is None for s in seeds):
        return None
    entropy = [0 if s is None else s + 1 for s in seeds]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def chunk_seed(seed: int | None, index: int) -> int | None:
    """The seed of a client's ``index``-th chunk after a reset with ``seed`` (None: unseeded)."""
    return None if seed is None else int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class PredictBatcher:
    """Runs ``policy.predict`` on batches of histories gathered from concurrent callers."""

    def __init__(self, policy: Policy, window_s: float = 0.005, max_batch: int = 8,
                 expected: Callable[[], int] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.policy = policy
        self.window_s = window_s
        self.max_batch = max_batch
        self._expected = expected or (lambda: max_batch)
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closing = threading.Lock()
        self._closed = False
        self.predict_s = window_s  # running mean duration of a predict call
        self.calls = 0  # predict calls made
        self.items = 0  # histories predicted
        self._thread = threading.Thread(target=self._run, name="predict-batcher", daemon=True)
        self._thread.start()

    def predict(self, history: list[Observation], seed: int | None = None) -> np.ndarray:
        """One action chunk for ``history``; blocks until its batch has run."""
        request = _Request(history, seed)
        with self._closing:
            if self._closed:
                raise PolicyError("the predict batcher is closed")
            self._queue.put(request)
        return request.future.result()

    def close(self) -> None:
        """Stop after the requests already queued; later ones are refused."""
        with self._closing:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        self._thread.join()

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` plus every request already waiting, plus those expected within the wait."""
        batch, deadline = [first], time.monotonic() + min(self.window_s, self.predict_s)
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                timeout = deadline - time.monotonic()
                if timeout <= 0 or len(batch) >= self._expected():
                    break
                try:  # short slices, so that a drop of expected() is seen soon
                    item = self._queue.get(timeout=min(timeout, POLL_S))
                except queue.Empty:
                    continue
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch, stop = self._gather(first)  # the close() sentinel is always the last item
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Request]) -> None:
        start = time.perf_counter()
        try:
            chunks = self.policy.predict([r.history for r in batch], seed=batch_seed([r.seed for r in batch]))
            chunks = [self._check(chunk) for chunk in chunks]
            if len(chunks) != len(batch):
                raise PolicyError(f"policy '{self.policy.name}' returned {len(chunks)} chunks for "
                                  f"{len(batch)} histories")
        except Exception as err:  # noqa: BLE001 - every waiting client must hear about it
            log.exception("predict failed for a batch of %d", len(batch))
            error = err if isinstance(err, PolicyError) else PolicyError(
                f"policy '{self.policy.name}' failed: {type(err).__name__}: {err}")
            for r in batch:
                r.future.set_exception(error)
            return
        self.predict_s = 0.8 * self.predict_s + 0.2 * (time.perf_counter() - start)
        self.calls += 1
        self.items += len(batch)
        for r, chunk in zip(batch, chunks):
            r.future.set_result(chunk)

    def _check(self, chunk) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[0] == 0:
            raise PolicyError(f"policy '{self.policy.name}' returned a chunk of shape {chunk.shape}, "
                              "expected (chunk_len >= 1, action_dim)")
        if not np.all(np.isfinite(chunk)):
            raise PolicyError(f"policy '{self.policy.name}' returned non-finite actions")
        return chunk
