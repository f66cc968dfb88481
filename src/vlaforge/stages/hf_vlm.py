"""The hf_vlm stage: a Hugging Face VLM as the pipeline's VLM, optionally fine-tuned on image captions.

It replaces the tokenize -> llm_pretrain -> vlm_pretrain chain: the output is an HF VLM model folder
(see :mod:`vlaforge.models.hf_vlm`) that vla_finetune takes as its backbone. ``model`` names the
starting point: a hub name (``Qwen/Qwen3-VL-2B-Instruct``), a local folder or s3:// URI holding
``save_pretrained`` files, or ``tiny:<family>`` for a tiny random-weight model built on the spot
(offline runs and tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from vlaforge import storage
from vlaforge.artifacts import check_input, check_output
from vlaforge.config import load
from vlaforge.data.caption_pairs import caption_splits
from vlaforge.data.streams import batched
from vlaforge.models.hf_tiny import build_tiny_hf_vlm
from vlaforge.models.hf_vlm import HFVLMBackbone, artifact_marker, hf_vlm_caption_loss, save_hf_vlm_artifact
from vlaforge.stages import write_summary
from vlaforge.train.config import TrainConfig
from vlaforge.train.loop import train

log = logging.getLogger(__name__)
TINY = "tiny:"


@dataclass
class HFVLMStageConfig:
    model: str = "tiny:qwen3_vl"  # hub name, local folder, s3:// URI, or tiny:<family>
    torch_dtype: str = "auto"  # auto (the checkpoint's), float32, bfloat16, float16
    finetune: bool = True  # fine-tune on the caption shards when the stage gets them
    image_size: int = 64  # caption images are resized to this square first; the model's processor resizes again
    val_fraction: float = 0.1
    train: TrainConfig = field(default_factory=TrainConfig)


@contextlib.contextmanager
def model_source(spec: str) -> Iterator[str]:
    """A name or local folder ``from_pretrained`` accepts for ``spec`` (valid inside the ``with``)."""
    if spec.startswith(TINY):
        with tempfile.TemporaryDirectory(prefix="vlaforge-tiny-hf-") as tmp:
            yield build_tiny_hf_vlm(tmp, spec[len(TINY):])
    elif storage.is_remote(spec):
        with storage.local_dir(spec) as local:
            yield local
    else:
        yield spec


class HFCaptionTask:
    """Image-caption pairs as (B, 1, 3, S, S) uint8 images + caption strings for :func:`hf_vlm_caption_loss`."""

    stage = "hf_vlm"
    tokens_per_sample = 0

    def __init__(self, train_pairs: list, val_pairs: list, seed: int):
        self.train_pairs, self.val_pairs, self.seed = train_pairs, val_pairs, seed

    @staticmethod
    def collate(pairs: list[tuple[np.ndarray, str]]) -> dict:
        return {"images": torch.from_numpy(np.stack([img for img, _ in pairs]))[:, None],
                "captions": [caption for _, caption in pairs]}

    def train_batches(self, start_sample, rank, world, micro_batch):
        return map(self.collate, batched(self.train_pairs, micro_batch, self.seed, start_sample, rank, world))

    def val_batches(self, micro_batch):
        return map(self.collate, batched(self.val_pairs, micro_batch, self.seed, shuffle=False))

    def loss(self, model, batch):
        return hf_vlm_caption_loss(model, batch["images"], batch["captions"])


@torch.no_grad()
def image_use_gap(backbone: HFVLMBackbone, task: HFCaptionTask, batch_size: int = 8) -> dict:
    """Caption loss with the right images vs. with images rolled by one within the batch."""
    backbone.eval()
    batch = task.collate((task.val_pairs if len(task.val_pairs) >= 2 else task.train_pairs)[:batch_size])
    paired = float(hf_vlm_caption_loss(backbone, batch["images"], batch["captions"]))
    wrong = float(hf_vlm_caption_loss(backbone, batch["images"].roll(1, 0), batch["captions"]))
    return {"val_loss_paired": paired, "val_loss_mismatched": wrong}


def hf_vlm_stage(cfg: HFVLMStageConfig, out_uri: str, captions_uri: str = "") -> dict:
    """Load ``cfg.model``, fine-tune it on ``captions_uri`` (if given and ``cfg.finetune``), write it to ``out_uri``."""
    finetune = bool(captions_uri and cfg.finetune)
    if not finetune and int(os.environ.get("RANK", 0)):
        return {}  # several processes (torchrun) but nothing to train: rank 0 alone writes the output
    torch.manual_seed(cfg.train.seed)
    with model_source(cfg.model) as source:
        backbone = HFVLMBackbone(source, cfg.torch_dtype)
    backbone.name_or_path = cfg.model
    summary = {"model": cfg.model, "model_type": backbone.model.config.model_type,
               "parameters": sum(p.numel() for p in backbone.parameters()), "hidden_size": backbone.hidden_size,
               "num_layers": backbone.num_layers}
    if finetune:
        train_pairs, val_pairs = caption_splits(captions_uri, cfg.image_size, resize=True,
                                                val_fraction=cfg.val_fraction)
        log.info("hf_vlm: fine-tuning %s on %d train / %d val captions", cfg.model, len(train_pairs), len(val_pairs))
        task = HFCaptionTask(train_pairs, val_pairs, cfg.train.seed)
        # The loop writes weights + marker; the HF files written below replace its model.safetensors.
        trained = train(backbone, task, cfg.train, out_uri, artifact_marker(backbone))
        if not trained:  # not rank 0 of a distributed run: rank 0 writes the output
            return {}
        summary.update(trained)
        summary.update(image_use_gap(backbone, task))
        log.info("caption loss with paired images %.3f vs mismatched %.3f", summary["val_loss_paired"],
                 summary["val_loss_mismatched"])
    save_hf_vlm_artifact(backbone, out_uri)
    loop_weights = storage.join(out_uri, "model.safetensors")
    if storage.exists(loop_weights):
        fs, path = storage.filesystem(loop_weights)
        fs.rm(path)
    write_summary(out_uri, summary)
    return summary


def run(preset: str, overrides: str | list[str] | None, out_uri: str, captions_uri: str = "") -> dict:
    """Stage entry point (CLI and component): the ``hf_vlm`` section of ``preset`` + overrides."""
    cfg = load(HFVLMStageConfig, preset, overrides, "hf_vlm")
    check_output(out_uri, "hf_vlm")
    if captions_uri and cfg.finetune:
        check_input(captions_uri, "captions", "hf_vlm captions")
    return hf_vlm_stage(cfg, out_uri, captions_uri)
