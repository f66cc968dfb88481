"""Several preprocessed robotics datasets mixed by weight, for the VLA stage.

The draw of sources is :class:`vlaforge.data.mixture.Mixture` (deterministic, resumable at any sample,
any world size); this module checks that the sources can feed one model and serves their samples,
streamed (:class:`MixtureStream`) or decoded into memory (:func:`in_memory_mixture_batches`).

Compatibility: every source must match the input dataset in ``COMPATIBLE`` (what the model's inputs
and outputs are shaped by); a mismatch is an error naming ``vla.mixture[i].uri`` and the field.

Normalisation: one normaliser for every source, in the input dataset's mode, from statistics combined
with the mixture's probabilities ``p`` (:func:`combine_stats`): ``mean`` and ``std`` are those of the
mixture distribution (``mean = sum p_i mean_i``, ``var = sum p_i (std_i^2 + (mean_i - mean)^2)``); ``min``,
``max`` and the percentiles take the envelope (lowest of the low ones, highest of the high ones), so
each source's range maps inside the normalised range; ``count`` is the sum. The policy bundle holds
these combined statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, default_collate, get_worker_info

from vlaforge import storage
from vlaforge.data.mixture import Mixture, MixtureSource, check_weights
from vlaforge.data.shards import MANIFEST
from vlaforge.robotics.config import PREPROCESSING_CONFIG, PreprocessConfig, read_preprocessing_config
from vlaforge.robotics.loader import RoboticsDataset
from vlaforge.robotics.memory import InMemorySamples
from vlaforge.robotics.stats import STATS_FILE, read_stats

COMPATIBLE = ("proprio_dim", "action_dim", "cameras", "image_indices", "past_steps", "future_steps", "image_size")
FIELDS = ("proprio", "action")
LOW_KEYS = ("min", "percentile_1", "percentile_2", "percentile_5")
HIGH_KEYS = ("max", "percentile_95", "percentile_98", "percentile_99")


@dataclass
class RoboticsMixture:
    """The datasets of a mixture (the input dataset first), their probabilities and combined statistics."""

    uris: list[str]
    probabilities: np.ndarray
    cfg: PreprocessConfig
    stats: dict


def robotics_mixture(data_uri: str, mixture: list[MixtureSource], data_weight: float) -> RoboticsMixture:
    """Check the ``vla.mixture`` sources against the input dataset ``data_uri`` and combine their statistics."""
    p = check_weights([data_weight] + [m.weight for m in mixture], "vla.data_weight/vla.mixture")
    cfg = read_preprocessing_config(data_uri)
    for i, source in enumerate(mixture):
        key = f"vla.mixture[{i}].uri"
        missing = [f for f in (PREPROCESSING_CONFIG, STATS_FILE, f"train/{MANIFEST}") if not source.uri or
                   not storage.exists(storage.join(source.uri, f))]
        if missing:
            raise FileNotFoundError(f"{key}: no preprocessed robotics dataset at {source.uri!r} (missing "
                                    f"{', '.join(missing)}; expected a preprocess_robotics output)")
        other = read_preprocessing_config(source.uri)
        for name in COMPATIBLE:
            if getattr(other, name) != getattr(cfg, name):
                raise ValueError(f"{key}: {name} {getattr(other, name)} of {source.uri} differs from the input "
                                 f"dataset's {getattr(cfg, name)} ({data_uri}); mixed datasets must share {name}")
    uris = [data_uri] + [m.uri for m in mixture]
    return RoboticsMixture(uris, p, cfg, combine_stats([read_stats(u) for u in uris], p))


def combine_stats(stats: list[dict], p: np.ndarray) -> dict:
    """``stats.json`` mappings of the sources combined with probabilities ``p`` (module docstring)."""
    out = {}
    for name in FIELDS:
        entries = [s[name] for s in stats]
        mean = sum(pi * np.asarray(e["mean"]) for pi, e in zip(p, entries))
        var = sum(pi * (np.asarray(e["std"]) ** 2 + (np.asarray(e["mean"]) - mean) ** 2) for pi, e in zip(p, entries))
        field = {"count": int(sum(e["count"] for e in entries)), "mean": mean.tolist(), "std": np.sqrt(var).tolist()}
        for keys, pick in ((LOW_KEYS, np.min), (HIGH_KEYS, np.max)):
            for key in keys:
                field[key] = pick([e[key] for e in entries], axis=0).tolist()
        out[name] = field
    return out


class MixtureStream(IterableDataset):
    """This rank's mixture samples, decoded; DataLoader worker ``w`` of ``W`` decodes batches ``w, w + W, ...``.

    Every source is one shuffled stream over all its shards (as on one rank); the mixture deals its
    samples to the ranks round-robin, so a resume on any world size continues it exactly.
    """

    def __init__(self, mix: RoboticsMixture, batch_size: int, seed: int, start_batch: int, rank: int, world: int,
                 shuffle_buffer: int):
        self.datasets = [RoboticsDataset(u, infinite=True, shuffle_buffer=shuffle_buffer, seed=seed, rank=0,
                                         world_size=1, stats=mix.stats) for u in mix.uris]
        self.mixture = Mixture(self.open_source, mix.probabilities, seed)
        self.batch_size, self.start, self.rank, self.world = batch_size, start_batch * batch_size, rank, world

    def open_source(self, j: int, start: int) -> Iterator[tuple[int, dict]]:
        return ((j, raw) for raw in self.datasets[j].raw(skip=start))

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for n, (j, raw) in enumerate(self.mixture.stream(self.start, self.rank, self.world)):
            if (n // self.batch_size) % workers == worker:
                yield self.datasets[j].decode(raw)


def mixture_loader(mix: RoboticsMixture, batch_size: int, num_workers: int, seed: int, start_batch: int, rank: int,
                   world: int, shuffle_buffer: int) -> DataLoader:
    stream = MixtureStream(mix, batch_size, seed, start_batch, rank, world, shuffle_buffer)
    return DataLoader(stream, batch_size=batch_size, num_workers=num_workers, collate_fn=default_collate)


def in_memory_mixture(mix: RoboticsMixture, workers: int) -> tuple[InMemorySamples, list[int]]:
    """Every source's train split decoded into one sample set (sources one after the other), and their sizes."""
    parts = [InMemorySamples(u, workers=workers, stats=mix.stats) for u in mix.uris]
    sizes = [len(part) for part in parts]
    for part in parts[1:]:
        parts[0].extend(part)
    return parts[0], sizes


def in_memory_mixture_batches(samples: InMemorySamples, sizes: list[int], p: np.ndarray, batch_size: int, seed: int,
                              start_batch: int, rank: int, world: int) -> Iterator[dict]:
    """Endless batches of this rank: the mixture draws a source, the source its next index (a fresh
    permutation of the source each pass, seeded by (seed, source, pass))."""
    offsets = np.cumsum([0] + sizes[:-1])

    def open_source(j: int, start: int) -> Iterator[int]:
        epoch, skip = divmod(start, sizes[j])
        while True:
            order = np.random.default_rng([seed, j, epoch]).permutation(sizes[j]) + offsets[j]
            yield from order[skip:].tolist()
            epoch, skip = epoch + 1, 0

    stream = Mixture(open_source, p, seed).stream(start_batch * batch_size, rank, world)
    while True:
        yield samples.batch(torch.tensor([next(stream) for _ in range(batch_size)]))

