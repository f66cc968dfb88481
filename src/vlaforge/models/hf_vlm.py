"""A Hugging Face VLM (Qwen3-VL, SmolVLM, ...) as vlaforge's VLM backbone.

:class:`HFVLMBackbone` loads any image-text-to-text model by hub name or local folder, gains the
``<|action|>`` token, and gives the VLA the hidden states at that token (:meth:`action_features`).
:func:`hf_vlm_caption_loss` fine-tunes it on image captions. A vlaforge model folder holding one is
``config.json`` = ``{"kind": "hf_vlm", "hf_path": "hf"}`` plus the Hugging Face files under ``hf/``.
"""

from __future__ import annotations

import json
import logging
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoModelForImageTextToText

from vlaforge import storage
from vlaforge.models.hf_processor import load_processor
from vlaforge.models.registry import register_backbone

log = logging.getLogger(__name__)

ACTION_TOKEN = "<|action|>"
CAPTION_PROMPT = "Describe the image."
KIND = "hf_vlm"
HF_PATH = "hf"


def resolve_dtype(torch_dtype: str) -> str | torch.dtype:
    if torch_dtype == "auto":
        return "auto"
    dtype = getattr(torch, torch_dtype, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"torch_dtype={torch_dtype!r} is not 'auto' or a floating dtype (float32, bfloat16, ...)")
    return dtype


