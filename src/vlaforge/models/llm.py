"""A decoder-only transformer in plain PyTorch: RoPE, SwiGLU, RMSNorm, optional qk-norm, KV cache.

Read top to bottom: config, building blocks, the model, generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlaforge.models.fused_loss import linear_cross_entropy


@dataclass
class LLMConfig:
    vocab_size: int = 0  # 0 = taken from the tokenizer
    d_model: int = 96
    n_layers: int = 8
    n_heads: int = 4
    n_kv_heads: int = 0  # 0 = n_heads (no grouped-query attention)
    d_ff: int = 0  # 0 = SwiGLU's 8/3 * d_model, rounded up to a multiple of 32
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    qk_norm: bool = True
    tie_embeddings: bool = True
    norm_eps: float = 1e-5

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ffn_dim(self) -> int:
        return self.d_ff or 32 * math.ceil(8 * self.d_model / 3 / 32)

    def validate(self) -> None:
        if self.vocab_size <= 0:
            raise ValueError("model.vocab_size must be set (from the tokenizer) and positive")
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"model.n_heads={self.n_heads} is not divisible by model.n_kv_heads={self.kv_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("model.d_model / model.n_heads must be even for RoPE")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(max_len).float(), freqs)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :d/2], x[..., d/2:]) of ``x`` (B, H, T, D) by position angles (T, D/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    cos, sin = cos[None, None], sin[None, None]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


class KVCache:
    """Keys and values of every layer for incremental decoding."""

    def __init__(self, n_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class Attention(nn.Module):
    def __init__(self, cfg: LLMConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.n_heads, self.kv_heads = cfg.n_heads, cfg.kv_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * self.head_dim, bias=False)
        self.kv_proj = nn.Linear(cfg.d_model, 2 * cfg.kv_heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(cfg.n_heads * self.head_dim, cfg.d_model, bias=False)
        self.q_norm = RMSNorm(self.head_dim, cfg.norm_eps) if cfg.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim, cfg.norm_eps) if cfg.qk_norm else nn.Identity()

    def forward(self, x, cos, sin, cache: KVCache | None = None, attn_mask: torch.Tensor | None = None):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_proj(x).view(B, T, 2, self.kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(self.q_norm(q), cos, sin), apply_rope(self.k_norm(k), cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if self.kv_heads != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.n_heads // self.kv_heads, dim=1)
        if attn_mask is None:
            # Causal; with a cache, the T new queries sit at the end of the key sequence.
            causal = T > 1
            if causal and k.shape[2] != T:
                attn_mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - T)
                causal = False
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, -1))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: LLMConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn_dim)

    def forward(self, x, cos, sin, cache=None, attn_mask=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, attn_mask)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Token embedding, ``n_layers`` pre-norm blocks, final RMSNorm, LM head.

    ``fused_loss`` (set by the training stage, not part of the saved config) computes the training loss
    with the chunked :func:`linear_cross_entropy` instead of materialising the logits.
    """

    _no_split_modules = ["Block"]  # the units FSDP shards and activation checkpointing recomputes

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.fused_loss = False
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        cos, sin = rope_tables(cfg.d_model // cfg.n_heads, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 style scaled init of residual projections
            if name.endswith(("out_proj.weight", "down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def resize_vocab(self, vocab_size: int) -> None:
        """Grow the embedding (and head) for added tokens, keeping the trained rows."""
        old = self.embed.weight.data
        if vocab_size <= old.shape[0]:
            return
        self.embed = nn.Embedding(vocab_size, self.cfg.d_model).to(old.device, old.dtype)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.embed.weight.data[: old.shape[0]] = old
        head_old = self.lm_head.weight.data
        self.lm_head = nn.Linear(self.cfg.d_model, vocab_size, bias=False).to(old.device, old.dtype)
        if self.cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        else:
            nn.init.normal_(self.lm_head.weight, std=0.02)
            self.lm_head.weight.data[: head_old.shape[0]] = head_old
        self.cfg.vocab_size = vocab_size

    def forward_embeds(self, x: torch.Tensor, cache: KVCache | None = None, attn_mask=None,
                       return_hidden: bool = False):
        """Run the blocks on embeddings ``x`` (B, T, d). Returns final normed states (and every block's output)."""
        start = cache.length if cache is not None else 0
        T = x.shape[1]
        if start + T > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds model.max_seq_len={self.cfg.max_seq_len}")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        hidden = []
        for block in self.blocks:
            x = block(x, cos, sin, cache, attn_mask)
            if return_hidden:
                hidden.append(x)
        x = self.norm(x)
        return (x, hidden) if return_hidden else x

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        """Logits for ``tokens`` (B, T); with ``targets``, the mean cross-entropy instead (-100 ignored)."""
        hidden = self.forward_embeds(self.embed(tokens), cache)
        return self.lm_head(hidden) if targets is None else self.head_loss(hidden, targets)

    def head_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the LM head on final states ``hidden`` (..., d) against ``targets`` (...)."""
        if self.fused_loss:
            return linear_cross_entropy(hidden, self.lm_head.weight, targets)
        logits = self.lm_head(hidden)
        return F.cross_entropy(logits.float().flatten(0, -2), targets.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, eos_id: int | None = None, generator: torch.Generator | None = None):
        """Greedy (temperature 0) or nucleus sampling with a KV cache. ``tokens`` is (1, T)."""
        cache = KVCache(self.cfg.n_layers)
        out = tokens
        logits = self(tokens, cache=cache)[:, -1]
        for _ in range(max_new_tokens):
            if out.shape[1] >= self.cfg.max_seq_len:
                break
            if temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                probs = F.softmax(logits.float() / temperature, dim=-1)
                sorted_p, idx = probs.sort(dim=-1, descending=True)
                keep = sorted_p.cumsum(-1) - sorted_p < top_p
                sorted_p = sorted_p * keep
                choice = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1, generator=generator)
                nxt = idx.gather(-1, choice)
            out = torch.cat([out, nxt], dim=1)
            if eos_id is not None and int(nxt) == eos_id:
                break
            logits = self(nxt, cache=cache)[:, -1]
        return out
