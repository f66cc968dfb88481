"""Image augmentation for policy training: random shifts (DrQ), applied to whole batches on device."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image by up to ``pad`` pixels in x and y (edge-replicated border), same shape and dtype.

    ``images`` is ``(..., C, H, W)``; each image gets its own integer shift, drawn uniformly from
    ``[-pad, pad]``. A policy trained on shifted frames is far less sensitive to small differences in
    where objects appear, which matters when it learns from a few dozen demonstrations.
    """
    if pad <= 0:
        return images
    *lead, C, H, W = images.shape
    flat = images.reshape(-1, C, H, W)
    n = flat.shape[0]
    padded = F.pad(flat.float(), (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(images.device)
    rows = (torch.arange(H, device=images.device)[None] + offsets[:, :1])  # (n, H)
    cols = (torch.arange(W, device=images.device)[None] + offsets[:, 1:])  # (n, W)
    index = torch.arange(n, device=images.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return shifted.to(images.dtype).reshape(*lead, C, H, W)
