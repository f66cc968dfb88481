"""Weighted mixing of several sample streams: deterministic, and resumable at any sample.

Sample ``i`` of the mixture comes from source ``choice(i)``, drawn with probabilities proportional to
the weights from a generator seeded by (seed, i // BLOCK): any block of choices can be recomputed
without replaying the ones before, so a restarted run knows how many samples each source has already
given (:meth:`Mixture.counts_before`) and continues every source, and the mixture, exactly where it
stopped. Samples are dealt to ranks round-robin (sample ``i`` to rank ``i % world``), like one stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BLOCK = 4096  # choices drawn per generator seed


@dataclass
class MixtureSource:
    """One more dataset of a stage, and its sampling weight (relative to the others)."""

    uri: str = ""
    weight: float = 1.0


def check_weights(weights: Sequence[float], key: str) -> np.ndarray:
    """Probabilities from ``weights``; a clear error naming ``key`` for negative or all-zero weights."""
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"{key}: weights must be finite and >= 0, got {list(weights)}")
    if w.sum() <= 0:
        raise ValueError(f"{key}: weights sum to zero ({list(weights)}); give at least one source a positive weight")
    return w / w.sum()


class Mixture:
    """Interleave endless streams by weight. ``open_source(j, start)`` gives source ``j`` from its sample ``start``."""

    def __init__(self, open_source: Callable[[int, int], Iterator[Any]], probabilities: np.ndarray, seed: int):
        self.open_source, self.p, self.seed = open_source, probabilities, seed

    def choices(self, block: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, block])
        return rng.choice(len(self.p), size=BLOCK, p=self.p)

    def counts_before(self, index: int) -> np.ndarray:
        """How many of the first ``index`` mixture samples each source gave."""
        counts = np.zeros(len(self.p), dtype=np.int64)
        full, rest = divmod(index, BLOCK)
        for block in range(full):
            counts += np.bincount(self.choices(block), minlength=len(self.p))
        if rest:
            counts += np.bincount(self.choices(full)[:rest], minlength=len(self.p))
        return counts

    def stream(self, start: int = 0, rank: int = 0, world: int = 1) -> Iterator[Any]:
        """Endless samples of ``rank`` (every ``world``-th), skipping the first ``start`` of them."""
        index = start * world
        sources = [self.open_source(j, int(n)) for j, n in enumerate(self.counts_before(index))]
        while True:
            block, offset = divmod(index, BLOCK)
            for choice in self.choices(block)[offset:]:
                sample = next(sources[choice])
                if index % world == rank:
                    yield sample
                index += 1
