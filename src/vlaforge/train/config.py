"""Training hyper-parameters shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("ddp", "fsdp")


@dataclass
class TrainConfig:
    global_batch_size: int = 16  # samples per optimizer step across all ranks
    micro_batch_size: int = 16  # samples per forward pass on one device (gradient accumulation fills the rest)
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    max_steps: int = 0  # budget in optimizer steps; else budget_tokens / budget_samples decide
    budget_tokens: int = 0
    budget_samples: int = 0
    max_minutes: float = 0.0  # wall-clock budget (0 = none); the LR schedule follows whichever budget runs out first
    val_every: int = 50
    val_batches: int = 4
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    ema_decay: float = 0.0  # > 0 keeps an exponential moving average of the weights, saved as the final model
    seed: int = 0
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or fp32 / bf16
    num_threads: int = 0  # torch CPU threads (0 = torch default)
    checkpoint_dir: str = ""  # where checkpoints go (empty = <output>/checkpoints); keep it stable across pod restarts
    strategy: str = "ddp"  # data parallelism over ranks: ddp (replicated model) or fsdp (FSDP2, sharded per block)
    compile: bool = False  # torch.compile each transformer block (needs a C++ compiler on CPU)
    fused_loss: bool = False  # chunked linear + cross-entropy for LM heads: the full logits are never stored
    activation_checkpointing: bool = False  # recompute each block's activations in backward (less memory)
    ckpt_retries: int = 4  # attempts at writing a checkpoint (exponential backoff) before training goes on without it

    def validate(self) -> None:
        if self.global_batch_size <= 0 or self.micro_batch_size <= 0:
            raise ValueError("train.global_batch_size and train.micro_batch_size must be positive")
        if not (self.max_steps or self.budget_tokens or self.budget_samples):
            raise ValueError("set one budget: train.max_steps, train.budget_tokens or train.budget_samples")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"train.precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"train.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.ckpt_retries < 1:
            raise ValueError(f"train.ckpt_retries must be at least 1, got {self.ckpt_retries}")
