"""Flow matching on action chunks: a straight path from noise ``x0`` (t = 0) to actions ``x1`` (t = 1).

The expert predicts the velocity ``x1 - x0``, or with ``prediction="actions"`` the clean chunk ``x1``
itself (x-prediction; the velocity is then ``(x1_hat - x_t) / (1 - t)``), a lower-variance target
whose error is the policy's own. Inference integrates the velocity from noise in Euler steps.
"""

from __future__ import annotations

import math

import torch


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow time t in [0, 1], (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def flow_matching_loss(predict, x1: torch.Tensor, t: torch.Tensor, mask: torch.Tensor,
                       prediction: str) -> torch.Tensor:
    """Masked flow-matching MSE of ``predict(x_t, t)`` on the straight path from noise to ``x1``
    (B, chunk, A): the target is the velocity ``x1 - x0``, or ``x1`` itself for ``prediction == "actions"``."""
    x0 = torch.randn_like(x1)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
    err = (predict(xt, t).float() - (x1 if prediction == "actions" else x1 - x0)).pow(2).mean(-1)
    mask = mask.float()
    return (err * mask).sum() / mask.sum().clamp(min=1)


def integrate_flow(predict, x: torch.Tensor, steps: int, prediction: str) -> torch.Tensor:
    """Euler-integrate ``predict(x_t, t)`` from the noise ``x`` (t = 0) to actions (t = 1) in ``steps`` steps."""
    for i in range(steps):
        out = predict(x, torch.full((x.shape[0],), i / steps, device=x.device))
        velocity = (out - x) / (1 - i / steps) if prediction == "actions" else out
        x = x + velocity / steps
    return x


def flow_time(n: int, beta: bool, device) -> torch.Tensor:
    """Training flow times in [0, 1] (x_t runs from noise at 0 to actions at 1): ``1 - Beta(1.5, 1)``
    puts more weight on the noisy end, where the expert must read the observation (pi0); else uniform."""
    if beta:
        return 1 - torch.distributions.Beta(1.5, 1.0).sample((n,)).to(device)
    return torch.rand(n, device=device)
