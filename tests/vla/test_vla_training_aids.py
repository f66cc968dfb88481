"""Random-shift augmentation and the wall-clock-aware learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from vlaforge.robotics.augment import random_shift
from vlaforge.train.config import TrainConfig
from vlaforge.train.optim import lr_at, schedule_step


def _shift_of(original: torch.Tensor, shifted: torch.Tensor, pad: int) -> tuple[int, int]:
    """The (dy, dx) for which ``shifted`` is ``original`` moved by (dy, dx) with an edge-replicated border."""
    H, W = original.shape[-2:]
    padded = torch.nn.functional.pad(original[None].float(), (pad,) * 4, mode="replicate")[0]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            if torch.equal(padded[..., dy:dy + H, dx:dx + W], shifted.float()):
                return dy - pad, dx - pad
    raise AssertionError("not a shifted copy")


def test_random_shift_moves_each_image_within_the_pad():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 2, 3, 16, 16), dtype=torch.uint8, generator=g)
    out = random_shift(images, 3, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    shifts = {_shift_of(images[b, v], out[b, v], 3) for b in range(6) for v in range(2)}
    assert all(abs(dy) <= 3 and abs(dx) <= 3 for dy, dx in shifts)
    assert len(shifts) > 4  # every image draws its own shift
    assert torch.equal(random_shift(images, 0), images)


def test_schedule_follows_the_wall_clock_budget():
    cfg = TrainConfig(lr=1e-3, warmup_steps=0, max_steps=100, max_minutes=1.0)
    assert schedule_step(10, 100, 30.0, cfg) == 50  # half the time gone: half-way down the schedule
    assert schedule_step(80, 100, 30.0, cfg) == 80  # steps ahead of time: the step count leads
    assert lr_at(schedule_step(20, 100, 60.0, cfg), 100, cfg) == pytest.approx(cfg.lr * cfg.min_lr_ratio)
    no_budget = TrainConfig(max_steps=100)
    assert schedule_step(10, 100, 1e6, no_budget) == 10
