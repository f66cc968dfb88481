"""The fast training step: fused (chunked) head loss, torch.compile, activation checkpointing, fused AdamW."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from foundation_util import LLM_OVERRIDES

from vlaforge.config import ConfigError
from vlaforge.models.fused_loss import linear_cross_entropy
from vlaforge.models.llm import LLMConfig, Transformer
from vlaforge.stages.llm_pretrain import run as llm_run
from vlaforge.train import checkpoint as ckpt
from vlaforge.train import strategy
from vlaforge.train.config import TrainConfig
from vlaforge.train.optim import build_optimizer

CFG = LLMConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=2, max_seq_len=32, tie_embeddings=False)


def grads_of(model: Transformer, tokens: torch.Tensor, targets: torch.Tensor) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss = model(tokens, targets)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("tied", [False, True])
def test_fused_loss_equals_plain_loss_and_gradients(tied, monkeypatch):
    torch.manual_seed(0)
    model = Transformer(dataclasses.replace(CFG, tie_embeddings=tied))
    tokens = torch.randint(0, 300, (3, 20))
    targets = torch.randint(0, 300, (3, 20))
    targets[0, :7] = -100  # ignored positions (prompt tokens of a caption) count in neither
    plain_loss, plain = grads_of(model, tokens, targets)
    model.fused_loss = True
    monkeypatch.setattr("vlaforge.models.fused_loss.LOGITS_BUDGET_BYTES", 7 * 300 * 4)  # 9 chunks of 7 rows
    fused_loss, fused = grads_of(model, tokens, targets)
    assert abs(fused_loss - plain_loss) < 1e-4
    for name, grad in plain.items():
        torch.testing.assert_close(fused[name], grad, atol=1e-4, rtol=0, msg=name)


def test_fused_loss_chunks_and_scales_by_the_incoming_gradient():
    torch.manual_seed(1)
    hidden = torch.randn(50, 16, requires_grad=True)
    weight = torch.randn(40, 16, requires_grad=True)
    targets = torch.randint(0, 40, (50,))
    (3.0 * F.cross_entropy(hidden @ weight.T, targets)).backward()
    expected = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    loss = 3.0 * linear_cross_entropy(hidden, weight, targets, chunk_rows=16)  # 3 chunks and a short one
    loss.backward()
    torch.testing.assert_close(loss, 3.0 * F.cross_entropy(hidden @ weight.T, targets))
    torch.testing.assert_close(hidden.grad, expected[0])
    torch.testing.assert_close(weight.grad, expected[1])


def test_activation_checkpointing_keeps_names_and_gradients():
    torch.manual_seed(0)
    model = Transformer(CFG)
    tokens, targets = torch.randint(0, 300, (2, 16)), torch.randint(0, 300, (2, 16))
    names = list(model.state_dict())
    loss, grads = grads_of(model, tokens, targets)
    strategy.prepare(model, TrainConfig(activation_checkpointing=True), torch.device("cpu"), 1)
    assert type(model.blocks[0]).__name__ == "CheckpointWrapper"
    assert list(model.state_dict()) == names  # the saved model reads back into a plain Transformer
    loss_ac, grads_ac = grads_of(model, tokens, targets)
    assert loss_ac == pytest.approx(loss, abs=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ac[name.replace("blocks.0.", "blocks.0._checkpoint_wrapped_module.")
                                            .replace("blocks.1.", "blocks.1._checkpoint_wrapped_module.")],
                                   grad, atol=1e-6, rtol=0)


def test_blocks_are_found_from_no_split_modules():
    model = Transformer(CFG)
    assert strategy.block_modules(model) == list(model.blocks)
    holder = torch.nn.Module()
    holder.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])
    assert strategy.block_modules(holder) == list(holder.layers)  # no _no_split_modules: ModuleList items


def test_adamw_is_fused_on_cpu():
    optimizer = build_optimizer(Transformer(CFG), TrainConfig())
    assert optimizer.defaults["fused"] and not optimizer.defaults["foreach"]


def test_compile_without_a_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(RuntimeError, match=r"train.compile=true needs a C\+\+ compiler .*g\+\+"):
        strategy.prepare(Transformer(CFG), TrainConfig(compile=True), torch.device("cpu"), 1)


def test_unknown_strategy_and_fsdp_without_a_process_group(tokenized, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="train.strategy must be one of ddp, fsdp, got 'zero3'"):
        llm_run("tiny", LLM_OVERRIDES + ["train.strategy=zero3"], str(tokenized), str(tmp_path / "a"))
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="train.strategy=fsdp with WORLD_SIZE=2 needs a torch.distributed "
                                           "process group, but MASTER_ADDR"):
        llm_run("tiny", LLM_OVERRIDES + ["train.strategy=fsdp", "train.max_steps=2"], str(tokenized),
                str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="activation_checkpointing"):
        llm_run("tiny", LLM_OVERRIDES + ["train.activation_checkpointing=maybe"], str(tokenized), str(tmp_path / "c"))


def test_fsdp_in_one_process_without_torchrun(tokenized, tmp_path, monkeypatch):
    """One GPU or kfp.local: fsdp (the cluster presets' default) runs in-process on a one-process group."""
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    overrides = LLM_OVERRIDES + ["train.max_steps=3", "train.log_every=1", "train.val_every=100",
                                 "train.ckpt_every=2"]
    plain = llm_run("tiny", overrides, str(tokenized), str(tmp_path / "plain"))
    sharded = llm_run("tiny", overrides + ["train.strategy=fsdp", "train.activation_checkpointing=true"],
                      str(tokenized), str(tmp_path / "fsdp"))
    assert sharded["final_loss"] == pytest.approx(plain["final_loss"], abs=1e-4)
    assert (tmp_path / "fsdp" / "checkpoints" / "step_00000002" / "dcp" / ".metadata").is_file()
    assert sharded["sample"] == plain["sample"]  # the written single-file model, read back
    assert not torch.distributed.is_initialized()


def losses(out) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.slow  # compiling one block took 60 s to 9 min on the shared 2-core machine
def test_compile_and_fused_loss_train_like_the_plain_step(tokenized, tmp_path):
    """The stage with compile + fused loss gives the plain stage's losses."""
    base = LLM_OVERRIDES + ["train.max_steps=6", "train.log_every=1", "train.val_every=100", "train.ckpt_every=100"]
    llm_run("tiny", base, str(tokenized), str(tmp_path / "plain"))
    llm_run("tiny", base + ["train.compile=true", "train.fused_loss=true"], str(tokenized), str(tmp_path / "fast"))
    plain, fast = losses(tmp_path / "plain"), losses(tmp_path / "fast")
    assert len(plain) == 6
    assert fast == pytest.approx(plain, abs=1e-4)


def test_fsdp_keeps_frozen_parts_frozen():
    """A frozen block, and a frozen weight inside a trained block, stay as they were under FSDP2."""
    torch.manual_seed(0)
    model = Transformer(dataclasses.replace(CFG, tie_embeddings=True))
    for p in model.blocks[0].parameters():
        p.requires_grad_(False)
    model.blocks[1].attn.q_proj.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(strategy="fsdp")
    assert strategy.init_process_group(cfg, 1)
    try:
        strategy.prepare(model, cfg, torch.device("cpu"), 1)
        optimizer = build_optimizer(model, cfg)
        for _ in range(3):
            tokens = torch.randint(0, 300, (2, 9))
            model(tokens[:, :-1], tokens[:, 1:]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        after = ckpt.full_state_dict(model)
    finally:
        torch.distributed.destroy_process_group()
    assert set(before) - set(after) == {"lm_head.weight"}  # tied: saved once, as save_model does
    for name in after:
        frozen = name.startswith("blocks.0.") or name == "blocks.1.attn.q_proj.weight"
        assert torch.equal(before[name], after[name]) == frozen, name
