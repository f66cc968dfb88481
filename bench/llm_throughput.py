"""LLM training throughput (tokens/s) of the preset model shapes against Hugging Face Llama, same run.

For each preset (default: tiny and 11m) it builds the project's decoder from the preset's ``llm.model``
section (vocabulary size and window length from its ``tokenize`` section) and a transformers
``LlamaForCausalLM`` of the same shape (d_model, layers, heads, SwiGLU width, vocabulary, tied or not,
random weights, SDPA attention; Llama has no qk-norm). A training step is what the loop runs: the model
prepared by :func:`vlaforge.train.strategy.prepare` with the preset's ``train`` settings, the stage's
loss, backward, gradient clipping and the loop's AdamW (fused where the device has it). One row per
lever: ``plain`` (fused loss and compile off), ``fused_loss``, ``compile``, both, and ``preset`` (the
preset's own settings: what ``vlaforge llm-pretrain`` runs). HF Llama trains with the plain PyTorch
recipe: logits, ``F.cross_entropy``, ``torch.optim.AdamW`` defaults. All models take turns, ``--rounds``
rounds of ``--steps`` steps each after warm-up, so every row sees the same machine load; each row's
ratio is the median over rounds of (ours / HF of the same round); > 1: ours is faster.

On a CUDA device it also measures the ``--gpu-preset`` (default 410m: seq 2048, bf16, fsdp + compile
in a one-process group) and prints tokens/s, MFU (model FLOPs 6N + attention over the card's dense
bf16 peak) and peak memory.

    .venv/bin/python bench/llm_throughput.py [--presets tiny 11m] [--steps 5] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch
import torch.nn.functional as F

from vlaforge.config import load
from vlaforge.data.tokenize import TokenizeConfig
from vlaforge.models.llm import LLMConfig, Transformer
from vlaforge.stages.llm_pretrain import LLMStageConfig
from vlaforge.train import strategy
from vlaforge.train.config import TrainConfig
from vlaforge.train.optim import build_optimizer, param_groups

LEVERS = {"plain": {"fused_loss": False, "compile": False}, "fused_loss": {"fused_loss": True, "compile": False},
          "compile": {"fused_loss": False, "compile": True}, "fused+compile": {"fused_loss": True, "compile": True}}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H100 PCIe": 756.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense


def preset_shape(preset: str) -> tuple[LLMConfig, int, TrainConfig]:
    """Model config (vocabulary from the tokenize section), window length and train settings of ``preset``."""
    stage = load(LLMStageConfig, preset, None, "llm")
    tok = load(TokenizeConfig, preset, None, "tokenize")
    cfg = dataclasses.replace(stage.model, vocab_size=tok.vocab_size, max_seq_len=max(stage.model.max_seq_len,
                                                                                       tok.seq_len))
    return cfg, tok.seq_len, stage.train


def hf_llama(cfg: LLMConfig) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_dim,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.kv_heads, max_position_embeddings=cfg.max_seq_len,
                         rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
                         tie_word_embeddings=cfg.tie_embeddings, attn_implementation="sdpa")
    return LlamaForCausalLM(config)


class Trainer:
    """One model, its optimizer and a fixed batch; ``run(n)`` takes ``n`` training steps and returns seconds."""

    def __init__(self, model, loss_of, optimizer, batch: torch.Tensor, train_cfg: TrainConfig):
        self.model, self.loss_of, self.optimizer, self.batch = model, loss_of, optimizer, batch
        self.autocast = (torch.autocast(batch.device.type, dtype=torch.bfloat16)
                         if train_cfg.precision == "bf16" or (train_cfg.precision == "auto" and batch.is_cuda)
                         else None)
        self.params = sum(p.numel() for p in model.parameters())

    def run(self, steps: int) -> float:
        if self.batch.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            if self.autocast is not None:
                with self.autocast:
                    loss = self.loss_of(self.model, self.batch)
            else:
                loss = self.loss_of(self.model, self.batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.batch.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start


def ours(cfg: LLMConfig, train_cfg: TrainConfig, batch: torch.Tensor, world: int = 1) -> Trainer:
    """The project's step as the llm_pretrain stage runs it under ``train_cfg``."""
    model = Transformer(dataclasses.replace(cfg)).to(batch.device)
    model.train()
    wrapped = strategy.prepare(model, train_cfg, batch.device, world)
    return Trainer(wrapped, lambda m, b: m(b[:, :-1], b[:, 1:]), build_optimizer(model, train_cfg), batch, train_cfg)


def hf(cfg: LLMConfig, train_cfg: TrainConfig, batch: torch.Tensor) -> Trainer:
    """HF Llama with the plain PyTorch recipe (logits + cross-entropy, default AdamW)."""
    model = hf_llama(cfg).to(batch.device).train()
    optimizer = torch.optim.AdamW(param_groups(model, train_cfg.weight_decay), lr=train_cfg.lr,
                                  betas=(train_cfg.beta1, train_cfg.beta2))

    def loss_of(m, b):
        logits = m(input_ids=b[:, :-1]).logits
        return F.cross_entropy(logits.float().flatten(0, 1), b[:, 1:].reshape(-1))

    return Trainer(model, loss_of, optimizer, batch, train_cfg)


