"""Both text stages against a real S3 server on loopback, and a clear, fast error when S3 is unreachable."""

from __future__ import annotations

import json
import logging
import shutil
import time

import pytest
import torch
from foundation_util import LLM_OVERRIDES, TOKENIZE_OVERRIDES, free_port

from vlaforge import storage
from vlaforge.stages.llm_pretrain import load_llm
from vlaforge.stages.llm_pretrain import run as llm_run
from vlaforge.stages.tokenize import run as tokenize_run
from vlaforge.storage import StorageError


def test_tokenize_and_pretrain_through_s3(s3_server, corpus, caplog):
    _, root = s3_server
    shutil.copytree(corpus, root / "bucket" / "corpus")  # what the server serves as s3://bucket/corpus/
    stats = tokenize_run("tiny", TOKENIZE_OVERRIDES + ["corpus=s3://bucket/corpus/"], "s3://bucket/runs/tok")
    assert stats["documents"] == len(list(corpus.iterdir())) - 1 + len((corpus / "rest.jsonl").read_text().splitlines())
    served = root / "bucket" / "runs" / "tok"
    assert (served / "train" / "manifest.jsonl").is_file() and (served / "tokenizer" / "tokenizer.json").is_file()
    assert not list(served.rglob("*.tmp"))

    summary = llm_run("tiny", LLM_OVERRIDES + ["train.max_steps=20", "train.ckpt_every=10"],
                      "s3://bucket/runs/tok", "s3://bucket/runs/llm")
    assert summary["steps"] == 20
    model_dir = root / "bucket" / "runs" / "llm"
    assert {"model.safetensors", "config.json", "metrics.jsonl", "train_summary.json"} <= {
        p.name for p in model_dir.iterdir()}
    assert json.loads((model_dir / "checkpoints" / "latest.json").read_text())["step"] == 10
    assert json.loads((model_dir / "config.json").read_text())["data"] == "s3://bucket/runs/tok"
    model, _ = load_llm("s3://bucket/runs/llm")
    assert torch.isfinite(model(torch.zeros(1, 4, dtype=torch.long))).all()

    # A restarted task with a longer budget resumes from the checkpoint in the bucket.
    with caplog.at_level(logging.INFO, logger="vlaforge.train.loop"):
        summary = llm_run("tiny", LLM_OVERRIDES + ["train.max_steps=30", "train.ckpt_every=10"],
                          "s3://bucket/runs/tok", "s3://bucket/runs/llm")
    assert "from s3://bucket/runs/llm/checkpoints/step_00000010 at step 10/30" in caplog.text
    assert summary["steps"] == 30
    assert json.loads((model_dir / "checkpoints" / "latest.json").read_text())["step"] == 20


def test_missing_s3_data_names_the_uri(s3_server, tmp_path):
    with pytest.raises(FileNotFoundError, match="s3://bucket/nothing"):
        llm_run("tiny", LLM_OVERRIDES + ["train.max_steps=2"], "s3://bucket/nothing", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_unreachable_endpoint_fails_fast_naming_it(tokenized, corpus, tmp_path, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    start = time.monotonic()
    with pytest.raises(StorageError, match=rf"s3://bucket/data.*endpoint {endpoint}"):
        llm_run("tiny", LLM_OVERRIDES + ["train.max_steps=2"], "s3://bucket/data", str(tmp_path / "out"))
    with pytest.raises(StorageError, match=rf"s3://bucket/tok.*endpoint {endpoint}"):
        tokenize_run("tiny", TOKENIZE_OVERRIDES + [f"corpus={corpus}"], "s3://bucket/tok")
    with pytest.raises(StorageError, match=rf"s3://bucket/model.*endpoint {endpoint}"):
        llm_run("tiny", LLM_OVERRIDES + ["train.max_steps=2"], str(tokenized), "s3://bucket/model")
    assert time.monotonic() - start < 60
    assert not storage.exists(str(tmp_path / "out"))
