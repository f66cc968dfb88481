"""The VLA: a VLM backbone reads images + instruction; a flow-matching action expert predicts actions.

The backbone appends one ``<|action|>`` token after the images and the instruction; that token's
hidden states from the backbone's last ``k`` layers condition the action expert. Two expert forms:

- ``expert.head: transformer`` (pi0's layout): a small bidirectional transformer over [conditioning
  tokens, proprio tokens, noisy action tokens]. With ``expert.image_tokens`` it also attends to the
  backbone's last-layer image-token states, so fine spatial detail need not squeeze through one token.
- ``expert.head: mlp`` (diffusion policy's layout): the expert has its own small convolutional
  encoder, and an MLP reads the flattened feature map of every view beside the action-token states,
  proprio, time and the noisy chunk. Each map position enters the first layer with its own weights,
  so where things are in the image (a few pixels of sideways offset) reaches the actions directly;
  at the same budget the transformer path learned the sideways action far more slowly
  (docs/metaworld4.md).

Trained with flow matching (straight path from noise ``x0`` to actions ``x1``): the expert
predicts the velocity ``x1 - x0``, or with ``expert.prediction: actions`` the clean chunk ``x1`` itself
(x-prediction; the velocity is then ``(x1_hat - x_t) / (1 - t)``), a lower-variance target whose
error is the policy's own. Inference integrates the velocity from noise in ``flow_steps`` Euler steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlaforge.models.vit import ViTBlock, to_model_images
from vlaforge.models.vlm import ACTION_TOKEN, IMAGE_TOKEN, VLM


@dataclass
class ActionExpertConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    last_k_layers: int = 2  # backbone layers whose action-token state conditions the expert
    flow_steps: int = 8  # Euler steps at inference
    time_beta: bool = True  # flow time t = 1 - Beta(1.5, 1), more weight near noise (t = 0) as in pi0; else uniform
    prediction: str = "velocity"  # what the expert outputs: "velocity" (x1 - x0) or "actions" (x1; x-prediction)
    image_tokens: bool = False  # transformer head: also attend to the backbone's last-layer image-token states
    head: str = "transformer"  # "transformer" or "mlp" (own conv encoder + MLP; module docstring)
    mlp_width: int = 512  # mlp head: hidden width
    map_channels: int = 32  # mlp head: channels of the conv feature map (stride 8) of each view


class VLMBackbone(nn.Module):
    """Wraps the from-scratch VLM: tokenizes instructions and returns the action token's hidden states."""

    kind = "vlm"

    def __init__(self, vlm: VLM, tokenizer):
        super().__init__()
        self.vlm = vlm
        self.tokenizer = tokenizer
        if ACTION_TOKEN not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN, ACTION_TOKEN]})
        vlm.llm.resize_vocab(len(tokenizer))
        self.action_token_id = tokenizer.convert_tokens_to_ids(ACTION_TOKEN)
        self._ids: dict[str, list[int]] = {}

    @property
    def hidden_size(self) -> int:
        return self.vlm.hidden_size

    @property
    def num_layers(self) -> int:
        return self.vlm.num_layers

    def image_token_count(self, n_views: int, image_size: int) -> int:
        """How many image tokens a prompt of ``n_views`` images holds."""
        return n_views * self.vlm.vit.cfg.tokens_per_image

    def _instruction_ids(self, text: str) -> list[int]:
        if text not in self._ids:
            self._ids[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._ids[text]

    def action_features(self, images: torch.Tensor, instructions: list[str], last_k: int,
                        image_states: bool = False) -> torch.Tensor:
        """uint8 images (B, V, 3, H, W) + instructions -> action-token states (B, last_k, d), preceded by
        the last layer's image-token states (B, V * tokens_per_image, d) when ``image_states``."""
        n_img = images.shape[1] * self.vlm.vit.cfg.tokens_per_image
        rows = [[self.vlm.image_token_id] * n_img + self._instruction_ids(t) + [self.action_token_id]
                for t in instructions]
        length = max(len(r) for r in rows)
        tokens = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row)
        tokens = tokens.to(images.device)
        _, hidden = self.vlm.hidden_states(tokens, images)
        where = torch.tensor([len(r) - 1 for r in rows], device=images.device)
        picked = torch.stack([h[torch.arange(len(rows), device=images.device), where] for h in hidden[-last_k:]], 1)
        return torch.cat([hidden[-1][:, :n_img], picked], dim=1) if image_states else picked


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


