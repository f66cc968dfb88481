"""The LLM throughput benchmark compares like with like, and ``bench/run_all.py`` finds every script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_llm_benchmark_models_have_the_same_shape():
    bench = bench_module("llm_throughput")
    result = bench.bench_preset("tiny", steps=1, rounds=1, warmup=0, levers=["plain"])
    cfg, seq_len, _ = bench.preset_shape("tiny")
    qk_norm_weights = 2 * (cfg.d_model // cfg.n_heads) * cfg.n_layers  # the only parameters Llama lacks
    assert result["params"] - result["hf_params"] == qk_norm_weights
    assert set(result["rows"]) == {"hf_llama", "plain", "preset"}
    assert all(row["tokens_per_s"] > 0 and row["ratio"] > 0 for row in result["rows"].values())
    assert f"T={seq_len}" in result["shape"]


def test_run_all_finds_the_scripts():
    run_all = bench_module("run_all")
    names = [p.stem for p in run_all.scripts([], [])]
    assert "llm_throughput" in names and "run_all" not in names
    assert [p.stem for p in run_all.scripts(["llm_throughput"], [])] == ["llm_throughput"]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run_all.scripts(["no_such_bench"], [])


def test_llm_benchmark_prints_one_row_per_lever_and_the_preset_row(capsys):
    bench = bench_module("llm_throughput")
    bench.main(["--presets", "tiny", "--steps", "1", "--rounds", "1", "--warmup", "0", "--levers", "plain",
                "fused_loss"])  # the compile rows cost a compilation each: left out here, same code path
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split()[1] for line in lines if line.startswith("tiny ")]
    assert rows == ["plain", "fused_loss", "preset(none)"]  # tiny's preset keeps both levers off
    assert lines[-1].startswith("no CUDA device") or lines[-1].startswith("GPU ")
    assert set(bench.LEVERS) == {"plain", "fused_loss", "compile", "fused+compile"}  # --levers' default: all


def test_gpu_figures_of_the_410m_preset():
    """What a CUDA machine prints (no GPU here): the 410m shape and settings, the FLOPs count, MFU, peak memory."""
    import torch

    from vlaforge.models.llm import Transformer

    bench = bench_module("llm_throughput")
    cfg, seq_len, train_cfg = bench.gpu_shape("410m")
    assert seq_len == 2048 and (train_cfg.strategy, train_cfg.compile, train_cfg.precision) == ("fsdp", True, "bf16")
    with torch.device("meta"):
        model = Transformer(cfg)
    matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    per_token = bench.model_flops_per_token(cfg, seq_len)
    assert per_token == 6 * matmul_weights + 12 * cfg.n_layers * cfg.d_model * seq_len  # 6N + attention

    tokens_per_s = 0.45 * 989e12 / per_token  # what 45% MFU on an H100 SXM is
    row = bench.gpu_row("NVIDIA H100 80GB HBM3", "410m", cfg, seq_len, train_cfg, tokens_per_s, 30 * 2**30, None)
    assert "MFU 45.0%" in row and "peak memory 30.0 GiB" in row and "bf16 fsdp+compile=True" in row
    assert bench.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0 and bench.peak_bf16_tflops("NVIDIA H200") == 989.0
    assert "MFU n/a" in bench.gpu_row("Some GPU", "410m", cfg, seq_len, train_cfg, 1.0, 0, None)
