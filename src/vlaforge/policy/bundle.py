"""Policy bundles: save the files inference needs beside the weights, and load a bundle as a Policy.

A bundle folder holds ``model.safetensors``, ``config.json`` (kind "vla"), the backbone's own files
(``tokenizer/`` of the from-scratch VLM, ``hf/`` of a Hugging Face VLM), ``stats.json``, ``normalizer.json`` and
``preprocessing_config.yaml``. Nothing else is needed to act.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from vlaforge import storage
from vlaforge.robotics.config import read_preprocessing_config
from vlaforge.robotics.loader import observations_to_batch
from vlaforge.robotics.normalize import Normalizer
from vlaforge.train import checkpoint as ckpt

REQUIRED = ("model.safetensors", "config.json", "normalizer.json", "preprocessing_config.yaml")


def write_bundle_extras(model, robotics_uri: str, out_uri: str, stats: dict | None = None) -> None:
    """Tokenizer/HF files, normaliser, stats and preprocessing config next to the trained weights;
    ``stats`` (a data mixture's combined statistics) replaces the dataset's ``stats.json``."""
    from vlaforge.robotics.loader import RoboticsDataset

    dataset = RoboticsDataset(robotics_uri, "train", infinite=False, stats=stats)
    storage.write_text(storage.join(out_uri, "normalizer.json"), json.dumps(dataset.normalizer.to_dict(), indent=2))
    names = ["preprocessing_config.yaml"] + ([] if stats else ["stats.json"])
    if stats:
        storage.write_text(storage.join(out_uri, "stats.json"), json.dumps(stats, indent=1))
    for name in names:
        storage.write_bytes(storage.join(out_uri, name), storage.read_bytes(storage.join(robotics_uri, name)))
    model.backbone.save_bundle_files(out_uri)


def load_vla(uri: str) -> tuple[torch.nn.Module, dict]:
    """The VLA model of a bundle (eval mode) and its config."""
    missing = [f for f in REQUIRED if not storage.exists(storage.join(uri, f))]
    if missing:
        raise FileNotFoundError(f"policy bundle {uri} is missing {', '.join(missing)}")
    config = ckpt.read_config(uri)
    if config.get("kind") != "vla":
        raise ValueError(f"{uri} holds a '{config.get('kind')}' model, not a VLA policy bundle")
    from vlaforge.models.vla import ActionExpertConfig, backbone_from_bundle, build_vla

    model = build_vla(backbone_from_bundle(uri, config), ActionExpertConfig(**config["expert"]),
                      read_preprocessing_config(uri), config.get("freeze_backbone", False))
    ckpt.load_weights(model, uri)
    return model.eval(), config


class VLAPolicy:
    """A trained VLA as a :class:`vlaforge.policy.Policy`."""

    def __init__(self, uri: str, device: str | None = None, flow_steps: int | None = None,
                 execute_steps: int | None = None, name: str | None = None):
        self.uri = uri
        self.model, self.config = load_vla(uri)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.preprocessing = read_preprocessing_config(uri)
        self.normalizer = Normalizer.from_dict(json.loads(storage.read_text(storage.join(uri, "normalizer.json"))))
        self.flow_steps = flow_steps or self.model.cfg.flow_steps
        self.execute_steps = execute_steps or self.config.get("execute_steps", 1)
        self.n_obs_steps = self.preprocessing.history_length()
        self.cameras = list(self.preprocessing.cameras)
        self.image_size = self.preprocessing.image_size
        self.action_dim = self.preprocessing.action_dim
        self.name = name or os.path.basename(str(uri).rstrip("/")) or "vla"

    def predict(self, histories, seed: int | None = None) -> list[np.ndarray]:
        batch = observations_to_batch(histories, self.preprocessing, self.normalizer)
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        chunks = self.model.sample(batch, generator, self.flow_steps).float().cpu().numpy()
        return list(self.normalizer.denormalize("action", chunks).astype(np.float32))


def load_bundle_policy(uri: str, **kwargs) -> VLAPolicy:
    return VLAPolicy(uri, **kwargs)
