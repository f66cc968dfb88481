"""The from-scratch VLM: ViT + pixel-shuffle projector + the pretrained LLM.

Projected image tokens replace the ``<|image|>`` placeholder embeddings of the LLM's input
sequence, in order: image 0's tokens fill the first ``tokens_per_image`` placeholders, and so on.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlaforge.models.llm import Transformer
from vlaforge.models.vit import PixelShuffleProjector, ViT, ViTConfig, to_model_images

IMAGE_TOKEN = "<|image|>"
ACTION_TOKEN = "<|action|>"


class VLM(nn.Module):
    kind = "vlm"

    def __init__(self, vit_cfg: ViTConfig, llm: Transformer, image_token_id: int):
        super().__init__()
        self.vit = ViT(vit_cfg)
        self.projector = PixelShuffleProjector(vit_cfg.d_model, llm.cfg.d_model, vit_cfg.pixel_shuffle)
        self.llm = llm
        self.image_token_id = image_token_id

    @property
    def hidden_size(self) -> int:
        return self.llm.cfg.d_model

    @property
    def num_layers(self) -> int:
        return self.llm.cfg.n_layers

    def vision_states(self, images: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """uint8 images (B, V, 3, H, W) -> the ViT's patch states (B, V * grid * grid, d_vit); ``stop``:
        the states entering ViT block ``stop`` instead (:meth:`resume_vision` goes on from there)."""
        B, V = images.shape[:2]
        feats = self.vit(to_model_images(images.flatten(0, 1)), stop)
        return feats.reshape(B, V * feats.shape[1], feats.shape[2])

    def resume_vision(self, states: torch.Tensor, start: int) -> torch.Tensor:
        """:meth:`vision_states` from ``vision_states(images, stop=start)``."""
        B, N, D = states.shape
        return self.vit.resume(states.reshape(-1, self.vit.cfg.grid ** 2, D), start).view(B, N, D)

    def image_tokens(self, images: torch.Tensor, vision: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images (B, V, 3, H, W) -> projected tokens (B, V * tokens_per_image, d_lm); ``vision``:
        their :meth:`vision_states` when already computed."""
        B, V = images.shape[:2]
        vision = self.vision_states(images) if vision is None else vision
        feats = self.projector(vision.reshape(B * V, -1, vision.shape[-1]))
        return feats.view(B, V * feats.shape[1], feats.shape[2])

    def embed(self, tokens: torch.Tensor, images: torch.Tensor, vision: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with image placeholders replaced by image tokens (of ``vision`` when given)."""
        x = self.llm.embed(tokens)
        img = self.image_tokens(images, vision).to(x.dtype)
        is_image = tokens == self.image_token_id
        counts = is_image.sum(1)
        if not bool((counts == img.shape[1]).all()):
            raise ValueError(f"image token count mismatch: sequences hold {counts.tolist()} {IMAGE_TOKEN} "
                             f"placeholders, the images give {img.shape[1]} tokens each")
        return x.masked_scatter(is_image.unsqueeze(-1), img)

    def hidden_states(self, tokens: torch.Tensor, images: torch.Tensor,
                      vision: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.llm.forward_embeds(self.embed(tokens, images, vision), return_hidden=True)

    def forward(self, tokens: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss (what DDP / FSDP wrappers call): :meth:`caption_loss`."""
        return self.caption_loss(tokens, images, labels)

    def caption_loss(self, tokens: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                     reduction: str = "mean") -> torch.Tensor:
        """Next-token cross-entropy where ``labels`` != -100 (caption tokens only)."""
        hidden = self.llm.forward_embeds(self.embed(tokens, images))
        if reduction == "mean":
            return self.llm.head_loss(hidden[:, :-1], labels[:, 1:])
        logits = self.llm.lm_head(hidden)
        loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=-100,
                               reduction="none")
        mask = (labels[:, 1:] != -100).float()  # per-sequence mean
        return (loss * mask).sum(1) / mask.sum(1).clamp(min=1)
