"""The training loop every stage uses: what differs per stage is the model and the :class:`TrainTask`.

Handles gradient accumulation from global/micro batch sizes, clipping, warmup+cosine, bf16 autocast
on GPU, DDP or FSDP2 under torchrun (with torch.compile, fused loss and activation checkpointing:
:mod:`vlaforge.train.strategy`), EMA, periodic validation and checkpoints (retried with backoff; sharded
under FSDP, resumable on another world size), automatic resume from the newest checkpoint, a final
checkpoint on SIGTERM (preemption) and a clear error on a non-finite loss.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from typing import Any, Protocol

import torch
import torch.distributed as dist
from tqdm import tqdm

from vlaforge import storage
from vlaforge.train import checkpoint as ckpt
from vlaforge.train import strategy
from vlaforge.train.config import TrainConfig
from vlaforge.train.metrics import MetricsLogger
from vlaforge.train.optim import build_optimizer, lr_at, schedule_step

log = logging.getLogger(__name__)


class Preempted(RuntimeError):
    """Training stopped on SIGTERM after writing a checkpoint; restarting resumes from it."""


class TrainTask(Protocol):
    """The stage-specific half of training."""

    stage: str
    tokens_per_sample: int  # for token budgets and tokens/s (0 when samples are not token windows)

    def train_batches(self, start_sample: int, rank: int, world: int, micro_batch: int) -> Iterator[Any]:
        """Endless, deterministic micro-batches of this rank, skipping the first ``start_sample`` samples."""

    def val_batches(self, micro_batch: int) -> Iterator[Any]:
        """Validation micro-batches (finite; the loop takes at most ``val_batches``)."""

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Mean loss of one micro-batch."""


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            ema[key].mul_(decay).add_(value.float(), alpha=1 - decay)
        else:
            ema[key].copy_(value)


def total_steps(cfg: TrainConfig, tokens_per_sample: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    if cfg.budget_tokens:
        if not tokens_per_sample:
            raise ValueError("train.budget_tokens needs token samples; use train.budget_samples or max_steps")
        return math.ceil(cfg.budget_tokens / (cfg.global_batch_size * tokens_per_sample))
    return math.ceil(cfg.budget_samples / cfg.global_batch_size)


class _SigtermFlag:
    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, *_):
        log.warning("SIGTERM received: finishing this step and writing a checkpoint")
        self.raised = True

    def __exit__(self, *_):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def any_rank(flags: list[bool], world: int, device: torch.device) -> list[bool]:
    """Each flag OR-ed over all ranks, so that every rank takes the same branch (one alone would hang)."""
    if world == 1:
        return flags
    values = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def mean_over_ranks(value: float, world: int, device: torch.device) -> float:
    if world == 1:
        return value
    total = torch.tensor([value], device=device)
    dist.all_reduce(total)
    return float(total) / world


def _autocast(cfg: TrainConfig, device: torch.device):
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: TrainTask, cfg: TrainConfig, device: torch.device) -> float:
    model.eval()
    losses = []
    for i, batch in enumerate(task.val_batches(cfg.micro_batch_size)):
        if i >= cfg.val_batches:
            break
        with _autocast(cfg, device):
            losses.append(float(task.loss(model, to_device(batch, device))))
    model.train()
    return sum(losses) / len(losses) if losses else float("nan")


