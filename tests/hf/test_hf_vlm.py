"""The HF VLM backbone on tiny random-weight models of two families, loaded by local path."""

from __future__ import annotations

import json

import pytest
import torch

from vlaforge.models.hf_vlm import (
    ACTION_TOKEN,
    HFVLMBackbone,
    caption_inputs,
    hf_vlm_caption_loss,
    load_hf_vlm_artifact,
    save_hf_vlm_artifact,
)

INSTRUCTIONS = ["pick up the red block", "push the button and open the drawer"]
CAPTIONS = ["a red block", "a robot arm reaches for a blue cube"]


def features(backbone: HFVLMBackbone, images: torch.Tensor, instructions=INSTRUCTIONS, last_k=2) -> torch.Tensor:
    with torch.no_grad():
        return backbone.action_features(images, instructions, last_k)


def test_loads_by_path_with_action_token_and_image_only_processor(hf_model_dir):
    backbone = HFVLMBackbone(hf_model_dir)
    tok = backbone.processor.tokenizer
    text_config = backbone.model.config.get_text_config()
    assert backbone.kind == "hf_vlm"
    assert (backbone.hidden_size, backbone.num_layers) == (text_config.hidden_size, text_config.num_hidden_layers)
    assert tok.convert_ids_to_tokens(backbone.action_token_id) == ACTION_TOKEN
    assert backbone.model.get_input_embeddings().num_embeddings >= len(tok) > backbone.action_token_id
    assert type(backbone.processor.image_processor).__name__.endswith("Pil")  # works without torchvision
    assert not hasattr(backbone.processor, "video_processor")


def test_action_features_shape_and_gradient_reaches_the_backbone(hf_model_dir, images):
    backbone = HFVLMBackbone(hf_model_dir)
    backbone.train()
    out = backbone.action_features(images, INSTRUCTIONS, last_k=2)
    assert out.shape == (2, 2, backbone.hidden_size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not torch.allclose(out[:, 0], out[:, 1])  # two different layers
    out.square().mean().backward()
    grads = {name: p.grad for name, p in backbone.model.named_parameters() if p.grad is not None}
    vision = [g for name, g in grads.items() if "vision" in name or "visual" in name]
    assert vision and any(g.abs().sum() > 0 for g in vision), "no gradient reached the vision tower"
    action_row = backbone.model.get_input_embeddings().weight.grad[backbone.action_token_id]
    assert action_row.abs().sum() > 0, "no gradient reached the <|action|> embedding"


def test_action_features_depend_on_own_images_and_instruction_only(hf_model_dir, images):
    backbone = HFVLMBackbone(hf_model_dir)
    base = features(backbone, images)
    alone = features(backbone, images[1:], INSTRUCTIONS[1:])  # no padding in a batch of one
    torch.testing.assert_close(alone[0], base[1], rtol=1e-4, atol=1e-5)

    other_view = images.clone()
    other_view[0, 1] = 255 - other_view[0, 1]
    changed = features(backbone, other_view)
    assert not torch.allclose(changed[0], base[0], atol=1e-5), "the second view does not reach the features"
    torch.testing.assert_close(changed[1], base[1], rtol=1e-4, atol=1e-5)

    reworded = features(backbone, images, ["pick up the blue block", INSTRUCTIONS[1]])
    assert not torch.allclose(reworded[0], base[0], atol=1e-5), "the instruction does not reach the features"


def test_frozen_backbone_gives_no_gradient(hf_model_dir, images):
    backbone = HFVLMBackbone(hf_model_dir, freeze=True)
    backbone.train()
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.parameters())
    out = backbone.action_features(images, INSTRUCTIONS, last_k=1)
    assert out.shape == (2, 1, backbone.hidden_size) and not out.requires_grad


def test_caption_labels_are_the_caption_and_eos_only(hf_model_dir, images):
    backbone = HFVLMBackbone(hf_model_dir)
    tok = backbone.processor.tokenizer
    enc, labels = caption_inputs(backbone, images[:, :1], CAPTIONS)
    assert labels.shape == enc["input_ids"].shape
    for row, caption in zip(labels, CAPTIONS):
        assert tok.decode(row[row != -100]) == caption + tok.eos_token
    with torch.no_grad():  # the same loss as transformers' own on all logits
        reference = backbone.model(**enc, labels=labels).loss
        torch.testing.assert_close(hf_vlm_caption_loss(backbone, images[:, :1], CAPTIONS), reference)


def test_one_caption_step_lowers_the_loss(hf_model_dir, images):
    torch.manual_seed(0)
    backbone = HFVLMBackbone(hf_model_dir)
    backbone.train()
    opt = torch.optim.AdamW(backbone.parameters(), lr=1e-2)
    loss = hf_vlm_caption_loss(backbone, images[:, :1], CAPTIONS)
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = hf_vlm_caption_loss(backbone, images[:, :1], CAPTIONS)
        per_sample = hf_vlm_caption_loss(backbone, images[:, :1], CAPTIONS, reduction="none")
    assert torch.isfinite(loss) and after < loss
    assert per_sample.shape == (2,) and torch.isfinite(per_sample).all()


