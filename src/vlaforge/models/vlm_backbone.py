"""The from-scratch VLM (vlm_pretrain's output) as a VLA backbone, registered as ``vlm``."""

from __future__ import annotations

import tempfile

import torch
import torch.nn as nn

from vlaforge import storage
from vlaforge.data.tokenize import load_tokenizer
from vlaforge.models.llm import LLMConfig, Transformer
from vlaforge.models.registry import register_backbone
from vlaforge.models.vit import ViTConfig
from vlaforge.models.vlm import ACTION_TOKEN, IMAGE_TOKEN, VLM
from vlaforge.train import checkpoint as ckpt

BUNDLE_TOKENIZER = "tokenizer"  # where a policy bundle keeps this backbone's tokenizer


def build_vlm(config: dict, tokenizer) -> VLM:
    """An untrained VLM of a vlm_pretrain ``config.json`` mapping."""
    return VLM(ViTConfig(**config["vit"]), Transformer(LLMConfig(**config["llm"])),
               tokenizer.convert_tokens_to_ids(config["image_token"]))


def load_vlm(uri: str, pretrained: bool = True) -> tuple[VLM, object, dict]:
    """A VLM written by vlm_pretrain, its tokenizer and config; ``pretrained=False``: the same
    architecture and tokenizer with fresh random weights (no pretraining)."""
    config = ckpt.read_config(uri)
    if config.get("kind") != "vlm":
        raise ValueError(f"{uri} holds a '{config.get('kind')}' model, expected a vlm_pretrain output")
    tokenizer = load_tokenizer(storage.join(uri, config["tokenizer"]))
    model = build_vlm(config, tokenizer)
    if pretrained:
        ckpt.load_weights(model, uri)
    return model, tokenizer, config


@register_backbone("vlm")
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

    @classmethod
    def load_artifact(cls, uri: str, freeze: bool = False, pretrained: bool = True) -> tuple[VLMBackbone, dict]:
        """The backbone of a vlm_pretrain output and the config a bundle records for it (``pretrained=False``:
        its architecture with random weights)."""
        vlm, tokenizer, config = load_vlm(uri, pretrained)
        return cls(vlm, tokenizer), config

    @classmethod
    def from_bundle(cls, uri: str, config: dict) -> VLMBackbone:
        """An untrained backbone shaped as a bundle's ``config["backbone"]`` (the bundle's weights load later)."""
        tokenizer = load_tokenizer(storage.join(uri, BUNDLE_TOKENIZER))
        return cls(build_vlm(config, tokenizer), tokenizer)

    def save_bundle_files(self, out_uri: str) -> None:
        """The tokenizer, beside a bundle's weights."""
        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save_pretrained(tmp)
            storage.upload_dir(tmp, storage.join(out_uri, BUNDLE_TOKENIZER))

    @property
    def hidden_size(self) -> int:
        return self.vlm.hidden_size

    @property
    def num_layers(self) -> int:
        return self.vlm.num_layers

    def image_token_count(self, n_views: int, image_size: int) -> int:
        """How many image tokens a prompt of ``n_views`` images holds."""
        return n_views * self.vlm.vit.cfg.tokens_per_image

    def vision_shape(self, n_views: int) -> tuple[int, int]:
        """(tokens, width) of :meth:`vision_states` for ``n_views`` images."""
        return n_views * self.vlm.vit.cfg.grid ** 2, self.vlm.vit.cfg.d_model

    def vision_states(self, images: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """The ViT's patch states of uint8 images (B, V, 3, H, W): (B, V * grid * grid, d_vit); ``stop``:
        the states entering ViT block ``stop`` instead."""
        return self.vlm.vision_states(images, stop)

    def resume_vision(self, states: torch.Tensor, start: int) -> torch.Tensor:
        """:meth:`vision_states` from ``vision_states(images, stop=start)``."""
        return self.vlm.resume_vision(states, start)

    def vision_tower(self) -> nn.Module:
        """The ViT (what ``vla.train_vision`` trains)."""
        return self.vlm.vit

    def train_action_token(self) -> None:
        """Let the ``<|action|>`` token's input embedding train (only that row) while the rest stays as it is."""
        weight = self.vlm.llm.embed.weight
        mask = torch.zeros(weight.shape[0], 1, device=weight.device)
        mask[self.action_token_id] = 1.0
        weight.requires_grad_(True)
        weight.register_hook(lambda grad: grad * mask.to(grad.device, grad.dtype))

    def _instruction_ids(self, text: str) -> list[int]:
        if text not in self._ids:
            self._ids[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._ids[text]

    def action_features(self, images: torch.Tensor, instructions: list[str], last_k: int,
                        image_states: bool = False, vision: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images (B, V, 3, H, W) + instructions -> action-token states (B, last_k, d), preceded by
        the last layer's image-token states (B, V * tokens_per_image, d) when ``image_states``;
        ``vision``: the images' :meth:`vision_states` when already computed."""
        n_img = images.shape[1] * self.vlm.vit.cfg.tokens_per_image
        rows = [[self.vlm.image_token_id] * n_img + self._instruction_ids(t) + [self.action_token_id]
                for t in instructions]
        length = max(len(r) for r in rows)
        tokens = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row)
        tokens = tokens.to(images.device)
        _, hidden = self.vlm.hidden_states(tokens, images, vision)
        where = torch.tensor([len(r) - 1 for r in rows], device=images.device)
        picked = torch.stack([h[torch.arange(len(rows), device=images.device), where] for h in hidden[-last_k:]], 1)
        return torch.cat([hidden[-1][:, :n_img], picked], dim=1) if image_states else picked
