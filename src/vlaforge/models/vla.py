"""The VLA: a VLM backbone reads images + instruction; a flow-matching action expert predicts actions.

The backbone appends one ``<|action|>`` token after the images and the instruction; that token's
hidden states from the backbone's last ``k`` layers condition the action expert (a head of
:mod:`vlaforge.models.heads`, chosen by ``expert.head``; ``vlm_mlp`` also reads the ViT's patch
states and the LLM's image-token states). With ``expert.train_action_token`` the token's input
embedding trains even over a frozen backbone. Backbones and heads are looked up by name
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
                 views: tuple[int, int] = (0, 0), train_vision: bool = False, vision_lr_scale: float = 1.0,
                 vision_train_blocks: int = 0):
        """``n_image_tokens``: image tokens of a sample's prompt; ``views``: (number of views, image size)
        of a sample, for a head with its own image encoder; ``train_vision``: the backbone's vision tower
        trains (also over an otherwise frozen backbone), at ``vision_lr_scale`` times the learning rate;
        ``vision_train_blocks`` > 0: only its last blocks and final norm (what enters them can be cached)."""
        super().__init__()
        if cfg.prediction not in ("velocity", "actions"):
            raise ValueError(f"expert.prediction={cfg.prediction!r}: use 'velocity' or 'actions'")
        head = HEADS.get(cfg.head)
        if cfg.last_k_layers > backbone.num_layers:
            raise ValueError(f"expert.last_k_layers={cfg.last_k_layers} exceeds the backbone's "
                             f"{backbone.num_layers} layers")
        self.reads_vision = getattr(head, "reads_vision", False)
        for needed, method in ((self.reads_vision, "vision_states"), (cfg.train_action_token, "train_action_token"),
                               (train_vision, "vision_tower")):
            if needed and not hasattr(backbone, method):
                raise ValueError(f"expert.head={cfg.head} / expert.train_action_token / vla.train_vision need a "
                                 f"backbone with {method}(); the '{backbone.kind}' backbone has none")
        self.backbone = backbone
        self.cfg = cfg
        self.image_states = cfg.image_tokens or self.reads_vision  # the backbone returns image-token states too
        extra = {"vision": backbone.vision_shape(views[0])} if self.reads_vision else {}
        self.expert = head(cfg, backbone.hidden_size, proprio_dim, action_dim, n_proprio, chunk,
                           n_image_tokens if self.image_states else 0, views, **extra)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for p in backbone.parameters():
                p.requires_grad_(False)
        if cfg.train_action_token:
            backbone.train_action_token()
        self.train_vision, self.vision_lr_scale = train_vision, vision_lr_scale
        if vision_train_blocks and not train_vision:
            raise ValueError("vision_train_blocks needs train_vision")
        self.vision_train_blocks = vision_train_blocks  # > 0: the stem and lower blocks stay frozen
        self.vision_start = 0  # the first ViT block that trains
        if train_vision:
            tower = backbone.vision_tower()
            self.vision_start, trained = tower.top(vision_train_blocks) if vision_train_blocks else (0, [tower])
            for p in nn.ModuleList(trained).parameters():
                p.requires_grad_(True)

    def lr_scales(self) -> dict[str, float]:
        """Parameter-name prefix -> learning-rate multiplier (:func:`vlaforge.train.optim.param_groups`)."""
        if not self.train_vision:
            return {}
        tower = self.backbone.vision_tower()
        return {next(name for name, m in self.named_modules() if m is tower) + ".": self.vision_lr_scale}

    def backbone_states(self, batch: dict) -> torch.Tensor:
        """The backbone's token states the expert reads (B, tokens, d); a frozen backbone's states may
        come precomputed in ``batch["backbone_states"]`` (the same values: its weights do not change),
        its ViT's patch states in ``batch["vision_states"]``."""
        if "backbone_states" in batch:
            if not self.freeze_backbone or self.cfg.train_action_token or self.train_vision:
                raise ValueError("precomputed backbone_states need a frozen backbone (freeze_backbone: true), "
                                 "a vision tower and an action token that do not train")
            return batch["backbone_states"]
        vision = {"vision": batch["vision_states"].float()} if "vision_states" in batch else {}
        train = not self.freeze_backbone or self.cfg.train_action_token or self.train_vision
        with torch.set_grad_enabled(torch.is_grad_enabled() and train):
            return self.backbone.action_features(batch["images"], batch["instruction"], self.cfg.last_k_layers,
                                                 image_states=self.image_states, **vision).float()

    def with_vision_states(self, batch: dict) -> dict:
        """``batch`` with the ViT's patch states: finished from the precomputed ``vision_trunk`` (the states
        entering the first ViT block that trains), else computed for a head that reads them."""
        if "vision_states" in batch or not (self.reads_vision or "vision_trunk" in batch):
            return batch
        with torch.set_grad_enabled(torch.is_grad_enabled() and (self.train_vision or not self.freeze_backbone)):
            if "vision_trunk" in batch:
                return {**batch, "vision_states": self.backbone.resume_vision(batch["vision_trunk"].float(),
                                                                             self.vision_start)}
            return {**batch, "vision_states": self.backbone.vision_states(batch["images"])}

    @torch.no_grad()
    def cacheable_states(self, batch: dict) -> dict[str, torch.Tensor]:
        """What the frozen part of the backbone computes for ``batch``, to precompute once per sample (float16):
        where the ViT's top trains, the states entering it; else the ViT's patch states where the head reads
        them or the LLM must run every step (a trained action token), and the backbone's states where the
        whole backbone is frozen."""
        if not self.freeze_backbone or (self.train_vision and not self.vision_train_blocks):
            raise ValueError("only a frozen backbone's states can be precomputed (freeze_backbone: true, "
                             "train_vision: false or vision_train_blocks > 0)")
        if self.train_vision:
            return {"vision_trunk": self.backbone.vision_states(batch["images"], stop=self.vision_start).half()}
        out = {}
        if self.reads_vision or self.cfg.train_action_token:
            out["vision_states"] = self.backbone.vision_states(batch["images"]).half()
        if not self.cfg.train_action_token:
            out["backbone_states"] = self.backbone_states({**batch, **out})
        return out

    def condition(self, batch: dict) -> torch.Tensor:
        """What the expert reads besides proprio, time and the noisy chunk (the head's ``condition``)."""
        batch = self.with_vision_states(batch)
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


