"""Deterministic, resumable index streams over in-memory datasets."""

from __future__ import annotations

import random
from collections.abc import Iterator


def index_stream(n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True) -> Iterator[int]:
    """Endless indices of ``rank``: epoch ``e`` is a permutation seeded by (seed, e); skips ``start``."""
    if n <= 0:
        raise ValueError("cannot stream an empty dataset")
    epoch, position = 0, 0
    while True:
        order = list(range(n))
        if shuffle:
            random.Random(seed * 1_000_003 + epoch).shuffle(order)
        for index, item in enumerate(order):
            if index % world == rank:
                if position >= start:
                    yield item
                position += 1
        epoch += 1


def batched(items: list, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1,
            shuffle: bool = True) -> Iterator[list]:
    stream = index_stream(len(items), seed, start, rank, world, shuffle)
    while True:
        yield [items[next(stream)] for _ in range(batch_size)]
