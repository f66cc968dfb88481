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
