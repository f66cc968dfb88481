"""Worker side of preprocessing: encode episodes into samples in a scratch file, with partial stats.

Kept free of torch/webdataset imports so spawned worker processes start quickly.
"""

from __future__ import annotations

import json

import numpy as np

from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.episodes import EpisodeMeta, load_episode
from vlaforge.robotics.samples import episode_samples
from vlaforge.robotics.stats import FieldStats

FIELDS = ("proprio", "action")


def pack(sample: dict[str, str | bytes]) -> bytes:
    """A sample as one scratch record: 4-byte header length, JSON header of member sizes, payloads."""
    payloads = [v.encode("utf-8") if isinstance(v, str) else v for v in sample.values()]
    header = json.dumps({name: len(p) for name, p in zip(sample, payloads)}).encode()
    return len(header).to_bytes(4, "little") + header + b"".join(payloads)


def unpack(record: bytes) -> dict[str, bytes]:
    size = int.from_bytes(record[:4], "little")
    pos, sample = 4 + size, {}
    for name, length in json.loads(record[4:4 + size]).items():
        sample[name] = record[pos:pos + length]
        pos += length
    return sample


def _new_stats(cfg: PreprocessConfig) -> dict[str, FieldStats]:
    return {"proprio": FieldStats(cfg.proprio_dim, cfg.window), "action": FieldStats(cfg.action_dim, cfg.window)}


def encode_group(cfg: PreprocessConfig, group: list[tuple[int, EpisodeMeta, bool]], scratch: str):
    """Encode episodes into ``scratch``: returns sample records (episode index, offset, size), partial
    statistics of the episodes marked for them, and each episode's frame sizes per camera."""
    stats = _new_stats(cfg)
    records, shapes = [], {}
    with open(scratch, "wb") as f:
        for index, meta, in_stats in group:
            episode = load_episode(meta, cfg.cameras, cfg.proprio_dim, cfg.action_dim)
            shapes[index] = {cam: frames.shape[1:3] for cam, frames in episode.images.items()}
            windows, valid = [], []
            for sample, idx, ok in episode_samples(episode, cfg):
                record = pack(sample)
                records.append((index, f.tell(), len(record)))
                f.write(record)
                windows.append(idx)
                valid.append(ok)
            if in_stats:
                windows, valid = np.stack(windows), np.stack(valid)
                for name in FIELDS:
                    values = getattr(episode, name)
                    stats[name].update_steps(values)
                    stats[name].update_windows(values[windows], valid)
    return records, stats, shapes
