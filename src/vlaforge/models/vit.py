"""A Vision Transformer in plain PyTorch and the pixel-shuffle projector into the LM width."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


@dataclass
class ViTConfig:
    image_size: int = 64
    patch_size: int = 8
    d_model: int = 96
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    conv_stem: bool = False  # a stride-2 convolutional stem before patchifying (better low-level features)
    pixel_shuffle: int = 2  # fold s x s neighbouring patches into one LM token

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def tokens_per_image(self) -> int:
        return (self.grid // self.pixel_shuffle) ** 2

    def validate(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"vit.image_size={self.image_size} is not divisible by vit.patch_size={self.patch_size}")
        if self.grid % self.pixel_shuffle:
            raise ValueError(f"the {self.grid}x{self.grid} patch grid is not divisible by vit.pixel_shuffle={self.pixel_shuffle}")
        if self.conv_stem and self.patch_size % 4:
            raise ValueError("vit.conv_stem needs vit.patch_size divisible by 4")


class ViTBlock(nn.Module):
    """Pre-LayerNorm transformer block with bidirectional attention."""

    def __init__(self, d: int, n_heads: int, mlp_ratio: float):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, int(d * mlp_ratio)), nn.GELU(), nn.Linear(int(d * mlp_ratio), d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] -> patch features (B, grid*grid, d)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        if cfg.conv_stem:
            self.patchify = nn.Sequential(
                nn.Conv2d(3, d // 2, 3, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(d // 2, d, 3, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(d, d, cfg.patch_size // 4, stride=cfg.patch_size // 4))
        else:
            self.patchify = nn.Conv2d(3, d, cfg.patch_size, stride=cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.grid * cfg.grid, d) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, images: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """The final patch states; ``stop``: the states entering block ``stop`` instead (:meth:`resume` goes on)."""
        if images.shape[-2:] != (self.cfg.image_size, self.cfg.image_size):
            raise ValueError(f"images are {tuple(images.shape[-2:])}, the ViT expects "
                             f"{self.cfg.image_size}x{self.cfg.image_size}")
        x = self.patchify(images).flatten(2).transpose(1, 2) + self.pos_embed
        if stop is None:
            return self.resume(x, 0)
        for block in self.blocks[:stop]:
            x = block(x)
        return x

    def resume(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """The final patch states from the states entering block ``start``."""
        for block in self.blocks[start:]:
            x = block(x)
        return self.norm(x)

    def top(self, n_blocks: int) -> tuple[int, list[nn.Module]]:
        """Where the last ``n_blocks`` blocks start, and those blocks with the final norm."""
        if not 0 < n_blocks <= len(self.blocks):
            raise ValueError(f"the ViT has {len(self.blocks)} blocks, cannot take the last {n_blocks}")
        start = len(self.blocks) - n_blocks
        return start, [*self.blocks[start:], self.norm]


class PixelShuffleProjector(nn.Module):
    """Fold s x s neighbouring patches into one token, then an MLP to the LM width."""

    def __init__(self, vit_dim: int, lm_dim: int, scale: int):
        super().__init__()
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(vit_dim * scale * scale, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        g, s = int(N ** 0.5), self.scale
        x = x.view(B, g // s, s, g // s, s, D).permute(0, 1, 3, 2, 4, 5).reshape(B, (g // s) ** 2, s * s * D)
        return self.mlp(x)


def to_model_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float in [-1, 1] (mean/std 0.5)."""
    mean = torch.tensor(IMAGE_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=images.device).view(3, 1, 1)
    return (images.float() / 255.0 - mean) / std
