"""The VLA: a VLM backbone reads images + instruction; a flow-matching action expert predicts actions.

The backbone appends one ``<|action|>`` token after the images and the instruction; that token's
hidden states from the backbone's last ``k`` layers condition the action expert (a head of
:mod:`vlaforge.models.heads`, chosen by ``expert.head``). Backbones and heads are looked up by name
(:mod:`vlaforge.models.registry`); the training objective and the sampler are in
:mod:`vlaforge.models.flow`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vlaforge.models.flow import flow_matching_loss, flow_time, integrate_flow
from vlaforge.models.heads import ActionExpertConfig
from vlaforge.models.registry import BACKBONES, HEADS
from vlaforge.train import checkpoint as ckpt

HF_PREFIX = "hf:"  # vla.backbone: hf:<hub name or path> starts from a Hugging Face VLM


class VLA(nn.Module):
    kind = "vla"

    def __init__(self, backbone: nn.Module, cfg: ActionExpertConfig, proprio_dim: int, action_dim: int,
                 n_proprio: int, chunk: int, freeze_backbone: bool = False, n_image_tokens: int = 0,
                 views: tuple[int, int] = (0, 0)):
        """``n_image_tokens``: image-token states the expert reads (``expert.image_tokens``); ``views``:
        (number of views, image size) of a sample, for a head with its own image encoder."""
        super().__init__()
        if cfg.prediction not in ("velocity", "actions"):
            raise ValueError(f"expert.prediction={cfg.prediction!r}: use 'velocity' or 'actions'")
        head = HEADS.get(cfg.head)
        if cfg.last_k_layers > backbone.num_layers:
            raise ValueError(f"expert.last_k_layers={cfg.last_k_layers} exceeds the backbone's "
                             f"{backbone.num_layers} layers")
        self.backbone = backbone
        self.cfg = cfg
        self.expert = head(cfg, backbone.hidden_size, proprio_dim, action_dim, n_proprio, chunk,
                           n_image_tokens if cfg.image_tokens else 0, views)
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
        """What the expert reads besides proprio, time and the noisy chunk (the head's ``condition``)."""
        return self.expert.condition(self.backbone_states(batch), batch)

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


def load_backbone(spec: str, freeze: bool = False) -> tuple[nn.Module, dict]:
    """A VLA backbone and the config a bundle records for it: ``hf:<hub name or path>``, or a stage's
    output folder whose ``config.json`` kind names a registered backbone (vlm_pretrain, hf_vlm)."""
    if spec.startswith(HF_PREFIX):
        return BACKBONES.get("hf_vlm").load_pretrained(spec[len(HF_PREFIX):], freeze)
    kind = ckpt.read_config(spec).get("kind")
    try:
        backbone = BACKBONES.get(kind)
    except ValueError as err:
        raise ValueError(f"{spec}: a '{kind}' model cannot be a VLA backbone ({err})") from None
    return backbone.load_artifact(spec, freeze)


def backbone_from_bundle(uri: str, config: dict) -> nn.Module:
    """The untrained backbone of the policy bundle at ``uri`` (``config``: its config.json)."""
    return BACKBONES.get(config["backbone"]["kind"]).from_bundle(uri, config["backbone"])


def build_vla(backbone: nn.Module, expert: ActionExpertConfig, pre, freeze_backbone: bool = False) -> VLA:
    """The VLA for data of preprocessing config ``pre`` (also how a bundle is rebuilt before loading weights)."""
    n_views = len(pre.cameras) * len(pre.image_indices)
    n_image_tokens = backbone.image_token_count(n_views, pre.image_size) if expert.image_tokens else 0
    return VLA(backbone, expert, pre.proprio_dim, pre.action_dim, pre.past_steps + 1, pre.future_steps,
               freeze_backbone=freeze_backbone, n_image_tokens=n_image_tokens, views=(n_views, pre.image_size))