def load_backbone(spec: str, freeze: bool = False, pretrained: bool = True) -> tuple[nn.Module, dict]:
    """A VLA backbone and the config a bundle records for it: ``hf:<hub name or path>``, or a stage's
    output folder whose ``config.json`` kind names a registered backbone (vlm_pretrain, hf_vlm).
    ``pretrained=False`` (a from-scratch VLM only): its architecture with random weights."""
    if not pretrained:
        kind = "hf_vlm" if spec.startswith(HF_PREFIX) else ckpt.read_config(spec).get("kind")
        if kind != "vlm":
            raise ValueError(f"vla.random_backbone needs a vlm_pretrain backbone, {spec} is a '{kind}' model")
        return BACKBONES.get("vlm").load_artifact(spec, freeze, pretrained=False)
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


def build_vla(backbone: nn.Module, expert: ActionExpertConfig, pre, freeze_backbone: bool = False,
              train_vision: bool = False, vision_lr_scale: float = 1.0, vision_train_blocks: int = 0) -> VLA:
    """The VLA for data of preprocessing config ``pre`` (also how a bundle is rebuilt before loading weights)."""
    n_views = len(pre.cameras) * len(pre.image_indices)
    image_states = expert.image_tokens or getattr(HEADS.get(expert.head), "reads_vision", False)
    n_image_tokens = backbone.image_token_count(n_views, pre.image_size) if image_states else 0
    return VLA(backbone, expert, pre.proprio_dim, pre.action_dim, pre.past_steps + 1, pre.future_steps,
               freeze_backbone=freeze_backbone, n_image_tokens=n_image_tokens, views=(n_views, pre.image_size),
               train_vision=train_vision, vision_lr_scale=vision_lr_scale, vision_train_blocks=vision_train_blocks)
