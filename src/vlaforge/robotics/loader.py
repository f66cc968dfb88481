"""VLA training batches from robotics shards, and the same model inputs from live observations.

A batch (what the VLA model consumes) is a dict, with P = proprio_dim, A = action_dim:

- ``images``: uint8 (B, n_views, 3, H, W); views are camera-major, then image index, i.e. for
  cameras [corner, gripper] and image_indices [-1, 0]: corner_t-1, corner_t0, gripper_t-1, gripper_t0;
- ``proprio``: float32 normalised (B, past_steps + 1, P), the past window up to and including the
  anchor step (the last row); steps before an episode's start repeat its first step;
- ``actions``: float32 normalised (B, future_steps, A), the actions from the anchor step on
  (``action[t] ... action[t + future_steps - 1]``), edge-padded past the episode's end;
- ``action_mask``: bool (B, future_steps), false on padded actions;
- ``instruction``: list[str]; ``task``: list[str].

:func:`observations_to_batch` builds ``images``, ``proprio``, ``instruction`` and ``task`` from live
:class:`vlaforge.policy.Observation` histories with the same steps (resize, JPEG round trip,
normalisation), so a policy sees at inference what it saw in training; ``actions`` come out of the
model normalised and go back through ``normalizer.denormalize("action", ...)``.

:class:`RoboticsDataset` streams a split's shards: shards are spread over DDP ranks and DataLoader
workers (or, with fewer shards than readers, samples are spread round-robin), pass through a seeded
shuffle buffer, and repeat epoch after epoch (``infinite=True``) or end after one pass. Every
stream is deterministic given the seed, so ``make_loader(..., start_batch=n)`` resumes exactly after
``n`` consumed batches in infinite mode (each reader skips its share without decoding).
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vlaforge import storage
from vlaforge.data.shards import ShardError, iter_samples, read_manifest
from vlaforge.policy.interface import Observation
from vlaforge.robotics.config import PreprocessConfig, read_preprocessing_config
from vlaforge.robotics.normalize import Normalizer
from vlaforge.robotics.samples import LANGUAGE, LOWDIM, METADATA, decode_frame, encode_frame
from vlaforge.robotics.stats import read_stats


def decode_sample(raw: dict, cfg: PreprocessConfig, normalizer: Normalizer) -> dict:
    """One shard sample (``{"__key__", member: bytes}``) as model inputs without the batch axis."""
    where = f"sample {raw.get('__key__')!r} of {raw.get('__shard__', '<shard>')}"
    missing = [m for m in (LOWDIM, METADATA, LANGUAGE, *(v + ".jpg" for v in cfg.view_keys())) if m not in raw]
    if missing:
        have = sorted(k for k in raw if not k.startswith("__"))
        raise ShardError(f"{where}: missing member(s) {', '.join(missing)} (has: {', '.join(have)})")
    frames = np.stack([decode_frame(raw[v + ".jpg"], f"{where} {v}.jpg") for v in cfg.view_keys()])
    lowdim = np.load(io.BytesIO(raw[LOWDIM]), allow_pickle=False)
    proprio, action = lowdim["proprio"], lowdim["action"]
    if proprio.shape[0] != cfg.window or action.shape[0] != cfg.window:
        raise ShardError(f"{where}: lowdim window is {proprio.shape[0]}/{action.shape[0]} steps but the "
                         f"preprocessing config says past+1+future = {cfg.window}")
    past = cfg.past_steps
    try:
        proprio = normalizer.normalize("proprio", proprio[:past + 1].astype(np.float32))
        actions = normalizer.normalize("action", action[past:past + cfg.future_steps].astype(np.float32))
    except ValueError as err:
        raise ShardError(f"{where}: {err}") from err
    return {
        "images": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),
        "proprio": torch.from_numpy(proprio),
        "actions": torch.from_numpy(actions),
        "action_mask": torch.from_numpy(np.concatenate([[True], lowdim["future_mask"][:cfg.future_steps - 1]])),
        "instruction": json.loads(raw[LANGUAGE])["original"][0],
        "task": json.loads(raw[METADATA]).get("task", ""),
    }


def _ddp_position() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class RoboticsDataset(IterableDataset):
    """Decoded samples of one split (``train``/``val``) of a preprocessed robotics dataset folder.

    ``normalization`` overrides the mode recorded in ``preprocessing_config.yaml``, ``stats`` the
    dataset's ``stats.json`` (a mixture normalises every source alike). ``start_batch``
    and ``batch_size`` resume a stream: each reader skips what it delivered in the first
    ``start_batch`` batches of a DataLoader with that batch size. ``rank``/``world_size`` default to
    the DDP process group's, read here in the rank's main process (DataLoader workers have none).
    """

    def __init__(self, uri: str, split: str = "train", *, infinite: bool = True, shuffle_buffer: int = 256,
                 seed: int = 0, normalization: str | None = None, start_batch: int = 0, batch_size: int = 1,
                 rank: int | None = None, world_size: int | None = None, stats: dict | None = None):
        self.uri, self.split = uri, split
        ddp_rank, ddp_world = _ddp_position()
        self.rank = ddp_rank if rank is None else rank
        self.world_size = ddp_world if world_size is None else world_size
        self.cfg = read_preprocessing_config(uri)
        self.normalizer = Normalizer.from_stats(stats or read_stats(uri), normalization or self.cfg.normalization)
        self.shards = read_manifest(storage.join(uri, split))
        self.infinite, self.shuffle_buffer, self.seed = infinite, shuffle_buffer, seed
        self.start_batch, self.batch_size = start_batch, batch_size
        for field, dim in (("proprio", self.cfg.proprio_dim), ("action", self.cfg.action_dim)):
            if self.normalizer.dim(field) != dim:
                raise ValueError(f"{uri}: stats.json field {field!r} has dimension {self.normalizer.dim(field)} "
                                 f"but preprocessing_config.yaml says {field}_dim {dim}")

    @property
    def num_samples(self) -> int:
        return sum(s.num_samples for s in self.shards)

    def _raw_stream(self, reader: int, readers: int) -> Iterator[dict]:
        for epoch in itertools.count():
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
            by_shard = len(self.shards) >= readers
            mine = order[reader::readers] if by_shard else order
            position = yielded = 0
            for s in mine:
                shard = self.shards[s]
                for sample in iter_samples(shard.uri):
                    position += 1
                    if by_shard or (position - 1) % readers == reader:
                        sample["__shard__"] = shard.uri
                        yielded += 1
                        yield sample
            if not self.infinite:
                return
            if not yielded:
                raise ShardError(f"{storage.join(self.uri, self.split)}: {self.num_samples} samples leave none for "
                                 f"reader {reader} of {readers} (DDP ranks x DataLoader workers); use fewer workers")

    def _shuffled(self, samples: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        buffer: list[dict] = []
        for sample in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            i = int(rng.integers(len(buffer)))
            buffer[i], sample = sample, buffer[i]
            yield sample
        rng.shuffle(buffer)
        yield from buffer

    def raw(self, reader: int = 0, readers: int = 1, skip: int = 0) -> Iterator[dict]:
        """Undecoded samples of one reader, shuffled, from its ``skip``-th on (skipping decodes nothing)."""
        rng = np.random.default_rng([self.seed, reader, 1])
        return itertools.islice(self._shuffled(self._raw_stream(reader, readers), rng), skip, None)

    def decode(self, raw: dict) -> dict:
        return decode_sample(raw, self.cfg, self.normalizer)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # DataLoader workers serve batches in turn starting from worker 0; after ``start_batch`` batches
        # the next one is due from role ``start_batch % workers``, so worker w takes role w + start_batch.
        role = (worker + self.start_batch) % workers
        served = (self.start_batch - role + workers - 1) // workers if self.start_batch > role else 0
        reader, readers = self.rank * workers + role, self.world_size * workers
        for raw in self.raw(reader, readers, served * self.batch_size):
            yield self.decode(raw)


def make_loader(uri: str, batch_size: int, num_workers: int = 0, *, split: str = "train", infinite: bool = True,
                shuffle_buffer: int = 256, seed: int = 0, start_batch: int = 0, normalization: str | None = None,
                pin_memory: bool = False, stats: dict | None = None) -> DataLoader:
    """A DataLoader of batches (module docstring) over ``<uri>/<split>``; ``loader.dataset`` holds the
    preprocessing config (``.cfg``) and the normaliser (``.normalizer``) to bundle with the policy."""
    dataset = RoboticsDataset(uri, split, infinite=infinite, shuffle_buffer=shuffle_buffer, seed=seed,
                              normalization=normalization, start_batch=start_batch, batch_size=batch_size,
                              stats=stats)
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                      persistent_workers=False)


def observations_to_batch(histories: list[list[Observation]], preprocessing_config: str | dict | PreprocessConfig,
                          normalizer: Normalizer) -> dict:
    """Model inputs (``images``, ``proprio``, ``instruction``, ``task``) from observation histories
    (oldest first; a short history is padded by repeating its first observation)."""
    cfg = read_preprocessing_config(preprocessing_config)
    need = cfg.history_length()
    images, proprio = [], []
    for b, history in enumerate(histories):
        if not history:
            raise ValueError(f"history {b} is empty")
        history = [history[0]] * max(0, need - len(history)) + list(history)
        last = len(history) - 1
        views = []
        for cam in cfg.cameras:
            for idx in cfg.image_indices:
                obs = history[min(last + idx, last)]
                if cam not in obs.images:
                    raise ValueError(f"history {b}: observation has no camera {cam!r} "
                                     f"(has {', '.join(sorted(obs.images)) or 'none'}); the policy was "
                                     f"trained on cameras {', '.join(cfg.cameras)}")
                views.append(decode_frame(encode_frame(obs.images[cam], cfg)))
        images.append(np.stack(views).transpose(0, 3, 1, 2))
        proprio.append(np.stack([np.asarray(o.proprio, np.float32) for o in history[last - cfg.past_steps:]]))
    return {"images": torch.from_numpy(np.ascontiguousarray(np.stack(images))),
            "proprio": torch.from_numpy(normalizer.normalize("proprio", np.stack(proprio))),
            "instruction": [h[-1].instruction for h in histories],
            "task": [h[-1].task for h in histories]}