class ActionExpert(nn.Module):
    """Predicts the flow velocity (or the clean chunk) of a noisy action chunk from conditioning, proprio and time."""

    def __init__(self, cfg: ActionExpertConfig, cond_dim: int, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int, n_image_tokens: int = 0):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.cond_proj = nn.Sequential(nn.LayerNorm(cond_dim), nn.Linear(cond_dim, d))
        # Image tokens get their own learned positions: their states need not carry where they came from.
        self.image_pos = nn.Parameter(torch.randn(1, n_image_tokens, d) * 0.02) if n_image_tokens else None
        self.proprio_proj = nn.Linear(proprio_dim, d)
        self.action_in = nn.Linear(action_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        n_tokens = cfg.last_k_layers + n_proprio + 1 + chunk
        self.pos = nn.Parameter(torch.randn(1, n_tokens, d) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.action_out = nn.Linear(d, action_dim)
        self.chunk, self.action_dim = chunk, action_dim

    def forward(self, cond: torch.Tensor, proprio: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor):
        """``cond``: (B, [image tokens +] last_k_layers, cond_dim); image tokens carry their own positions."""
        temb = self.time_mlp(time_embedding(t, self.cfg.d_model))[:, None]
        n_image = cond.shape[1] - self.cfg.last_k_layers
        built_for = 0 if self.image_pos is None else self.image_pos.shape[1]
        if n_image != built_for:
            raise ValueError(f"the action expert was built for {built_for} image tokens but got {n_image}: "
                             "the cameras, frames or image size differ from the training data's")
        cond = self.cond_proj(cond)
        x = torch.cat([cond[:, n_image:], self.proprio_proj(proprio), temb, self.action_in(noisy) + temb],
                      dim=1) + self.pos
        if n_image:
            x = torch.cat([cond[:, :n_image] + self.image_pos, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.action_out(self.norm(x[:, -self.chunk:]))


def conv_encoder(channels: int) -> nn.Sequential:
    """Images (N, 3, H, W) in [-1, 1] -> a stride-8 feature map (N, channels, H/8, W/8)."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, channels, 3, 1, 1), nn.ReLU())


class MLPActionHead(nn.Module):
    """Flow-matching MLP over [flattened conv maps of all views, action-token states, proprio, time, noisy chunk]."""

    def __init__(self, cfg: ActionExpertConfig, cond_dim: int, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int, n_views: int, image_size: int):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"expert.head=mlp needs an image size divisible by 8, got {image_size}")
        self.cfg, self.chunk, self.action_dim = cfg, chunk, action_dim
        self.views = (n_views, image_size)
        self.encoder = conv_encoder(cfg.map_channels).to(memory_format=torch.channels_last)
        width = (n_views * cfg.map_channels * (image_size // 8) ** 2 + cfg.last_k_layers * cond_dim
                 + n_proprio * proprio_dim + chunk * action_dim + cfg.d_model)
        self.net = nn.Sequential(nn.Linear(width, cfg.mlp_width), nn.ReLU(), nn.Linear(cfg.mlp_width, cfg.mlp_width),
                                 nn.ReLU(), nn.Linear(cfg.mlp_width, chunk * action_dim))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 views (B, V, 3, H, W) -> their flattened feature maps (B, V * channels * H/8 * W/8)."""
        got = (images.shape[1], images.shape[-1])
        if got != self.views or images.shape[-2] != images.shape[-1]:
            raise ValueError(f"the action expert was built for {self.views[0]} views of {self.views[1]}x{self.views[1]} "
                             f"but got {images.shape[1]} of {images.shape[-2]}x{images.shape[-1]}: the cameras, "
                             "frames or image size differ from the training data's")
        x = to_model_images(images.flatten(0, 1)).contiguous(memory_format=torch.channels_last)  # faster convs on CPU
        return self.encoder(x).reshape(images.shape[0], -1)

    def forward(self, cond: torch.Tensor, proprio: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor):
        """``cond``: (B, features) from :meth:`VLA.condition` (image maps, then action-token states)."""
        x = torch.cat([cond, proprio.flatten(1), noisy.flatten(1), time_embedding(t, self.cfg.d_model)], 1)
        return self.net(x).view(-1, self.chunk, self.action_dim)


class VLA(nn.Module):
    kind = "vla"

    def __init__(self, backbone: nn.Module, cfg: ActionExpertConfig, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int, freeze_backbone: bool = False, n_image_tokens: int = 0,
                 views: tuple[int, int] = (0, 0)):
        """``views``: (number of views, image size) of a sample, for the mlp head's encoder."""
        super().__init__()
        if cfg.prediction not in ("velocity", "actions"):
            raise ValueError(f"expert.prediction={cfg.prediction!r}: use 'velocity' or 'actions'")
        if cfg.head not in ("transformer", "mlp"):
            raise ValueError(f"expert.head={cfg.head!r}: use 'transformer' or 'mlp'")
        if cfg.head == "mlp" and cfg.image_tokens:
            raise ValueError("expert.image_tokens is for expert.head=transformer; the mlp head reads its own "
                             "feature maps of the images")
        if cfg.last_k_layers > backbone.num_layers:
            raise ValueError(f"expert.last_k_layers={cfg.last_k_layers} exceeds the backbone's "
                             f"{backbone.num_layers} layers")
        self.backbone = backbone
        self.cfg = cfg
        if cfg.head == "mlp":
            self.expert = MLPActionHead(cfg, backbone.hidden_size, proprio_dim, action_dim, n_proprio, chunk, *views)
        else:
            self.expert = ActionExpert(cfg, backbone.hidden_size, proprio_dim, action_dim, n_proprio, chunk,
                                       n_image_tokens if cfg.image_tokens else 0)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for p in backbone.parameters():
                p.requires_grad_(False)

    def backbone_states(self, batch: dict) -> torch.Tensor:
        """The backbone's token states the expert reads (B, tokens, d); a frozen backbone's states may
        come precomputed in ``batch["backbone_states"]`` (the same values: its weights do not change)."""
        if "backbone_states" in batch:
            if not self.freeze_backbone:
                raise ValueError("precomputed backbone_states need a frozen backbone (freeze_backbone: true)")
            return batch["backbone_states"]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            return self.backbone.action_features(batch["images"], batch["instruction"], self.cfg.last_k_layers,
                                                 image_states=self.cfg.image_tokens).float()

    def condition(self, batch: dict) -> torch.Tensor:
        """What the expert reads besides proprio, time and the noisy chunk: the backbone's token states
        (B, tokens, d), or for the mlp head its image maps and the action-token states, flattened (B, F)."""
        states = self.backbone_states(batch)
        if self.cfg.head == "mlp":
            return torch.cat([self.expert.encode_images(batch["images"]), states.flatten(1)], 1)
        return states

    def loss(self, batch: dict) -> torch.Tensor:
        """Flow-matching MSE on the (unpadded) future actions."""
        x1 = batch["actions"]
        cond = self.condition(batch)
        return flow_matching_loss(lambda xt, t: self.expert(cond, batch["proprio"], xt, t), x1,
                                  flow_time(x1.shape[0], self.cfg.time_beta, x1.device), batch["action_mask"],
                                  self.cfg.prediction)

    @torch.no_grad()
    def sample(self, batch: dict, generator: torch.Generator | None = None, steps: int | None = None) -> torch.Tensor:
        """Normalised action chunks (B, chunk, action_dim) integrated from noise."""
        steps = steps or self.cfg.flow_steps
        cond = self.condition(batch)
        B, device = cond.shape[0], cond.device
        x = torch.randn((B, self.expert.chunk, self.expert.action_dim), generator=generator,
                        device="cpu").to(device)
        return integrate_flow(lambda xt, t: self.expert(cond, batch["proprio"], xt, t), x, steps,
                              self.cfg.prediction)
