"""Presets and overrides: typed, strict, and the size presets have the shapes their names promise."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vlaforge.config import ConfigError, load, load_preset_dict
from vlaforge.data.tokenize import TokenizeConfig
from vlaforge.models.llm import Transformer
from vlaforge.stages.hf_vlm import HFVLMStageConfig
from vlaforge.stages.llm_pretrain import LLMStageConfig
from vlaforge.stages.vla_finetune import VLAStageConfig
from vlaforge.stages.vlm_pretrain import VLMStageConfig
from vlaforge.train.loop import total_steps

SIZE_PRESETS = {"11m": 11e6, "100m": 100e6, "410m": 410e6, "1b": 1e9}


def test_unknown_key_in_an_override_names_key_and_preset():
    with pytest.raises(ConfigError, match=r"tiny\.yaml.*unknown key 'llm\.model\.n_layer' \(did you mean "
                                          r"'llm\.model\.n_layers'\?\)"):
        load(LLMStageConfig, "tiny", ["model.n_layer=2"], "llm")


def test_unknown_key_in_a_preset_file_names_the_file(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("extends: tiny\nllm:\n  train: {max_step: 5}\n")
    with pytest.raises(ConfigError, match=rf"{preset}.*unknown key 'llm\.train\.max_step'"):
        load(LLMStageConfig, str(preset), None, "llm")


def test_wrong_types_and_unknown_presets_are_errors():
    with pytest.raises(ConfigError, match=r"'llm\.train\.max_steps' must be an integer, got 'many'"):
        load(LLMStageConfig, "tiny", ["train.max_steps=many"], "llm")
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'.*known presets: .*100m.*tiny"):
        load(LLMStageConfig, "huge", None, "llm")
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        load(LLMStageConfig, "tiny", ["train.lr"], "llm")


def test_numbers_in_scientific_notation():
    """YAML 1.1 reads 3e-4 as a string; number fields still take it (overrides and resolved presets)."""
    cfg = load(LLMStageConfig, "tiny", ["train.lr=3e-4", "train.budget_tokens=2e9", "model.norm_eps=1e-06"], "llm")
    assert (cfg.train.lr, cfg.train.budget_tokens, cfg.model.norm_eps) == (3e-4, 2_000_000_000, 1e-6)
    with pytest.raises(ConfigError, match="must be an integer, got 2.5"):
        load(LLMStageConfig, "tiny", ["train.max_steps=2.5e0"], "llm")


def test_overrides_string_forms():
    a = load(LLMStageConfig, "tiny", "train.lr=0.01; model.n_layers=3\ntrain.seed=4", "llm")
    assert (a.train.lr, a.model.n_layers, a.train.seed) == (0.01, 3, 4)


@pytest.mark.parametrize("preset", sorted(SIZE_PRESETS))
def test_size_presets(preset):
    llm = load(LLMStageConfig, preset, None, "llm")
    tok = load(TokenizeConfig, preset, None, "tokenize")
    data, source = load_preset_dict(preset)
    assert "extends " in source and "tiny.yaml" in source and set(data["tokenize"]) | set(data["llm"]) <= {
        *(f.name for f in dataclasses.fields(TokenizeConfig)), *(f.name for f in dataclasses.fields(LLMStageConfig))}
    base, _ = load_preset_dict("tiny")
    assert {k: v for k, v in data.items() if k not in ("tokenize", "llm")} == {
        k: v for k, v in base.items() if k not in ("tokenize", "llm")}  # only the text stages change
    assert llm.model.max_seq_len >= tok.seq_len and llm.train.precision == ("auto" if preset == "11m" else "bf16")
    assert llm.train.strategy == ("ddp" if preset == "11m" else "fsdp") and llm.train.compile and llm.train.fused_loss
    with torch.device("meta"):
        model = Transformer(dataclasses.replace(llm.model, vocab_size=tok.vocab_size))
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.85 * SIZE_PRESETS[preset] < n_params < 1.15 * SIZE_PRESETS[preset], n_params
    steps = total_steps(llm.train, tok.seq_len)
    assert steps >= 10 * llm.train.ckpt_every and llm.train.ckpt_every <= 500
    assert llm.train.global_batch_size % llm.train.micro_batch_size == 0
    if preset == "11m":
        assert (llm.model.d_model, llm.model.n_layers, llm.model.n_heads) == (96, 8, 4)
    else:
        assert 32000 <= tok.vocab_size <= 50304 and tok.seq_len >= 1024
        tokens = steps * llm.train.global_batch_size * tok.seq_len
        assert 15 < tokens / n_params < 30  # about 20 tokens per parameter


def test_cli_reports_a_config_error_naming_key_and_file(tmp_path, capsys):
    from vlaforge.cli import main

    code = main(["llm-pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--set", "model.n_layer=2"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown key 'llm.model.n_layer'" in err and "tiny.yaml" in err
    assert not (tmp_path / "out").exists()


def test_resolved_sections_hold_every_field_so_new_defaults_change_cache_keys():
    from vlaforge.run import resolve

    sections = resolve("tiny", ["llm.train.lr=0.01"])
    llm = sections["llm"].splitlines()
    assert "train.lr=0.01" in llm and "train.keep_checkpoints=2" in llm  # set here / left at its default
    assert "fingertips=false" in sections["demos"].splitlines()  # a default the preset does not set
    cfg = load(LLMStageConfig, "tiny", llm, "llm")
    assert cfg == load(LLMStageConfig, "tiny", ["train.lr=0.01"], "llm")  # the stage reads the same config


TRAINING_SECTIONS = {"llm": LLMStageConfig, "vlm": VLMStageConfig, "vla": VLAStageConfig, "hf_vlm": HFVLMStageConfig}
CLUSTER_PRESETS = ("100m", "410m", "1b")  # presets with no HF-backbone variants: the hf_vlm stage takes any model


@pytest.mark.parametrize("preset", ["tiny", "metaworld4", "metaworld4-conv", *CLUSTER_PRESETS])
def test_cluster_presets_run_fsdp_compile_bf16_while_cpu_presets_stay_quick(preset):
    for section, cls in TRAINING_SECTIONS.items():
        train = load(cls, preset, None, section).train
        gpu = preset in CLUSTER_PRESETS and section == "llm"  # the size presets change the text stages only
        settings = (train.strategy, train.compile, train.precision)
        assert settings == (("fsdp", True, "bf16") if gpu else ("ddp", False, "auto")), (section, settings)
        if not gpu:  # nothing that costs a compile or a recompute on 2 CPU cores
            assert not train.activation_checkpointing, section
