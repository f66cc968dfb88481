"""The vlm_pretrain stage: ViT + projector + the pretrained LLM, trained on image captions.

Output (Model folder): ``model.safetensors``, ``config.json`` (``{"kind": "vlm", ...}``),
``tokenizer/`` (the LLM's, plus ``<|image|>``), ``metrics.jsonl``, ``train_summary.json`` (the summary
``run`` returns, image-use gap included), ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass, field

import torch

from vlaforge import storage
from vlaforge.artifacts import check_input, check_output
from vlaforge.config import load
from vlaforge.data.caption_pairs import CaptionBatcher, caption_splits
from vlaforge.data.streams import batched
from vlaforge.data.tokenize import load_tokenizer
from vlaforge.models.vit import ViTConfig
from vlaforge.models.vlm import IMAGE_TOKEN, VLM
from vlaforge.models.vlm_backbone import load_vlm
from vlaforge.stages import write_summary
from vlaforge.stages.llm_pretrain import load_llm
from vlaforge.train.config import TrainConfig
from vlaforge.train.loop import train

log = logging.getLogger(__name__)


@dataclass
class VLMStageConfig:
    vit: ViTConfig = field(default_factory=ViTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    max_caption_tokens: int = 48
    resize_images: bool = False  # resize captions' images to vit.image_size instead of rejecting them
    vit_checkpoint: str = ""  # start the ViT from this VLM model folder's vision tower (empty = scratch)
    val_fraction: float = 0.1


class CaptionTask:
    stage = "vlm_pretrain"
    tokens_per_sample = 0

    def __init__(self, train_pairs, val_pairs, batcher: CaptionBatcher, seed: int):
        self.train_pairs, self.val_pairs, self.batcher, self.seed = train_pairs, val_pairs, batcher, seed

    def train_batches(self, start_sample, rank, world, micro_batch):
        return map(self.batcher, batched(self.train_pairs, micro_batch, self.seed, start_sample, rank, world))

    def val_batches(self, micro_batch):
        return map(self.batcher, batched(self.val_pairs, micro_batch, self.seed, shuffle=False))

    def loss(self, model, batch):
        return model(batch["tokens"], batch["images"], batch["labels"])


def build_vlm_from_llm(llm_uri: str, vit_cfg: ViTConfig) -> tuple[VLM, object, dict]:
    """A VLM around the LLM at ``llm_uri``; its tokenizer gains the image token."""
    llm, llm_config = load_llm(llm_uri)
    tokenizer = load_tokenizer(storage.join(llm_uri, llm_config.get("tokenizer", "tokenizer")))
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    llm.resize_vocab(len(tokenizer))
    return VLM(vit_cfg, llm, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)), tokenizer, llm_config


def vlm_config(model: VLM) -> dict:
    return {"kind": "vlm", "vit": dataclasses.asdict(model.vit.cfg), "llm": dataclasses.asdict(model.llm.cfg),
            "image_token": IMAGE_TOKEN, "tokens_per_image": model.vit.cfg.tokens_per_image, "tokenizer": "tokenizer"}


@torch.no_grad()
def image_use_gap(model: VLM, task: CaptionTask, batch_size: int = 32) -> dict:
    """Caption loss with the right images vs. with images rolled by one within the batch."""
    model.eval()
    pairs = task.val_pairs[:batch_size] if len(task.val_pairs) >= 2 else task.train_pairs[:batch_size]
    batch = task.batcher(pairs)
    paired = float(model.caption_loss(batch["tokens"], batch["images"], batch["labels"]))
    wrong = float(model.caption_loss(batch["tokens"], batch["images"].roll(1, 0), batch["labels"]))
    return {"val_loss_paired": paired, "val_loss_mismatched": wrong}


def vlm_pretrain(cfg: VLMStageConfig, llm_uri: str, captions_uri: str, out_uri: str) -> dict:
    torch.manual_seed(cfg.train.seed)
    model, tokenizer, _ = build_vlm_from_llm(llm_uri, cfg.vit)
    if cfg.vit_checkpoint:
        vit_source, _, _ = load_vlm(cfg.vit_checkpoint)
        model.vit.load_state_dict(vit_source.vit.state_dict())
    train_pairs, val_pairs = caption_splits(captions_uri, cfg.vit.image_size, cfg.resize_images, cfg.val_fraction)
    log.info("VLM: %d train / %d val captions, %d image tokens per image, %.2fM parameters", len(train_pairs),
             len(val_pairs), cfg.vit.tokens_per_image, sum(p.numel() for p in model.parameters()) / 1e6)
    batcher = CaptionBatcher(tokenizer, model.image_token_id, cfg.vit.tokens_per_image, cfg.max_caption_tokens)
    cut, longest = batcher.overlong([c for _, c in train_pairs + val_pairs])
    if cut:
        log.warning("%d of %d captions are longer than vlm.max_caption_tokens=%d (the longest has %d tokens): "
                    "their ends are cut off; raise vlm.max_caption_tokens to keep them", cut,
                    len(train_pairs) + len(val_pairs), cfg.max_caption_tokens, longest)
    task = CaptionTask(train_pairs, val_pairs, batcher, cfg.train.seed)
    config = vlm_config(model)
    summary = train(model, task, cfg.train, out_uri, config)
    if summary:
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            storage.upload_dir(tmp, storage.join(out_uri, "tokenizer"))
        if cfg.train.strategy == "fsdp":  # the trained model here is sharded: read back the written one
            model, _, _ = load_vlm(out_uri)
        summary.update(image_use_gap(model.cpu(), task))
        log.info("caption loss with paired images %.3f vs mismatched %.3f", summary["val_loss_paired"],
                 summary["val_loss_mismatched"])
        write_summary(out_uri, summary)
    return summary


def run(preset: str, overrides: str | list[str] | None, llm_uri: str, captions_uri: str, out_uri: str) -> dict:
    """Stage entry point (CLI and component): the ``vlm`` section of ``preset`` + overrides."""
    cfg = load(VLMStageConfig, preset, overrides, "vlm")
    check_output(out_uri, "vlm_pretrain")
    check_input(llm_uri, "llm", "vlm_pretrain llm")
    check_input(captions_uri, "captions", "vlm_pretrain captions")
    if cfg.vit_checkpoint:
        check_input(cfg.vit_checkpoint, "vlm", "vlm.vit_checkpoint")
    return vlm_pretrain(cfg, llm_uri, captions_uri, out_uri)
