"""The from-scratch VLM: learns captions, uses the image, rejects bad input clearly."""

from __future__ import annotations

import json

import pytest
import torch

from vlaforge.data.caption_pairs import caption_splits
from vlaforge.data.shards import ShardError
from vlaforge.data.tokenize import TokenizeConfig, tokenize_corpus
from vlaforge.models.llm import LLMConfig
from vlaforge.models.vit import ViTConfig
from vlaforge.stages.llm_pretrain import LLMStageConfig, llm_pretrain
from vlaforge.stages.vlm_pretrain import VLMStageConfig, load_vlm, vlm_pretrain
from vlaforge.train.config import TrainConfig

from synthetic_data import write_caption_shards

VIT = ViTConfig(image_size=32, patch_size=8, d_model=48, n_layers=2, n_heads=4, pixel_shuffle=2)


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(10):
        (corpus / f"doc{i}.txt").write_text(" ".join(f"a {c} square on the {s}." for c in ("red", "green", "blue")
                                                     for s in ("left", "right")) * 6)
    tokenize_corpus(TokenizeConfig(corpus=str(corpus), robot_fraction=0.0, vocab_size=300, seq_len=32,
                                   val_fraction=0.1), str(root / "tok"))
    cfg = LLMStageConfig(model=LLMConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=64),
                         train=TrainConfig(max_steps=10, global_batch_size=8, micro_batch_size=8, val_every=10,
                                           ckpt_every=100, log_every=10, warmup_steps=2))
    llm_pretrain(cfg, str(root / "tok"), str(root / "llm"))
    return str(root / "llm")


def test_vlm_learns_captions_and_uses_the_image(llm_dir, caption_shards, tmp_path):
    torch.set_num_threads(1)
    cfg = VLMStageConfig(vit=VIT, train=TrainConfig(global_batch_size=16, micro_batch_size=16, lr=3e-3,
                                                    warmup_steps=5, max_steps=300, val_every=150,
                                                    ckpt_every=1000, log_every=100))
    summary = vlm_pretrain(cfg, llm_dir, caption_shards, str(tmp_path / "vlm"))
    assert summary["final_val_loss"] < 0.2 * summary["initial_val_loss"]
    assert summary["val_loss_mismatched"] > 2 * summary["val_loss_paired"]
    assert json.loads((tmp_path / "vlm" / "train_summary.json").read_text()) == summary  # what launchers hand on
    model, tokenizer, config = load_vlm(str(tmp_path / "vlm"))
    assert config["tokens_per_image"] == VIT.tokens_per_image
    assert "<|image|>" in tokenizer.get_vocab()


def test_wrong_image_size_is_named(caption_shards):
    with pytest.raises(ShardError, match=r"is 32x32, expected 48x48"):
        caption_splits(caption_shards, 48)


def test_wrong_image_mode_is_named(tmp_path):
    write_caption_shards(str(tmp_path), 4, mode="L")
    with pytest.raises(ShardError, match=r"captions-000000.tar sample 000000: image mode is L"):
        caption_splits(str(tmp_path), 32)


def test_missing_caption_is_named(tmp_path):
    from vlaforge.data.shards import ShardWriter

    with ShardWriter(str(tmp_path), prefix="bad") as writer:
        writer.write({"__key__": "k1", "png": b"\x89PNG"})
    with pytest.raises(ShardError, match="bad-000000.tar sample k1"):
        caption_splits(str(tmp_path), 32)


def test_image_token_count_mismatch(llm_dir):
    from vlaforge.stages.vlm_pretrain import build_vlm_from_llm

    model, _, _ = build_vlm_from_llm(llm_dir, VIT)
    tokens = torch.full((1, 6), model.image_token_id)  # 6 placeholders, but one image gives 4 tokens
    with pytest.raises(ValueError, match="image token count mismatch"):
        model.embed(tokens, torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8))


def test_captions_cut_at_max_caption_tokens_are_counted_and_warned(llm_dir, caption_shards, tmp_path, caplog):
    from vlaforge.data.caption_pairs import CaptionBatcher
    from vlaforge.stages.vlm_pretrain import build_vlm_from_llm

    model, tokenizer, _ = build_vlm_from_llm(llm_dir, VIT)
    batcher = CaptionBatcher(tokenizer, model.image_token_id, VIT.tokens_per_image, max_caption_tokens=4)
    short, long = "a red square", "a red square on the left. a blue square on the right."
    cut, longest = batcher.overlong([short, long, long])
    assert cut == 2 and longest == len(tokenizer(long, add_special_tokens=False)["input_ids"]) > 4
    assert batcher([(torch.zeros(3, 32, 32, dtype=torch.uint8).numpy(), long)])["tokens"].shape[1] == \
        VIT.tokens_per_image + 4 + 1  # cut to 4 tokens + eos
    cfg = VLMStageConfig(vit=VIT, max_caption_tokens=2, train=TrainConfig(
        global_batch_size=8, micro_batch_size=8, warmup_steps=1, max_steps=1, val_every=1, ckpt_every=10, log_every=1))
    with caplog.at_level("WARNING", logger="vlaforge.stages.vlm_pretrain"):
        vlm_pretrain(cfg, llm_dir, caption_shards, str(tmp_path / "vlm"))
    assert "are longer than vlm.max_caption_tokens=2" in caplog.text
