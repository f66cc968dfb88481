"""LLM training throughput (tokens/s) of the preset model shapes against Hugging Face Llama, same run.

For each preset (default: tiny and 11m) it builds the project's decoder from the preset's ``llm.model``
section (vocabulary size and window length from its ``tokenize`` section) and a transformers
``LlamaForCausalLM`` of the same shape (d_model, layers, heads, SwiGLU width, vocabulary, tied or not,
random weights, SDPA attention; Llama has no qk-norm). Each training step is what the loop does in
fp32 on CPU: forward, cross-entropy, backward, gradient clipping, AdamW. After warm-up steps the two
models take turns, ``--rounds`` rounds of ``--steps`` steps each, so both see the same machine load;
the median round gives tokens/s and the ratio ours / HF (> 1: ours is faster).

    .venv/bin/python bench/llm_throughput.py [--presets tiny 11m] [--steps 5] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F

from vlaforge.config import load
from vlaforge.data.tokenize import TokenizeConfig
from vlaforge.models.llm import LLMConfig, Transformer
from vlaforge.stages.llm_pretrain import LLMStageConfig
from vlaforge.train.optim import build_optimizer


def preset_shape(preset: str) -> tuple[LLMConfig, int, int]:
    """Model config (vocabulary from the tokenize section), window length and micro-batch of ``preset``."""
    stage = load(LLMStageConfig, preset, None, "llm")
    tok = load(TokenizeConfig, preset, None, "tokenize")
    cfg = dataclasses.replace(stage.model, vocab_size=tok.vocab_size, max_seq_len=max(stage.model.max_seq_len,
                                                                                       tok.seq_len))
    return cfg, tok.seq_len, stage.train.micro_batch_size


def hf_llama(cfg: LLMConfig) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_dim,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.kv_heads, max_position_embeddings=cfg.max_seq_len,
                         rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
                         tie_word_embeddings=cfg.tie_embeddings, attn_implementation="sdpa")
    return LlamaForCausalLM(config)


class Trainer:
    """One model, its AdamW and a fixed batch; ``run(n)`` takes ``n`` training steps and returns seconds."""

    def __init__(self, model: torch.nn.Module, logits_of, batch: torch.Tensor, train_cfg):
        self.model, self.logits_of, self.batch = model.train(), logits_of, batch
        self.optimizer = build_optimizer(model, train_cfg)
        self.params = sum(p.numel() for p in model.parameters())

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            logits = self.logits_of(self.model, self.batch[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), self.batch[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def bench_preset(preset: str, steps: int, rounds: int, warmup: int) -> dict:
    cfg, seq_len, batch_size = preset_shape(preset)
    train_cfg = load(LLMStageConfig, preset, None, "llm").train
    torch.manual_seed(0)
    batch = torch.randint(0, cfg.vocab_size, (batch_size, seq_len + 1))
    trainers = {"vlaforge": Trainer(Transformer(cfg), lambda m, x: m(x), batch, train_cfg),
                "hf_llama": Trainer(hf_llama(cfg), lambda m, x: m(input_ids=x).logits, batch, train_cfg)}
    for trainer in trainers.values():
        trainer.run(warmup)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name].append(trainer.run(steps))
    tokens = steps * batch_size * seq_len
    rates = {name: tokens / statistics.median(t) for name, t in times.items()}
    return {"preset": preset, "shape": f"d={cfg.d_model} L={cfg.n_layers} H={cfg.n_heads} ffn={cfg.ffn_dim} "
                                       f"V={cfg.vocab_size} T={seq_len} B={batch_size}",
            "params": {name: t.params for name, t in trainers.items()}, "tokens_per_s": rates,
            "ratio": rates["vlaforge"] / rates["hf_llama"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "11m"])
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model (the median counts)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"LLM training throughput, fp32 on CPU, {args.threads} threads, {args.rounds} x {args.steps} steps "
          f"after {args.warmup} warm-up steps (forward + backward + clip + AdamW)")
    print(f"{'preset':<8} {'shape':<52} {'params (ours / HF)':>19} {'vlaforge tok/s':>15} {'HF Llama tok/s':>15} "
          f"{'ratio':>6}")
    for preset in args.presets:
        r = bench_preset(preset, args.steps, args.rounds, args.warmup)
        params = f"{r['params']['vlaforge'] / 1e6:.2f}M / {r['params']['hf_llama'] / 1e6:.2f}M"
        print(f"{r['preset']:<8} {r['shape']:<52} {params:>19} "
              f"{r['tokens_per_s']['vlaforge']:>15.0f} {r['tokens_per_s']['hf_llama']:>15.0f} {r['ratio']:>6.2f}")


if __name__ == "__main__":
    main()
