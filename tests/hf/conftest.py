"""Fixtures of the HF VLM tests: tiny random-weight models written to local folders (nothing downloaded)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub look-up would be a bug: every model here is a local folder

import pytest
import torch

from vlaforge.models.hf_tiny import build_tiny_hf_vlm

torch.set_num_threads(1)

TESTED_FAMILIES = ["qwen3_vl", "qwen2_vl", "idefics3"]


@pytest.fixture(scope="session", params=TESTED_FAMILIES)
def hf_model_dir(request, tmp_path_factory) -> str:
    """A tiny model + processor folder of each tested family, loadable by path like a hub name."""
    return build_tiny_hf_vlm(str(tmp_path_factory.mktemp(request.param) / "model"), request.param)


@pytest.fixture
def images() -> torch.Tensor:
    """A batch of 2 samples x 2 views of uint8 RGB images, 48 x 40 px."""
    return torch.randint(0, 256, (2, 2, 3, 48, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
