"""The action expert's config and its heads (registered by name, :mod:`vlaforge.models.registry`).

- ``expert.head: transformer`` (pi0's layout): a small bidirectional transformer over [conditioning
  tokens, proprio tokens, noisy action tokens]. With ``expert.image_tokens`` it also attends to the
  backbone's last-layer image-token states, so fine spatial detail need not squeeze through one token.
- ``expert.head: mlp`` (diffusion policy's layout): the expert has its own small convolutional
  encoder, and an MLP reads the flattened feature map of every view beside the action-token states,
  proprio, time and the noisy chunk. Each map position enters the first layer with its own weights,
  so where things are in the image (a few pixels of sideways offset) reaches the actions directly;
  at the same budget the transformer path learned the sideways action far more slowly
  (docs/experiments/metaworld4.md).
- ``expert.head: vlm_mlp``: the same MLP, but everything it sees comes through the VLM: the ViT's
  patch-token states of every view and/or the LLM's last-layer states over the image tokens
  (``expert.vision_features``), flattened so each patch keeps its own weights, beside the
  action-token states. No image encoder of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vlaforge.models.flow import time_embedding
from vlaforge.models.registry import register_head
from vlaforge.models.vit import ViTBlock, to_model_images


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
    head: str = "transformer"  # "transformer", "mlp" (own conv encoder + MLP) or "vlm_mlp" (module docstring)
    mlp_width: int = 512  # mlp / vlm_mlp head: hidden width
    map_channels: int = 32  # mlp: channels of the conv feature map (stride 8) of each view; vlm_mlp: width
    # each image-token state is reduced to by one shared linear map (0: the states as they are)
    vision_features: str = "vit+llm"  # vlm_mlp: the ViT's patch states ("vit"), the LLM's image-token states
    # ("llm") or both
    train_action_token: bool = False  # the <|action|> token's input embedding trains (also over a frozen backbone)


@register_head("transformer")
class ActionExpert(nn.Module):
    """Predicts the flow velocity (or the clean chunk) of a noisy action chunk from conditioning, proprio and time."""

    def __init__(self, cfg: ActionExpertConfig, cond_dim: int, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int, n_image_tokens: int = 0, views: tuple[int, int] = (0, 0)):
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

    def condition(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        """The backbone's token states (B, [image tokens +] last_k_layers, d), as they are."""
        return states

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


class _FlowMLP(nn.Module):
    """Flow-matching MLP over [image features, action-token states, proprio, time, noisy chunk]."""

    def __init__(self, cfg: ActionExpertConfig, features: int, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int):
        """``features``: width of the image features and action-token states :meth:`condition` gives."""
        super().__init__()
        self.cfg, self.chunk, self.action_dim = cfg, chunk, action_dim
        width = features + n_proprio * proprio_dim + chunk * action_dim + cfg.d_model
        self.net = nn.Sequential(nn.Linear(width, cfg.mlp_width), nn.ReLU(), nn.Linear(cfg.mlp_width, cfg.mlp_width),
                                 nn.ReLU(), nn.Linear(cfg.mlp_width, chunk * action_dim))

    def forward(self, cond: torch.Tensor, proprio: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor):
        """``cond``: (B, features) from :meth:`condition` (image features, then action-token states)."""
        x = torch.cat([cond, proprio.flatten(1), noisy.flatten(1), time_embedding(t, self.cfg.d_model)], 1)
        return self.net(x).view(-1, self.chunk, self.action_dim)