def test_save_then_load_gives_identical_outputs(hf_model_dir, images, tmp_path):
    backbone = HFVLMBackbone(hf_model_dir)
    opt = torch.optim.SGD(backbone.parameters(), lr=0.5)
    hf_vlm_caption_loss(backbone, images[:, :1], CAPTIONS).backward()
    opt.step()  # the saved weights must be the trained ones, not the folder's
    backbone.save(str(tmp_path / "saved"))
    loaded = HFVLMBackbone.load(str(tmp_path / "saved"))
    assert loaded.action_token_id == backbone.action_token_id
    assert len(loaded.processor.tokenizer) == len(backbone.processor.tokenizer)
    torch.testing.assert_close(features(loaded, images), features(backbone, images), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(hf_vlm_caption_loss(loaded, images[:, :1], CAPTIONS),
                                   hf_vlm_caption_loss(backbone, images[:, :1], CAPTIONS), rtol=0, atol=0)


def test_artifact_roundtrip_keeps_hf_files_beside_the_marker(hf_model_dir, images, tmp_path):
    backbone = HFVLMBackbone(hf_model_dir)
    out = tmp_path / "vlm"
    save_hf_vlm_artifact(backbone, str(out))
    marker = json.loads((out / "config.json").read_text())
    assert marker["kind"] == "hf_vlm" and marker["hf_path"] == "hf"
    assert json.loads((out / "hf" / "config.json").read_text())["model_type"] == backbone.model.config.model_type
    loaded = load_hf_vlm_artifact(str(out), freeze=True)
    assert loaded.frozen and loaded.name_or_path == hf_model_dir
    torch.testing.assert_close(features(loaded, images), features(backbone, images), rtol=0, atol=0)


def test_artifact_loader_rejects_other_model_folders(tmp_path):
    (tmp_path / "vlm").mkdir()
    (tmp_path / "vlm" / "config.json").write_text(json.dumps({"kind": "vlm"}))
    with pytest.raises(ValueError, match=r"vlm/config.json: kind='vlm'"):
        load_hf_vlm_artifact(str(tmp_path / "vlm"))
    with pytest.raises(FileNotFoundError, match="missing"):
        load_hf_vlm_artifact(str(tmp_path / "missing"))


def test_bad_inputs_name_the_culprit(hf_model_dir, images):
    backbone = HFVLMBackbone(hf_model_dir)
    with pytest.raises(ValueError, match="uint8"):
        backbone.action_features(images.float(), INSTRUCTIONS, 1)
    with pytest.raises(ValueError, match=r"\(B, V, 3, H, W\)"):
        backbone.action_features(images[:, 0], INSTRUCTIONS, 1)
    with pytest.raises(ValueError, match="3 texts for a batch of 2"):
        backbone.action_features(images, INSTRUCTIONS + ["x"], 1)
    with pytest.raises(ValueError, match="last_k=3"):
        backbone.action_features(images, INSTRUCTIONS, backbone.num_layers + 1)
    with pytest.raises(ValueError, match="exactly one <\\|action\\|>"):
        backbone.action_features(images, ["go " + ACTION_TOKEN, "stop"], 1)
    with pytest.raises(ValueError, match="torch_dtype='int8'"):
        HFVLMBackbone(hf_model_dir, torch_dtype="int8")


def test_bfloat16_weights_give_float32_features(hf_model_dir, images):
    backbone = HFVLMBackbone(hf_model_dir, torch_dtype="bfloat16")
    assert backbone.model.dtype == torch.bfloat16
    out = features(backbone, images)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_image_states_precede_the_action_states(hf_model_dir, images):
    backbone = HFVLMBackbone(hf_model_dir)
    plain = features(backbone, images, last_k=1)
    with torch.no_grad():
        both = backbone.action_features(images, INSTRUCTIONS, 1, image_states=True)
    texts = [backbone.prompt(images.shape[1], t) + ACTION_TOKEN for t in INSTRUCTIONS]
    n_image = int((backbone.encode(images, texts)["input_ids"][0] == backbone.model.config.image_token_id).sum())
    assert n_image > 0 and both.shape == (2, n_image + 1, backbone.hidden_size)
    square = images[..., :40, :]  # policy frames are square (preprocess.image_size)
    with torch.no_grad():
        n_square = backbone.action_features(square, INSTRUCTIONS, 1, image_states=True).shape[1] - 1
    assert backbone.image_token_count(images.shape[1], 40) == n_square
    torch.testing.assert_close(both[:, -1:], plain)
    assert not torch.allclose(both[0, :n_image], both[1, :n_image])  # each sample's own images