def train(model: torch.nn.Module, task: TrainTask, cfg: TrainConfig, out_uri: str, model_config: dict) -> dict:
    """Train ``model`` on ``task`` and write the final model to ``out_uri``; returns a summary."""
    cfg.validate()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    own_group = strategy.init_process_group(cfg, world)
    if cfg.global_batch_size % (cfg.micro_batch_size * world):
        raise ValueError(f"train.global_batch_size={cfg.global_batch_size} is not a multiple of "
                         f"micro_batch_size x world_size = {cfg.micro_batch_size} x {world}")
    accum = cfg.global_batch_size // (cfg.micro_batch_size * world)
    device = _device()
    model.to(device)
    raw_model = model
    model = strategy.prepare(model, cfg, device, world)
    sharded = cfg.strategy == "fsdp"
    optimizer = build_optimizer(raw_model, cfg)
    steps = total_steps(cfg, task.tokens_per_sample)
    ckpt_dir = cfg.checkpoint_dir or storage.join(out_uri, "checkpoints")
    is_main = rank == 0
    metrics = MetricsLogger(task.stage, out_uri, enabled=is_main)

    step, elapsed_before = 0, 0.0
    ema = {k: v.detach().clone().float() for k, v in raw_model.state_dict().items()} if cfg.ema_decay > 0 else None
    resume_from = ckpt.latest_checkpoint(ckpt_dir)
    if resume_from:
        if sharded != ckpt.is_sharded(resume_from):
            raise ValueError(f"{resume_from} is a {'sharded' if not sharded else 'single-file'} checkpoint, "
                             f"written under another train.strategy than {cfg.strategy!r}; resume with that "
                             f"strategy or set train.checkpoint_dir to a new folder")
        if sharded:
            state, saved_ema = ckpt.load_sharded(resume_from, raw_model, optimizer, ema), None
        else:
            state, saved_ema = ckpt.load_checkpoint(resume_from, raw_model, optimizer)
        step, elapsed_before = state["step"], state.get("elapsed_s", 0.0)
        metrics.restore(state.get("history", []))
        if ema is not None and saved_ema is not None:
            ema = {k: v.to(device) for k, v in saved_ema.items()}
        log.info("resumed %s from %s at step %d/%d", task.stage, resume_from, step, steps)

    def save(at_step: int) -> None:
        state = {"step": at_step, "samples_seen": at_step * cfg.global_batch_size,
                 "elapsed_s": elapsed_before + time.perf_counter() - t_start, "history": metrics.history}
        if sharded:  # every rank writes its shards
            ckpt.with_retries(lambda: ckpt.save_sharded(ckpt_dir, at_step, raw_model, optimizer, state,
                                                        model_config, ema, keep=cfg.keep_checkpoints),
                              f"checkpoint at step {at_step}", cfg.ckpt_retries)
        elif is_main:
            ckpt.with_retries(lambda: ckpt.save_checkpoint(ckpt_dir, at_step, raw_model, optimizer, state,
                                                           model_config, ema, keep=cfg.keep_checkpoints),
                              f"checkpoint at step {at_step}", cfg.ckpt_retries)
        if is_main:
            metrics.flush()

    per_rank_start = step * accum * cfg.micro_batch_size
    t_start = time.perf_counter()  # data preparation in train_batches (e.g. decoding into memory) counts
    batches = task.train_batches(per_rank_start, rank, world, cfg.micro_batch_size)
    # Under DDP validation runs on rank 0 alone, so on the unwrapped model: a DDP forward would wait for the
    # other ranks. Under FSDP every rank takes part (each forward gathers the shards); rank 0 logs.
    validates = is_main or sharded
    if step == 0 and validates:
        metrics.log(0, {"val_loss": evaluate(raw_model, task, cfg, device)})
    model.train()
    last_loss = float("nan")
    window_t, window_wait, window_steps = time.perf_counter(), 0.0, 0
    with _SigtermFlag() as sigterm, tqdm(total=steps, initial=step, desc=task.stage, unit="step",
                                         disable=not is_main, mininterval=5.0) as bar:
        while step < steps:
            lr = lr_at(schedule_step(step, steps, elapsed_before + time.perf_counter() - t_start, cfg), steps, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            loss_sum = 0.0
            for micro in range(accum):
                t_wait = time.perf_counter()
                batch = to_device(next(batches), device)
                window_wait += time.perf_counter() - t_wait
                with _grad_sync(model, sharded, world, micro == accum - 1), _autocast(cfg, device):
                    loss = task.loss(model, batch) / accum
                    loss.backward()
                loss_sum += float(loss.detach())
            loss_sum = mean_over_ranks(loss_sum, world, device)  # a NaN on any rank reaches every rank
            if not math.isfinite(loss_sum):
                last = ckpt.latest_checkpoint(ckpt_dir)
                raise FloatingPointError(
                    f"{task.stage}: non-finite loss ({loss_sum}) at step {step + 1}; lower train.lr or check the "
                    f"data. Last good checkpoint: {last or 'none'} (untouched); outputs were not overwritten.")
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                update_ema(ema, raw_model, cfg.ema_decay)
            step += 1
            last_loss = loss_sum
            window_steps += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == steps:
                dt = time.perf_counter() - window_t
                samples = window_steps * cfg.global_batch_size
                values = {"loss": last_loss, "lr": lr, "samples_per_s": samples / dt,
                          "step_time_s": dt / window_steps, "data_wait_s": window_wait / window_steps}
                if task.tokens_per_sample:
                    values["tokens_per_s"] = samples * task.tokens_per_sample / dt
                metrics.log(step, values)
                window_t, window_wait, window_steps = time.perf_counter(), 0.0, 0
            if validates and (step % cfg.val_every == 0 or step == steps):
                metrics.log(step, {"val_loss": evaluate(raw_model, task, cfg, device)})
            out_of_time = bool(cfg.max_minutes) and (
                elapsed_before + time.perf_counter() - t_start) > 60 * cfg.max_minutes
            preempted, out_of_time = any_rank([sigterm.raised, out_of_time], world, device)
            if preempted:
                save(step)
                raise Preempted(f"{task.stage}: stopped by SIGTERM at step {step}; checkpoint saved in {ckpt_dir}")
            if step % cfg.ckpt_every == 0 and step < steps:
                save(step)
            if out_of_time:
                log.warning("%s: wall-clock budget of %.1f min reached at step %d/%d", task.stage,
                            cfg.max_minutes, step, steps)
                break
    weights = ckpt.full_state_dict(raw_model, ema) if sharded else None  # collective: every rank
    summary = _finish(raw_model, ema, weights, out_uri, model_config, metrics, step, steps,
                      elapsed_before + time.perf_counter() - t_start) if is_main else {}
    if dist.is_initialized():
        dist.barrier()
    if own_group:
        dist.destroy_process_group()
    return summary


def _grad_sync(model: torch.nn.Module, sharded: bool, world: int, last_micro: bool):
    """Reduce gradients over ranks on the last micro-batch of a step only."""
    if sharded:
        model.set_requires_gradient_sync(last_micro)
        return contextlib.nullcontext()
    return contextlib.nullcontext() if (world == 1 or last_micro) else model.no_sync()


def _finish(model, ema, weights, out_uri, model_config, metrics, step, steps, elapsed) -> dict:
    """Write the final model (``weights``: the gathered state dict of a sharded model) and the summary."""
    if ema is not None and weights is None:
        model.load_state_dict({k: v.to(dtype=model.state_dict()[k].dtype) for k, v in ema.items()})
    metrics.flush()
    vals = [r["val_loss"] for r in metrics.history if "val_loss" in r]
    losses = [r["loss"] for r in metrics.history if "loss" in r]
    rates = [r["tokens_per_s"] for r in metrics.history if "tokens_per_s" in r]
    srates = [r["samples_per_s"] for r in metrics.history if "samples_per_s" in r]
    summary = {"steps": step, "planned_steps": steps, "train_seconds": elapsed,
               "initial_val_loss": vals[0] if vals else float("nan"),
               "final_val_loss": vals[-1] if vals else float("nan"),
               "final_loss": losses[-1] if losses else float("nan"),
               "tokens_per_s": sum(rates) / len(rates) if rates else 0.0,
               "samples_per_s": sum(srates) / len(srates) if srates else 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        if weights is not None:
            ckpt.save_full_weights(weights, tmp)
        else:
            ckpt.save_weights(model, tmp)
        with open(os.path.join(tmp, ckpt.CONFIG), "w") as f:
            json.dump(model_config, f, indent=2)
        with open(os.path.join(tmp, "train_summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        storage.upload_dir(tmp, out_uri)
    log.info("%s done: %s", metrics.stage, json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                       for k, v in summary.items()}))
    return summary