@register_head("mlp")
class MLPActionHead(_FlowMLP):
    """Flow-matching MLP over [flattened conv maps of all views, action-token states, proprio, time, noisy chunk]."""

    def __init__(self, cfg: ActionExpertConfig, cond_dim: int, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int, n_image_tokens: int = 0, views: tuple[int, int] = (0, 0)):
        """``views``: (number of views, image size) of a sample, for the encoder."""
        if cfg.image_tokens:
            raise ValueError("expert.image_tokens is for expert.head=transformer; the mlp head reads its own "
                             "feature maps of the images")
        n_views, image_size = views
        if cfg.map_channels < 1:
            raise ValueError(f"expert.head=mlp needs expert.map_channels >= 1, got {cfg.map_channels}")
        if image_size % 8:
            raise ValueError(f"expert.head=mlp needs an image size divisible by 8, got {image_size}")
        super().__init__(cfg, n_views * cfg.map_channels * (image_size // 8) ** 2 + cfg.last_k_layers * cond_dim,
                         proprio_dim, action_dim, n_proprio, chunk)
        self.views = (n_views, image_size)
        self.encoder = conv_encoder(cfg.map_channels).to(memory_format=torch.channels_last)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 views (B, V, 3, H, W) -> their flattened feature maps (B, V * channels * H/8 * W/8)."""
        got = (images.shape[1], images.shape[-1])
        if got != self.views or images.shape[-2] != images.shape[-1]:
            raise ValueError(f"the action expert was built for {self.views[0]} views of {self.views[1]}x{self.views[1]} "
                             f"but got {images.shape[1]} of {images.shape[-2]}x{images.shape[-1]}: the cameras, "
                             "frames or image size differ from the training data's")
        x = to_model_images(images.flatten(0, 1)).contiguous(memory_format=torch.channels_last)  # faster convs on CPU
        return self.encoder(x).reshape(images.shape[0], -1)

    def condition(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        """The image maps and the action-token states, flattened (B, F)."""
        return torch.cat([self.encode_images(batch["images"]), states.flatten(1)], 1)


VISION_FEATURES = ("vit", "llm", "vit+llm")


class _TokenReadout(nn.Module):
    """Image-token states (B, N, d) -> (B, N * width): each token normalised, optionally reduced to
    ``width`` by one shared linear map, then flattened so that every position keeps its own weights."""

    def __init__(self, n_tokens: int, dim: int, width: int):
        super().__init__()
        self.n_tokens = n_tokens
        self.norm = nn.LayerNorm(dim)
        self.reduce = nn.Linear(dim, width) if width else nn.Identity()
        self.features = n_tokens * (width or dim)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if states.shape[1] != self.n_tokens:
            raise ValueError(f"the action expert was built for {self.n_tokens} image tokens but got {states.shape[1]}: "
                             "the cameras, frames or image size differ from the training data's")
        return self.reduce(self.norm(states.float())).flatten(1)


@register_head("vlm_mlp")
class VLMFeatureHead(_FlowMLP):
    """Flow-matching MLP that sees the images only through the VLM: its ViT patch states and/or the
    LLM's image-token states (flattened, one weight per position), beside the action-token states."""

    reads_vision = True  # the VLA passes the backbone's ViT patch states in ``batch["vision_states"]``

    def __init__(self, cfg: ActionExpertConfig, cond_dim: int, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int, n_image_tokens: int = 0, views: tuple[int, int] = (0, 0),
                 vision: tuple[int, int] = (0, 0)):
        """``n_image_tokens``: the LLM's image tokens of a sample; ``vision``: (tokens, width) of its ViT states."""
        if cfg.vision_features not in VISION_FEATURES:
            raise ValueError(f"expert.vision_features={cfg.vision_features!r}: use one of {', '.join(VISION_FEATURES)}")
        use_vit, use_llm = "vit" in cfg.vision_features, "llm" in cfg.vision_features
        vit = _TokenReadout(*vision, cfg.map_channels) if use_vit else None
        llm = _TokenReadout(n_image_tokens, cond_dim, cfg.map_channels) if use_llm else None
        features = sum(r.features for r in (vit, llm) if r is not None) + cfg.last_k_layers * cond_dim
        super().__init__(cfg, features, proprio_dim, action_dim, n_proprio, chunk)
        self.vit_readout, self.llm_readout = vit, llm

    def condition(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        """``states``: the LLM's image-token states then the action-token states (B, N + last_k, d)."""
        n_image = states.shape[1] - self.cfg.last_k_layers
        parts = [self.vit_readout(batch["vision_states"])] if self.vit_readout is not None else []
        if self.llm_readout is not None:
            parts.append(self.llm_readout(states[:, :n_image]))
        return torch.cat(parts + [states[:, n_image:].flatten(1)], 1)
