"""Robotics data loader throughput against training consumption, measured in the same run.

Builds synthetic raw episodes (Meta-World-like: 2 cameras, 64x64 frames, 4-d proprio/action),
preprocesses them, then measures:

- preprocessing samples/s (episode encoding with worker processes + shard writing);
- the consumer: samples/s of a training step (forward + backward + AdamW) of a stand-in model made
  of the project's ViT over every view plus an MLP action head on a fixed batch. The real VLA adds
  a language model and the action expert, so its steps are slower: if the loader keeps up with this
  stand-in it keeps up with the VLA on the same device;
- the loader: samples/s of ``make_loader`` batches (JPEG decode, normalisation, collation) for each
  DataLoader worker count, after a warm-up, and the ratio loader / consumer (> 1: not the bottleneck);
- the in-memory split (``vla.data_in_memory``): its one-off decode in samples/s, then its batches/s.

    .venv/bin/python bench/robotics_loader.py [--workers 0 1 2] [--batches 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn

from vlaforge.models.vit import ViT, ViTConfig, to_model_images
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.episodes import EpisodeWriter
from vlaforge.robotics.loader import make_loader
from vlaforge.robotics.memory import InMemorySamples
from vlaforge.robotics.preprocess import preprocess


def write_episodes(out: str, episodes: int, length: int, size: int) -> None:
    """Smooth moving gradients plus noise: JPEG sizes like rendered scenes, not like flat colour."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    writer = EpisodeWriter(out)
    for e in range(episodes):
        images = {}
        for c, cam in enumerate(("corner", "behindGripper")):
            phase = np.linspace(0, 2 * np.pi, length)[:, None, None]
            base = 127 + 100 * np.sin(6 * xx[None] + 4 * yy[None] + phase + c)
            frames = base[..., None] + rng.normal(0, 12, (length, size, size, 3))
            images[cam] = np.clip(frames, 0, 255).astype(np.uint8)
        path = np.cumsum(rng.normal(0, 0.01, (length, 4)), 0).astype(np.float32)
        writer.write(f"bench-{e:06d}", "bench", "reach the goal", images, path, np.diff(path, axis=0, prepend=path[:1]))
    writer.close()


class StandIn(nn.Module):
    """ViT over each view + MLP from pooled features and proprio to the action chunk."""

    def __init__(self, image_size: int, views: int, proprio: int, chunk: int, action_dim: int):
        super().__init__()
        self.vit = ViT(ViTConfig(image_size=image_size, patch_size=8, d_model=96, n_layers=4, n_heads=4))
        self.head = nn.Sequential(nn.Linear(views * 96 + proprio, 256), nn.GELU(), nn.Linear(256, chunk * action_dim))

    def loss(self, batch: dict) -> torch.Tensor:
        B, V = batch["images"].shape[:2]
        feats = self.vit(to_model_images(batch["images"].flatten(0, 1))).mean(1).view(B, V * 96)
        pred = self.head(torch.cat([feats, batch["proprio"].flatten(1)], 1)).view_as(batch["actions"])
        err = ((pred - batch["actions"]) ** 2).mean(-1)
        return (err * batch["action_mask"]).sum() / batch["action_mask"].sum()


def consumer_rate(batch: dict, device: str, steps: int) -> float:
    cfg_views, chunk, action_dim = batch["images"].shape[1], batch["actions"].shape[1], batch["actions"].shape[2]
    model = StandIn(batch["images"].shape[-1], cfg_views, batch["proprio"][0].numel(), chunk, action_dim).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def step():
        opt.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        opt.step()

    for _ in range(2):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * len(batch["instruction"]) / (time.perf_counter() - start)


def loader_rate(uri: str, batch_size: int, workers: int, batches: int) -> float:
    it = iter(make_loader(uri, batch_size, workers, shuffle_buffer=256))
    for _ in range(max(2, workers)):  # worker start-up and the shuffle buffer's fill are not steady state
        next(it)
    start = time.perf_counter()
    n = sum(len(b["instruction"]) for b in itertools.islice(it, batches))
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=12)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--steps", type=int, default=5, help="consumer training steps timed")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the consumer (CPU)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-robotics-") as tmp:
        write_episodes(f"{tmp}/raw", args.episodes, args.length, args.image_size)
        summary = preprocess(PreprocessConfig(future_steps=8, val_fraction=0.0, num_workers=2, samples_per_shard=128),
                             [f"{tmp}/raw"], f"{tmp}/out")
        print(f"preprocess: {summary['train_samples']} samples in {summary['seconds']:.2f}s "
              f"= {summary['samples_per_s']:.0f} samples/s (2 worker processes)")
        batch = next(iter(make_loader(f"{tmp}/out", args.batch_size, 0)))
        print(f"batch: images {tuple(batch['images'].shape)}, proprio {tuple(batch['proprio'].shape)}, "
              f"actions {tuple(batch['actions'].shape)}")
        consume = consumer_rate(batch, args.device, args.steps)
        print(f"consumer (ViT stand-in train step, {args.device}, {args.threads} thread(s)): {consume:.0f} samples/s "
              f"(baseline)")
        for workers in args.workers:
            rate = loader_rate(f"{tmp}/out", args.batch_size, workers, args.batches)
            print(f"loader num_workers={workers}: {rate:.0f} samples/s = {rate / consume:.1f}x consumer")
        for workers in args.workers:
            start = time.perf_counter()
            samples = InMemorySamples(f"{tmp}/out", workers=workers)
            decode = len(samples) / (time.perf_counter() - start)
            it = samples.batches(args.batch_size)
            next(it)
            start = time.perf_counter()
            n = sum(len(b["instruction"]) for b in itertools.islice(it, args.batches))
            rate = n / (time.perf_counter() - start)
            print(f"in memory, decoded with num_workers={workers} at {decode:.0f} samples/s once: batches at "
                  f"{rate:.0f} samples/s = {rate / consume:.1f}x consumer")


if __name__ == "__main__":
    main()
