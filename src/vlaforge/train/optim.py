"""AdamW (fused or foreach) without weight decay on norms, biases and embeddings; linear warmup then cosine decay."""

from __future__ import annotations

import math

import torch

from vlaforge.train.config import TrainConfig


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters by (weight decay, ``lr_scale``): a model's ``lr_scales()`` maps parameter-name
    prefixes to learning-rate multipliers (the training loop sets each group's rate to ``lr * lr_scale``)."""
    scales = model.lr_scales() if hasattr(model, "lr_scales") else {}
    groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        scale = next((s for prefix, s in scales.items() if name.startswith(prefix)), 1.0)
        decays = not (p.ndim < 2 or "embed" in name or "norm" in name)
        groups.setdefault((decays, scale), []).append(p)
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
            for (decays, scale), params in groups.items() if params]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel over all parameters) where the device has it, else foreach."""
    from torch.distributed.tensor import DTensor

    groups = param_groups(model, cfg.weight_decay)
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16)
                                 and not isinstance(p, DTensor) for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused, foreach=not fused)


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate at optimizer step ``step`` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def schedule_step(step: int, total_steps: int, elapsed_s: float, cfg: TrainConfig) -> int:
    """The step the schedule is at: with a wall-clock budget, the step or the elapsed share of the
    budget, whichever is further along, so a run stopped by ``max_minutes`` ends with a decayed rate."""
    if not cfg.max_minutes:
        return step
    return max(step, int(total_steps * elapsed_s / (60 * cfg.max_minutes)))
