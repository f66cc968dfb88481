"""Reading tokenized text shards as a deterministic, resumable stream of token windows."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator

import torch

from vlaforge.data.shards import ShardError, ShardInfo, iter_samples, read_manifest


def _decode(shard: ShardInfo, sample: dict, seq_len: int | None) -> list[int]:
    try:
        ids = json.loads(gzip.decompress(sample["json.gz"]))
    except (KeyError, OSError, ValueError) as err:
        raise ShardError(f"corrupt sample {sample.get('__key__')} in {shard.uri}: {err}") from err
    if seq_len is not None and len(ids) != seq_len + 1:
        raise ShardError(f"sample {sample['__key__']} in {shard.uri} has {len(ids)} tokens, expected {seq_len + 1}")
    return ids


def load_windows(shard: ShardInfo, seq_len: int | None = None) -> list[list[int]]:
    windows = [_decode(shard, s, seq_len) for s in iter_samples(shard.uri)]
    if len(windows) != shard.num_samples:
        raise ShardError(f"{shard.uri} holds {len(windows)} samples but the manifest says {shard.num_samples}")
    return windows


class TokenWindows:
    """Token windows of one split; epoch ``e`` visits shards and samples in an order seeded by (seed, e)."""

    def __init__(self, uri: str, seed: int = 0):
        self.uri = uri
        self.shards = read_manifest(uri)
        self.seed = seed
        first = load_windows(self.shards[0])
        self.seq_len = len(first[0]) - 1
        self._cache = {self.shards[0].uri: first} if len(self.shards) == 1 else {}

    def __len__(self) -> int:
        return sum(s.num_samples for s in self.shards)

    def _windows(self, shard: ShardInfo) -> list[list[int]]:
        return self._cache.get(shard.uri) or load_windows(shard, self.seq_len)

    def stream(self, start: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True) -> Iterator[list[int]]:
        """Endless windows of ``rank`` (every ``world``-th), skipping the first ``start`` of them."""
        epoch, position = 0, 0
        while True:
            rng = random.Random(self.seed * 1_000_003 + epoch)
            order = list(self.shards)
            if shuffle:
                rng.shuffle(order)
            index = 0
            for shard in order:
                windows = self._windows(shard)
                idx = list(range(len(windows)))
                if shuffle:
                    rng.shuffle(idx)
                for i in idx:
                    if index % world == rank:
                        if position >= start:
                            yield windows[i]
                        position += 1
                    index += 1
            epoch += 1

    def batches(self, batch_size: int, start: int = 0, rank: int = 0, world: int = 1,
                shuffle: bool = True) -> Iterator[torch.Tensor]:
        stream = self.stream(start, rank, world, shuffle)
        while True:
            yield torch.tensor([next(stream) for _ in range(batch_size)], dtype=torch.long)
