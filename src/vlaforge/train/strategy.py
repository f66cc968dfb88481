"""How the loop runs a model: fused loss, activation checkpointing, torch.compile, DDP or FSDP2.

Transformer blocks are found generically: every module whose class is named in some module's
``_no_split_modules`` (the Hugging Face convention, which vlaforge's own models follow too), else every
element of an ``nn.ModuleList``. They are the units that FSDP2 shards, activation checkpointing
recomputes and torch.compile compiles (identical blocks share one compiled graph).
"""

from __future__ import annotations

import logging
import os
import shutil

import torch
import torch.distributed as dist
import torch.nn as nn

from vlaforge.train.config import TrainConfig

log = logging.getLogger(__name__)
FORWARD_METHODS = ("loss", "caption_loss", "backbone_states", "cacheable_states")  # called on the model besides forward


def block_modules(model: nn.Module) -> list[nn.Module]:
    """The model's transformer blocks, outermost first (a block inside a block is not listed)."""
    names = {n for m in model.modules() for n in getattr(m, "_no_split_modules", None) or ()}
    if names:
        found = [m for m in model.modules() if type(m).__name__ in names]
    else:
        found = [child for m in model.modules() if isinstance(m, nn.ModuleList) for child in m]
    inner = {id(sub) for m in found for sub in m.modules() if sub is not m}
    return [m for m in found if id(m) not in inner]


def check_compiler(device: torch.device) -> None:
    """torch.compile (inductor) builds C++ on CPU and Triton launchers on GPU: both need a C compiler."""
    names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"] if device.type == "cpu" else ["gcc", "cc", "clang"]
    if not any(n and shutil.which(n) for n in names):
        raise RuntimeError(f"train.compile=true needs a {'C++' if device.type == 'cpu' else 'C'} compiler for "
                           f"torch.compile on {device.type}, and none of {', '.join(n for n in names if n)} is on "
                           f"PATH: install one (Debian: g++) or set train.compile=false")


def needs_process_group(cfg: TrainConfig, world: int) -> bool:
    return world > 1 or cfg.strategy == "fsdp"


def init_process_group(cfg: TrainConfig, world: int) -> bool:
    """Join the torchrun process group where one is needed. FSDP in a single process without torchrun (one
    GPU, ``kfp.local``) gets a one-process group of its own: returns True then (the caller destroys it)."""
    if not needs_process_group(cfg, world) or dist.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if "MASTER_ADDR" in os.environ:
        dist.init_process_group(backend)
        return False
    if world > 1:
        raise RuntimeError(f"train.strategy={cfg.strategy} with WORLD_SIZE={world} needs a torch.distributed "
                           "process group, but MASTER_ADDR/MASTER_PORT are not set: launch the ranks with torchrun")
    store = dist.TCPStore("127.0.0.1", 0, 1, is_master=True)  # a free port of this host
    dist.init_process_group(backend, store=store, rank=0, world_size=1)
    log.info("train.strategy=fsdp in one process: using a one-process %s group", backend)
    return True


def mixed_precision(cfg: TrainConfig, device: torch.device):
    """FSDP2 policy: bf16 compute with fp32 gradient reduction on GPU (unless precision fp32); fp32 on CPU."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type == "cuda" and cfg.precision in ("auto", "bf16"):
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def prepare(model: nn.Module, cfg: TrainConfig, device: torch.device, world: int) -> nn.Module:
    """Apply the training settings to ``model`` (on ``device``) in place; returns what the loop calls.

    Under ddp with several ranks that is a DistributedDataParallel wrapper; otherwise ``model`` itself
    (under fsdp its parameters become sharded DTensors).
    """
    for module in model.modules():
        if hasattr(module, "fused_loss"):
            module.fused_loss = cfg.fused_loss
    blocks = block_modules(model)
    if cfg.activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            apply_activation_checkpointing, checkpoint_wrapper)

        block_ids = {id(b) for b in blocks}
        apply_activation_checkpointing(model, checkpoint_wrapper_fn=checkpoint_wrapper,
                                       check_fn=lambda m: id(m) in block_ids)
        blocks = block_modules(model)  # the wrappers hold the same block objects
    if cfg.compile:
        check_compiler(device)
        for block in blocks:
            block.compile()
    if cfg.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        policy = mixed_precision(cfg, device)
        for block in blocks:
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        for name in FORWARD_METHODS:
            if callable(getattr(model, name, None)):
                register_fsdp_forward_method(model, name)
        log.info("FSDP2: %d blocks sharded over %d ranks", len(blocks), world)
        return model
    if world > 1:
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model