def bench_preset(preset: str, steps: int, rounds: int, warmup: int, levers: list[str]) -> dict:
    cfg, seq_len, train_cfg = preset_shape(preset)
    torch.manual_seed(0)
    batch = torch.randint(0, cfg.vocab_size, (train_cfg.micro_batch_size, seq_len + 1))
    settings = {name: dataclasses.replace(train_cfg, strategy="ddp", **LEVERS[name]) for name in levers}
    settings["preset"] = dataclasses.replace(train_cfg, strategy="ddp")
    trainers = {"hf_llama": hf(cfg, train_cfg, batch)}
    trainers.update({name: ours(cfg, s, batch) for name, s in settings.items()})
    for trainer in trainers.values():
        trainer.run(warmup)  # includes torch.compile's compilation
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name].append(trainer.run(steps))
    tokens = steps * train_cfg.micro_batch_size * seq_len
    rows = {name: {"tokens_per_s": tokens / statistics.median(t),
                   "ratio": statistics.median(h / o for h, o in zip(times["hf_llama"], t))}
            for name, t in times.items()}
    preset_levers = "+".join(k for k in ("fused_loss", "compile") if getattr(train_cfg, k)) or "none"
    return {"preset": preset, "shape": f"d={cfg.d_model} L={cfg.n_layers} H={cfg.n_heads} ffn={cfg.ffn_dim} "
                                       f"V={cfg.vocab_size} T={seq_len} B={train_cfg.micro_batch_size}",
            "preset_levers": preset_levers, "params": trainers["preset"].params,
            "hf_params": trainers["hf_llama"].params, "rows": rows}


def model_flops_per_token(cfg: LLMConfig, seq_len: int) -> float:
    """Training FLOPs per token: 6 x (parameters outside the input embedding) + attention's 12 L d T."""
    head = cfg.vocab_size * cfg.d_model
    attn = cfg.d_model * (cfg.n_heads + 2 * cfg.kv_heads) * (cfg.d_model // cfg.n_heads) + cfg.d_model ** 2
    block = attn + 3 * cfg.d_model * cfg.ffn_dim
    return 6 * (cfg.n_layers * block + head) + 12 * cfg.n_layers * cfg.d_model * seq_len


def peak_bf16_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak from its name (the longest known model name in it), or None."""
    known = [k for k in PEAK_BF16_TFLOPS if k in device_name]
    return PEAK_BF16_TFLOPS[max(known, key=len)] if known else None


def gpu_shape(preset: str) -> tuple[LLMConfig, int, TrainConfig]:
    """``preset``'s shape with the settings the GPU row measures: bf16, fsdp, compile (fused loss as set)."""
    cfg, seq_len, train_cfg = preset_shape(preset)
    return cfg, seq_len, dataclasses.replace(train_cfg, strategy="fsdp", compile=True, precision="bf16")


def gpu_row(device_name: str, preset: str, cfg: LLMConfig, seq_len: int, train_cfg: TrainConfig,
            tokens_per_s: float, peak_memory_bytes: int, peak_tflops: float | None) -> str:
    """The printed GPU figures: tokens/s, achieved TFLOP/s, MFU against the card's peak, peak memory."""
    peak = peak_tflops or peak_bf16_tflops(device_name)
    achieved = tokens_per_s * model_flops_per_token(cfg, seq_len) / 1e12
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (pass --peak-tflops)"
    return (f"GPU {device_name}: {preset} T={seq_len} B={train_cfg.micro_batch_size} {train_cfg.precision} "
            f"{train_cfg.strategy}+compile={train_cfg.compile} fused_loss={train_cfg.fused_loss}: "
            f"{tokens_per_s:,.0f} tokens/s, {achieved:.0f} TFLOP/s, MFU {mfu}, "
            f"peak memory {peak_memory_bytes / 2**30:.1f} GiB")


def bench_gpu(preset: str, steps: int, warmup: int, peak_tflops: float | None) -> None:
    """MFU and peak memory of the preset's step on one CUDA device: bf16, fsdp (one-process group), compile."""
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    if not dist.is_initialized():
        dist.init_process_group("nccl", rank=0, world_size=1)
    cfg, seq_len, train_cfg = gpu_shape(preset)
    batch = torch.randint(0, cfg.vocab_size, (train_cfg.micro_batch_size, seq_len + 1), device="cuda")
    trainer = ours(cfg, train_cfg, batch)
    trainer.run(warmup)
    torch.cuda.reset_peak_memory_stats()
    seconds = trainer.run(steps)
    print(gpu_row(torch.cuda.get_device_name(), preset, cfg, seq_len, train_cfg,
                  steps * batch.shape[0] * seq_len / seconds, torch.cuda.max_memory_allocated(), peak_tflops))
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "11m"])
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), choices=list(LEVERS),
                        help="rows besides the preset's own settings")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model (the median counts)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--gpu-preset", default="410m", help="preset measured on CUDA (MFU, peak memory)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="card's dense bf16 peak, if not known")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"LLM training throughput, fp32 on CPU, {args.threads} threads, {args.rounds} x {args.steps} steps "
          f"after {args.warmup} warm-up steps (forward + backward + clip + AdamW), interleaved with HF Llama; "
          f"ratio = median over rounds of ours / HF")
    print(f"{'preset':<8} {'row':<14} {'tok/s':>8} {'HF tok/s':>9} {'ratio':>6}  shape")
    for preset in args.presets:
        r = bench_preset(preset, args.steps, args.rounds, args.warmup, args.levers)
        hf_rate = r["rows"]["hf_llama"]["tokens_per_s"]
        for name, row in r["rows"].items():
            if name == "hf_llama":
                continue
            label = f"preset({r['preset_levers']})" if name == "preset" else name
            print(f"{preset:<8} {label:<14} {row['tokens_per_s']:>8.0f} {hf_rate:>9.0f} {row['ratio']:>6.2f}  "
                  f"{r['shape']}, {r['params'] / 1e6:.2f}M / HF {r['hf_params'] / 1e6:.2f}M params")
    if torch.cuda.is_available():
        bench_gpu(args.gpu_preset, args.steps, args.warmup, args.peak_tflops)
    else:
        print("no CUDA device: MFU and peak memory of the GPU preset not measured")


if __name__ == "__main__":
    main()
