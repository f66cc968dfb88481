"""Tiny synthetic raw-episode datasets, made with numpy (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from vlaforge.robotics.episodes import EpisodeWriter


def synthetic_episode(rng: np.random.Generator, length: int, cameras=("corner", "behindGripper"),
                      size: int = 16, action_dim: int = 4, proprio_dim: int = 4) -> dict:
    """Frames whose colour encodes the step (so tests can tell which frame a sample holds)."""
    t = np.arange(length)
    images = {}
    for c, cam in enumerate(cameras):
        frames = np.zeros((length, size, size, 3), np.uint8)
        frames[..., 0] = (t * 8 % 256)[:, None, None]
        frames[..., 1] = 40 + 60 * c
        frames[..., 2] = rng.integers(0, 20)
        images[cam] = frames
    return {"images": images,
            "proprio": rng.normal(0.5, 0.2, (length, proprio_dim)).astype(np.float32) + t[:, None] * 0.01,
            "action": rng.uniform(-1, 1, (length, action_dim)).astype(np.float32),
            "success": t >= length - 3}


def write_dataset(out, n_episodes: int = 6, lengths=(9, 14), seed: int = 0, prefix: str = "reach-v3",
                  **episode_kwargs) -> str:
    rng = np.random.default_rng(seed)
    writer = EpisodeWriter(str(out))
    for i in range(n_episodes):
        ep = synthetic_episode(rng, int(rng.integers(lengths[0], lengths[1] + 1)), **episode_kwargs)
        writer.write(f"{prefix}-{i:06d}", prefix, f"do {prefix} number {i}", ep["images"], ep["proprio"],
                     ep["action"], ep["success"], seed=i)
    writer.close()
    return str(out)


@pytest.fixture
def raw_dataset(tmp_path):
    return write_dataset(tmp_path / "demos")
