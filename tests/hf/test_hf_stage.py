"""The hf_vlm stage: tiny HF VLMs imported and fine-tuned on caption shards into a VLM model folder."""

from __future__ import annotations

import json

import pytest
import torch
from synthetic_data import write_caption_shards

from vlaforge.cli import main as cli_main
from vlaforge.data.caption_pairs import caption_splits
from vlaforge.models.hf_vlm import load_hf_vlm_artifact
from vlaforge.stages.hf_vlm import HFCaptionTask, image_use_gap, run

FAST = ["train.max_steps=8", "train.lr=0.003", "train.val_every=4", "train.ckpt_every=4", "train.log_every=4"]


@pytest.fixture(scope="module")
def captions(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("captions"))
    write_caption_shards(out, 40, size=32)
    return out


def test_finetune_on_captions_writes_a_loadable_hf_vlm_folder(tmp_path, captions):
    out = tmp_path / "vlm"
    summary = run("tiny", ["model=tiny:idefics3", *FAST], str(out), captions)
    assert summary["model_type"] == "idefics3" and summary["steps"] == 8
    assert summary["final_val_loss"] < summary["initial_val_loss"]
    marker = json.loads((out / "config.json").read_text())
    assert marker == {"kind": "hf_vlm", "hf_path": "hf", "model_type": "idefics3", "source": "tiny:idefics3"}
    assert not (out / "model.safetensors").exists(), "the training loop's weights would duplicate hf/"
    assert (out / "metrics.jsonl").exists() and (out / "hf" / "processor_config.json").exists()
    assert json.loads((out / "train_summary.json").read_text()) == summary, "what a torchrun launcher hands on"

    loaded = load_hf_vlm_artifact(str(out))
    train_pairs, val_pairs = caption_splits(captions, 32, resize=True)
    gap = image_use_gap(loaded, HFCaptionTask(train_pairs, val_pairs, 0))
    assert gap["val_loss_paired"] == pytest.approx(summary["val_loss_paired"], rel=1e-4), "not the trained weights"


def test_import_only_through_the_cli(tmp_path, capsys):
    out = tmp_path / "vlm"
    assert cli_main(["hf-vlm", "--set", "model=tiny:qwen3_vl", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_type"] == "qwen3_vl" and "steps" not in summary
    assert json.loads((out / "train_summary.json").read_text()) == summary
    backbone = load_hf_vlm_artifact(str(out), freeze=True)
    images = torch.randint(0, 256, (1, 2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert backbone.action_features(images, ["reach the red square"], 1).shape == (1, 1, backbone.hidden_size)


def test_unknown_model_family_is_named_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny HF VLM family 'nope'"):
        run("tiny", ["model=tiny:nope"], str(tmp_path / "vlm"))
    assert not (tmp_path / "vlm").exists()


def test_import_only_under_torchrun_leaves_the_output_to_rank_0(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert run("tiny", ["model=tiny:qwen3_vl"], str(tmp_path / "vlm")) == {}
    assert not (tmp_path / "vlm").exists()