@register_backbone(KIND)
class HFVLMBackbone(nn.Module):
    """An HF image-text-to-text model + its processor, with the ``<|action|>`` token added."""

    kind = KIND

    def __init__(self, name_or_path: str, torch_dtype: str = "auto", freeze: bool = False):
        super().__init__()
        self.name_or_path = name_or_path
        self.model = AutoModelForImageTextToText.from_pretrained(name_or_path, dtype=resolve_dtype(torch_dtype))
        self.processor = load_processor(name_or_path)
        tok = self.processor.tokenizer
        if not getattr(self.processor, "chat_template", None):
            raise ValueError(f"{name_or_path}: the processor has no chat template; vlaforge builds prompts with it")
        tok.padding_side = "right"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if ACTION_TOKEN not in tok.get_vocab():
            tok.add_tokens([ACTION_TOKEN], special_tokens=True)
        self.action_token_id = tok.convert_tokens_to_ids(ACTION_TOKEN)
        if len(tok) > self.model.get_input_embeddings().num_embeddings:
            self.model.resize_token_embeddings(len(tok))
        text = self.model.config.get_text_config()
        self.hidden_size: int = text.hidden_size
        self.num_layers: int = text.num_hidden_layers
        self.frozen = freeze
        if freeze:
            self.model.requires_grad_(False)
        self.train(False)
        log.info("loaded HF VLM %s (%s, %d layers x %d, %.1fM params%s)", name_or_path, self.model.config.model_type,
                 self.num_layers, self.hidden_size, sum(p.numel() for p in self.model.parameters()) / 1e6,
                 ", frozen" if freeze else "")

    def train(self, mode: bool = True) -> HFVLMBackbone:
        """A frozen backbone stays in eval mode (no dropout) while the rest of the policy trains."""
        super().train(mode and not self.frozen)
        return self

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def prompt(self, num_images: int, text: str) -> str:
        """A user turn with ``num_images`` image placeholders then ``text``, followed by the assistant cue."""
        content = [{"type": "image"}] * num_images + [{"type": "text", "text": text}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                  tokenize=False)

    def encode(self, images: torch.Tensor, texts: list[str]) -> dict[str, torch.Tensor]:
        """Processor inputs on the model's device: ``images`` uint8 (B, V, 3, H, W), ``texts`` B prompts."""
        if images.dtype != torch.uint8 or images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be uint8 (B, V, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(texts) != images.shape[0]:
            raise ValueError(f"{len(texts)} texts for a batch of {images.shape[0]} image sets")
        arrays = images.cpu().numpy()
        enc = self.processor(text=texts, images=[list(views) for views in arrays], padding=True, return_tensors="pt",
                             input_data_format="channels_first")
        dtype = self.model.dtype
        return {k: v.to(self.device, dtype=dtype if v.is_floating_point() else None) for k, v in enc.items()}

    def image_token_count(self, n_views: int, image_size: int) -> int:
        """How many image tokens a prompt of ``n_views`` images of ``image_size`` pixels holds."""
        images = torch.zeros((1, n_views, 3, image_size, image_size), dtype=torch.uint8)
        ids = self.encode(images, [self.prompt(n_views, "") + ACTION_TOKEN])["input_ids"]
        return int((ids == self._image_token_id()).sum())

    def action_features(self, images: torch.Tensor, instructions: list[str], last_k: int,
                        image_states: bool = False) -> torch.Tensor:
        """Hidden states at the ``<|action|>`` token of the last ``last_k`` decoder layers: (B, last_k, hidden_size),
        preceded by the last layer's states at the image tokens when ``image_states``.

        The prompt holds the V views of ``images`` (uint8 (B, V, 3, H, W)), the instruction, then ``<|action|>``.
        """
        if not 1 <= last_k <= self.num_layers:
            raise ValueError(f"last_k={last_k} must lie in [1, {self.num_layers}] (the decoder's layers)")
        texts = [self.prompt(images.shape[1], instruction) + ACTION_TOKEN for instruction in instructions]
        enc = self.encode(images, texts)
        is_action = enc["input_ids"] == self.action_token_id
        if not bool((is_action.sum(1) == 1).all()):
            raise ValueError(f"every prompt must hold exactly one {ACTION_TOKEN}; an instruction contains it")
        position = is_action.int().argmax(1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.model.model(**enc, output_hidden_states=True, use_cache=False).hidden_states
        rows = torch.arange(len(texts), device=position.device)
        picked = torch.stack([h[rows, position] for h in hidden[-last_k:]], dim=1)
        if image_states:
            picked = torch.cat([self._image_states(enc["input_ids"], hidden[-1]), picked], dim=1)
        return picked.float()

    def _image_token_id(self) -> int:
        image_id = getattr(self.model.config, "image_token_id", None)
        if image_id is None:
            raise ValueError(f"{self.name_or_path}: the model config names no image_token_id, so expert.image_tokens "
                             "cannot find the image tokens; set expert.image_tokens=false")
        return image_id

    def _image_states(self, input_ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The last layer's states at the image placeholder tokens: (B, image tokens, hidden_size)."""
        is_image = input_ids == self._image_token_id()
        counts = is_image.sum(1)
        if not bool((counts == counts[0]).all()):
            raise ValueError(f"image token counts differ across the batch: {counts.tolist()}")
        return last[is_image].view(len(input_ids), int(counts[0]), last.shape[-1])

    def save(self, out_dir: str) -> None:
        """Write the model and processor (``save_pretrained`` files) to ``out_dir`` (local or s3://).

        Each file lands atomically; a reader that needs the whole folder waits for a marker written last
        (:func:`save_hf_vlm_artifact`).
        """
        with tempfile.TemporaryDirectory(prefix="vlaforge-hf-save-") as tmp:
            self.model.save_pretrained(tmp)
            self.processor.save_pretrained(tmp)
            storage.upload_dir(tmp, out_dir)

    @classmethod
    def load(cls, out_dir: str, **kw) -> HFVLMBackbone:
        """The backbone saved by :meth:`save` at ``out_dir`` (local or s3://); ``kw`` as for the constructor."""
        with storage.local_dir(out_dir) as local:
            return cls(local, **kw)

    @classmethod
    def load_pretrained(cls, source: str, freeze: bool = False) -> tuple[HFVLMBackbone, dict]:
        """The backbone of a hub name or ``save_pretrained`` folder, and the config a bundle records for it."""
        return cls(source, freeze=freeze), {"kind": KIND, "source": source}

    @classmethod
    def load_artifact(cls, uri: str, freeze: bool = False) -> tuple[HFVLMBackbone, dict]:
        """The backbone of an hf_vlm output folder, and the config a bundle records for it."""
        return load_hf_vlm_artifact(uri), {"kind": KIND, "source": uri}

    @classmethod
    def from_bundle(cls, uri: str, config: dict) -> HFVLMBackbone:
        """The backbone whose files a bundle keeps under ``hf/`` (the bundle's weights load later)."""
        return cls.load(storage.join(uri, HF_PATH))

    def save_bundle_files(self, out_uri: str) -> None:
        """The Hugging Face files, under ``hf/`` beside a bundle's weights."""
        self.save(storage.join(out_uri, HF_PATH))


def caption_inputs(backbone: HFVLMBackbone, images: torch.Tensor,
                   captions: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Model inputs for caption training and their labels (caption + eos tokens; -100 elsewhere).

    The prompt is a user turn with the images and :data:`CAPTION_PROMPT`; the caption is the assistant's answer.
    """
    prompts = [backbone.prompt(images.shape[1], CAPTION_PROMPT) for _ in captions]
    eos = backbone.processor.tokenizer.eos_token
    enc = backbone.encode(images, [p + c + eos for p, c in zip(prompts, captions)])
    prompt_lengths = backbone.encode(images, prompts)["attention_mask"].sum(1)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    positions = torch.arange(labels.shape[1], device=labels.device)
    return enc, labels.masked_fill(positions[None] < prompt_lengths[:, None], -100)


def hf_vlm_caption_loss(backbone: HFVLMBackbone, images: torch.Tensor, captions: list[str],
                        reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy on the caption tokens of images (B, 1, 3, H, W) uint8 (see :func:`caption_inputs`).

    Logits are computed only where some row predicts a caption token, not over image and prompt
    positions. ``reduction="none"`` gives per-sample means.
    """
    enc, labels = caption_inputs(backbone, images, captions)
    targets = labels[:, 1:]
    keep = (targets != -100).any(0).nonzero().squeeze(1)  # position t predicts token t + 1
    logits = backbone.model(**enc, use_cache=False, logits_to_keep=keep).logits
    targets = targets[:, keep]
    loss = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
    mask = (targets != -100).float()
    if reduction == "none":
        return (loss * mask).sum(1) / mask.sum(1).clamp(min=1)
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def artifact_marker(backbone: HFVLMBackbone) -> dict:
    """The ``config.json`` of an HF VLM model folder."""
    return {"kind": KIND, "hf_path": HF_PATH, "model_type": backbone.model.config.model_type,
            "source": backbone.name_or_path}


def save_hf_vlm_artifact(backbone: HFVLMBackbone, out_uri: str) -> None:
    """A vlaforge model folder: the HF files under ``<out_uri>/hf/``, then the ``config.json`` marker."""
    backbone.save(storage.join(out_uri, HF_PATH))
    storage.write_text(storage.join(out_uri, "config.json"), json.dumps(artifact_marker(backbone), indent=2) + "\n")


def load_hf_vlm_artifact(uri: str, **kw) -> HFVLMBackbone:
    """The backbone in the vlaforge model folder ``uri`` (local or s3://); ``kw`` as for the constructor."""
    config_uri = storage.join(uri, "config.json")
    try:
        marker = json.loads(storage.read_text(config_uri))
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_uri}: not JSON ({err})") from err
    if marker.get("kind") != KIND:
        raise ValueError(f"{config_uri}: kind={marker.get('kind')!r}, expected {KIND!r} (an HF VLM model folder)")
    hf_path = marker.get("hf_path", HF_PATH)
    with storage.local_dir(storage.join(uri, hf_path)) as local:
        backbone = HFVLMBackbone(local, **kw)
    backbone.name_or_path = marker.get("source", uri)
    return backbone
