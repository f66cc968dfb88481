"""A robotics split decoded once into memory, served as seeded random batches.

Streaming (:mod:`vlaforge.robotics.loader`) decodes every sample again each time it is drawn: on
a small CPU that costs as much as the policy's step. :class:`InMemorySamples` decodes a split once
(uint8 images, normalised proprio and actions: about 25 kB a sample at two 64x64 views) and then
draws batches by index, so a batch costs one gather. ``extra`` columns (e.g. a frozen backbone's
states) can be attached with :meth:`add_column` and travel with the batch.

Batches are deterministic given the seed: epoch ``e`` visits a permutation drawn from
``(seed, e)`` (or, balancing tasks, as many draws with every task equally likely), each DDP rank
takes every ``world``-th index of it, and ``batches(..., start_batch=n)`` resumes exactly after
``n`` batches of this rank.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vlaforge.robotics.loader import RoboticsDataset

log = logging.getLogger(__name__)

TENSORS = ("images", "proprio", "actions", "action_mask")
DECODE_BATCH = 256
STRINGS = ("instruction", "task")


class InMemorySamples:
    """Every sample of ``<uri>/<split>``, decoded into stacked tensors (module docstring)."""

    def __init__(self, uri: str, split: str = "train", normalization: str | None = None, workers: int = 0,
                 stats: dict | None = None):
        """``workers``: DataLoader processes that decode shards in parallel (the order then follows them);
        ``stats`` replaces the dataset's ``stats.json`` for normalisation."""
        dataset = RoboticsDataset(uri, split, infinite=False, shuffle_buffer=0, normalization=normalization,
                                  rank=0, world_size=1, stats=stats)
        self.cfg, self.normalizer = dataset.cfg, dataset.normalizer
        n = dataset.num_samples
        if n == 0:
            raise ValueError(f"{uri}: split {split!r} has no samples")
        tensors: dict[str, list] = {k: [] for k in TENSORS}
        texts: dict[str, list] = {k: [] for k in STRINGS}
        with tqdm(total=n, desc=f"decode {split}", unit="sample", mininterval=5.0) as bar:
            for batch in DataLoader(dataset, batch_size=DECODE_BATCH, num_workers=workers):
                for key, parts in tensors.items():
                    parts.append(batch[key])
                for key, values in texts.items():
                    values.extend(batch[key])
                bar.update(len(batch["task"]))
        self.columns: dict[str, torch.Tensor] = {k: torch.cat(parts) for k, parts in tensors.items()}
        self.strings = {k: sorted(set(values)) for k, values in texts.items()}
        code_of = {k: {v: i for i, v in enumerate(self.strings[k])} for k in STRINGS}
        self.codes = {k: torch.tensor([code_of[k][v] for v in values]) for k, values in texts.items()}
        size = sum(t.numel() * t.element_size() for t in self.columns.values())
        log.info("%s/%s: %d samples in memory (%.0f MB)", uri, split, len(self), size / 2**20)

    def __len__(self) -> int:
        return self.columns["images"].shape[0]

    def add_column(self, name: str, values: torch.Tensor) -> None:
        """Attach per-sample values (first axis = samples) that every batch then carries as ``name``."""
        if values.shape[0] != len(self):
            raise ValueError(f"column {name!r} has {values.shape[0]} rows for {len(self)} samples")
        self.columns[name] = values

    def extend(self, other: InMemorySamples) -> None:
        """Append ``other``'s samples after these (a mixture's sources as one set of indices)."""
        if other.columns.keys() != self.columns.keys():
            raise ValueError(f"cannot append samples with columns {sorted(other.columns)} to {sorted(self.columns)}")
        self.columns = {k: torch.cat([v, other.columns[k]]) for k, v in self.columns.items()}
        for key in STRINGS:
            strings = sorted(set(self.strings[key]) | set(other.strings[key]))
            code_of = {v: i for i, v in enumerate(strings)}
            recoded = [torch.tensor([code_of[v] for v in part.strings[key]])[part.codes[key]] for part in (self, other)]
            self.strings[key], self.codes[key] = strings, torch.cat(recoded)

    def batch(self, index: torch.Tensor) -> dict:
        """The samples at ``index`` as one batch (the loader's batch layout plus any added columns)."""
        out: dict = {k: v[index] for k, v in self.columns.items()}
        for key, codes in self.codes.items():
            out[key] = [self.strings[key][c] for c in codes[index].tolist()]
        return out

    def epoch_order(self, seed: int, epoch: int, balance_tasks: bool = False) -> torch.Tensor:
        """The sample indices of one epoch: a permutation, or with ``balance_tasks`` as many draws (with
        replacement) in which every task is equally likely, however many samples it has."""
        rng = np.random.default_rng([seed, epoch])
        if not balance_tasks:
            return torch.from_numpy(rng.permutation(len(self)))
        task = self.codes["task"].numpy()
        weight = 1.0 / np.bincount(task)[task]
        return torch.from_numpy(rng.choice(len(self), len(self), p=weight / weight.sum()))

    def batches(self, batch_size: int, seed: int = 0, start_batch: int = 0, rank: int = 0,
                world: int = 1, balance_tasks: bool = False) -> Iterator[dict]:
        """Endless random batches of this rank; the tail of each epoch's share that fills no batch is dropped."""
        per_epoch = len(self) // world // batch_size
        if per_epoch == 0:
            raise ValueError(f"{len(self)} samples fill no batch of {batch_size} on each of {world} rank(s)")
        first_epoch, skip = divmod(start_batch, per_epoch)
        for epoch in itertools.count(first_epoch):
            order = self.epoch_order(seed, epoch, balance_tasks)[rank::world]
            for b in range(skip if epoch == first_epoch else 0, per_epoch):
                yield self.batch(order[b * batch_size:(b + 1) * batch_size])
