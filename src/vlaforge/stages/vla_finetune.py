"""The vla_finetune stage: a VLM backbone + flow-matching action expert on robotics shards.

Output (a self-contained policy bundle, see :mod:`vlaforge.policy.bundle`): weights, ``config.json``
(``{"kind": "vla", ...}``), the backbone's tokenizer (or HF files), ``stats.json``,
``normalizer.json``, ``preprocessing_config.yaml``, metrics and checkpoints.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from vlaforge.artifacts import check_input, check_output
from vlaforge.config import load
from vlaforge.data.mixture import MixtureSource
from vlaforge.models.heads import ActionExpertConfig
from vlaforge.models.vla import VLA, build_vla, load_backbone
from vlaforge.policy.bundle import write_bundle_extras
from vlaforge.robotics.augment import random_shift
from vlaforge.robotics.config import read_preprocessing_config
from vlaforge.robotics.loader import make_loader
from vlaforge.robotics.memory import InMemorySamples
from vlaforge.robotics.mixture import in_memory_mixture, in_memory_mixture_batches, mixture_loader, robotics_mixture
from vlaforge.train.config import TrainConfig
from vlaforge.train.loop import train

log = logging.getLogger(__name__)


@dataclass
class VLAStageConfig:
    expert: ActionExpertConfig = field(default_factory=ActionExpertConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    backbone: str = ""  # empty: the VLM input artifact; "hf:<name or path>" starts from a Hugging Face VLM
    freeze_backbone: bool = False
    train_vision: bool = False  # the backbone's vision tower trains, also when the rest is frozen
    vision_lr_scale: float = 1.0  # the vision tower's learning rate: train.lr times this
    vision_train_blocks: int = 0  # > 0: only the ViT's last N blocks (+ final norm) train; what enters them is cacheable
    execute_steps: int = 4  # actions executed from each predicted chunk before re-planning
    num_workers: int = 0  # DataLoader worker processes (streaming, or decoding into memory)
    shuffle_buffer: int = 512
    image_shift: int = 0  # random-shift augmentation of training images by up to this many pixels (0: off)
    data_in_memory: bool = False  # decode the train split once into memory instead of streaming it
    cache_backbone_states: bool = False  # with data_in_memory + freeze_backbone: run the frozen backbone once per sample
    balance_tasks: bool = False  # with data_in_memory: every task equally likely in a batch, however many samples it has
    random_backbone: bool = False  # the backbone's architecture with random weights (the pretraining ablation)
    data_weight: float = 1.0  # sampling weight of the input dataset when mixture lists more
    mixture: list[MixtureSource] = field(default_factory=list)  # more robotics datasets (same shapes), weighted

    def validate(self) -> None:
        if self.vision_train_blocks < 0 or (self.vision_train_blocks and not self.train_vision):
            raise ValueError(f"vla.vision_train_blocks={self.vision_train_blocks}: a number of ViT blocks (>= 0) that "
                             "train, with vla.train_vision: true")
        whole_vit = self.train_vision and not self.vision_train_blocks
        if self.cache_backbone_states and not (self.data_in_memory and self.freeze_backbone and not whole_vit):
            raise ValueError("vla.cache_backbone_states needs vla.data_in_memory: true, vla.freeze_backbone: true and "
                             "vla.train_vision: false or vla.vision_train_blocks > 0 (the states of a backbone that "
                             "trains change every step)")
        if self.vision_lr_scale <= 0:
            raise ValueError(f"vla.vision_lr_scale must be > 0, got {self.vision_lr_scale}")
        if self.balance_tasks and not self.data_in_memory:
            raise ValueError("vla.balance_tasks needs vla.data_in_memory: true")
        if self.balance_tasks and self.mixture:
            raise ValueError("vla.balance_tasks and vla.mixture both decide how samples are drawn; set one of them")


class RoboticsTask:
    stage = "vla_finetune"
    tokens_per_sample = 0

    def __init__(self, data_uri: str, cfg: VLAStageConfig, model: VLA):
        self.data_uri, self.cfg, self.model = data_uri, cfg, model
        self.mix = robotics_mixture(data_uri, cfg.mixture, cfg.data_weight) if cfg.mixture else None
        self.stats = self.mix.stats if self.mix else None  # the normalisation of every source

    def train_batches(self, start_sample, rank, world, micro_batch):
        if self.mix and self.cfg.data_in_memory:
            samples, sizes = in_memory_mixture(self.mix, self.cfg.num_workers)
            if self.cfg.cache_backbone_states:
                add_backbone_states(self.model, samples)
            return in_memory_mixture_batches(samples, sizes, self.mix.probabilities, micro_batch, self.cfg.train.seed,
                                             start_sample // micro_batch, rank, world)
        if self.mix:
            return iter(mixture_loader(self.mix, micro_batch, self.cfg.num_workers, self.cfg.train.seed,
                                       start_sample // micro_batch, rank, world, self.cfg.shuffle_buffer))
        if self.cfg.data_in_memory:
            samples = InMemorySamples(self.data_uri, workers=self.cfg.num_workers)
            if self.cfg.cache_backbone_states:
                add_backbone_states(self.model, samples)
            return samples.batches(micro_batch, self.cfg.train.seed, start_sample // micro_batch, rank, world,
                                   self.cfg.balance_tasks)
        return iter(make_loader(self.data_uri, micro_batch, self.cfg.num_workers, seed=self.cfg.train.seed,
                                start_batch=start_sample // micro_batch, shuffle_buffer=self.cfg.shuffle_buffer))

    def val_batches(self, micro_batch):
        return iter(make_loader(self.data_uri, micro_batch, 0, split="val", infinite=False, shuffle_buffer=0,
                                stats=self.stats))

    def loss(self, model, batch):
        if model.training and self.cfg.image_shift:
            batch = {**batch, "images": random_shift(batch["images"], self.cfg.image_shift)}
        return model.loss(batch)


@torch.no_grad()
def precompute_backbone_states(model: VLA, samples: InMemorySamples, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """What the frozen part of the backbone computes (:meth:`VLA.cacheable_states`) for every
    (unaugmented) sample, on the CPU, by column name."""
    device = next(model.parameters()).device
    chunks: dict[str, list[torch.Tensor]] = {}
    for start in tqdm(range(0, len(samples), batch_size), desc="backbone states", unit="batch", mininterval=5.0):
        batch = samples.batch(torch.arange(start, min(start + batch_size, len(samples))))
        states = model.cacheable_states({"images": batch["images"].to(device), "instruction": batch["instruction"]})
        for name, values in states.items():
            chunks.setdefault(name, []).append(values.cpu())
    return {name: torch.cat(values) for name, values in chunks.items()}


def add_backbone_states(model: VLA, samples: InMemorySamples) -> None:
    """Attach :func:`precompute_backbone_states` to ``samples`` as columns every batch carries."""
    for name, values in precompute_backbone_states(model, samples).items():
        samples.add_column(name, values)


def vla_finetune(cfg: VLAStageConfig, backbone_uri: str, robotics_uri: str, out_uri: str) -> dict:
    cfg.validate()
    torch.manual_seed(cfg.train.seed)
    pre = read_preprocessing_config(robotics_uri)
    backbone, backbone_config = load_backbone(cfg.backbone or backbone_uri, cfg.freeze_backbone,
                                              pretrained=not cfg.random_backbone)
    model = build_vla(backbone, cfg.expert, pre, cfg.freeze_backbone, cfg.train_vision, cfg.vision_lr_scale,
                      cfg.vision_train_blocks)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("VLA: %.2fM parameters (%.2fM trainable), cameras %s, image indices %s, chunk %d, execute %d",
             sum(p.numel() for p in model.parameters()) / 1e6, n_train / 1e6, pre.cameras, pre.image_indices,
             pre.future_steps, cfg.execute_steps)
    config = {"kind": "vla", "backbone": backbone_config, "expert": dataclasses.asdict(cfg.expert),
              "freeze_backbone": cfg.freeze_backbone, "train_vision": cfg.train_vision,
              "vision_lr_scale": cfg.vision_lr_scale, "vision_train_blocks": cfg.vision_train_blocks,
              "random_backbone": cfg.random_backbone,
              "execute_steps": cfg.execute_steps,
              "train": dataclasses.asdict(cfg.train), "data": robotics_uri, "data_weight": cfg.data_weight,
              "mixture": [dataclasses.asdict(m) for m in cfg.mixture]}
    task = RoboticsTask(robotics_uri, cfg, model)
    summary = train(model, task, cfg.train, out_uri, config)
    if summary:
        write_bundle_extras(model, robotics_uri, out_uri, task.stats)
    return summary


def run(preset: str, overrides: str | list[str] | None, backbone_uri: str, robotics_uri: str, out_uri: str) -> dict:
    """Stage entry point (CLI and component): the ``vla`` section of ``preset`` + overrides."""
    cfg = load(VLAStageConfig, preset, overrides, "vla")
    cfg.validate()  # settings first, then the output, then the inputs
    check_output(out_uri, "vla_finetune")
    if not cfg.backbone:
        check_input(backbone_uri, ("vlm", "hf_vlm"), "vla_finetune backbone")
    check_input(robotics_uri, "robotics", "vla_finetune robotics")
    for i, source in enumerate(cfg.mixture):
        check_input(source.uri, "robotics", f"vla.mixture[{i}].uri")
    return vla_finetune(cfg, backbone_uri, robotics_uri, out_uri)
