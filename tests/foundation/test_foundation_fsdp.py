"""FSDP2 under torchrun (CPU, gloo): same training as one process, sharded checkpoints that resume on any
world size, SIGTERM, and checkpoint writes that fail and are retried."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from foundation_util import LLM_OVERRIDES, VLAFORGE, cli_env, sigterm_after_first_checkpoint
from safetensors.torch import load_file

from vlaforge.stages.llm_pretrain import run as llm_run
from vlaforge.storage import StorageError
from vlaforge.train import checkpoint as ckpt

FSDP = LLM_OVERRIDES + ["train.max_steps=12", "train.global_batch_size=8", "train.micro_batch_size=2",
                        "train.val_every=6", "train.ckpt_every=4", "train.keep_checkpoints=10", "train.lr=0.01",
                        "train.log_every=1", "model.n_layers=2"]


def torchrun(data, out, overrides: list[str], ranks: int = 2) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
           *VLAFORGE[1:], "llm-pretrain", "--data", str(data), "--out", str(out)]
    for item in overrides + ["train.strategy=fsdp"]:
        cmd += ["--set", item]
    return cmd


def run_torchrun(data, out, overrides: list[str], ranks: int = 2) -> str:
    done = subprocess.run(torchrun(data, out, overrides, ranks), env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def losses(out) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def assert_same_weights(expected_dir, got_dir, atol: float) -> None:
    expected, got = load_file(str(expected_dir / "model.safetensors")), load_file(str(got_dir / "model.safetensors"))
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.allclose(expected[name], got[name], atol=atol, rtol=0), name


def test_fsdp_two_ranks_train_like_one_process(tokenized, tmp_path):
    single = tmp_path / "single"
    llm_run("tiny", FSDP, str(tokenized), str(single))  # one process accumulating 4 micro-batches per step

    out = tmp_path / "fsdp"
    run_torchrun(tokenized, out, FSDP)
    assert losses(out) == pytest.approx(losses(single), abs=1e-4)
    folder = out / "checkpoints" / "step_00000008"
    assert sorted(p.name for p in (folder / ckpt.SHARDS).iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert_same_weights(single, out, atol=1e-4)  # one safetensors file, as later stages and serve read it
    assert json.loads((out / "config.json").read_text())["kind"] == "llm"


@pytest.mark.slow
def test_fsdp_resume_two_one_two_ranks_continues_the_run(tokenized, tmp_path):
    reference = tmp_path / "reference"
    run_torchrun(tokenized, reference, FSDP)

    out = tmp_path / "resumed"
    latest = out / "checkpoints" / "latest.json"
    run_torchrun(tokenized, out, FSDP)  # 2 ranks; rewind to its step-4 checkpoint as if stopped there
    latest.write_text(json.dumps({"step": 4, "path": "step_00000004"}))
    log = run_torchrun(tokenized, out, FSDP, ranks=1)  # steps 5-12 on 1 rank; rewind to its step 8
    assert "at step 4/12" in log
    latest.write_text(json.dumps({"step": 8, "path": "step_00000008"}))
    log = run_torchrun(tokenized, out, FSDP, ranks=2)  # steps 9-12 on 2 ranks again
    assert "at step 8/12" in log
    assert losses(out)[-4:] == pytest.approx(losses(reference)[-4:], abs=1e-4)
    assert_same_weights(reference, out, atol=1e-4)


@pytest.mark.slow
def test_sigterm_under_fsdp_writes_a_sharded_checkpoint_and_resumes(tokenized, tmp_path):
    overrides = FSDP + ["train.max_steps=150", "train.ckpt_every=10", "train.val_every=75", "train.log_every=10",
                        "train.keep_checkpoints=2"]
    reference = tmp_path / "reference"
    run_torchrun(tokenized, reference, overrides)

    out = tmp_path / "fsdp"
    _, log, stopped_at = sigterm_after_first_checkpoint(torchrun(tokenized, out, overrides), out)
    assert 10 <= stopped_at < 150, log[-3000:]
    assert log.count(f"stopped by SIGTERM at step {stopped_at};") == 2, log[-3000:]
    assert ckpt.is_sharded(str(out / "checkpoints" / f"step_{stopped_at:08d}"))

    log = run_torchrun(tokenized, out, overrides)
    assert f"at step {stopped_at}/150" in log
    assert_same_weights(reference, out, atol=1e-4)


def test_failed_checkpoint_writes_are_retried_and_training_goes_on(tokenized, tmp_path, monkeypatch, caplog):
    sleeps = []
    monkeypatch.setattr(ckpt.time, "sleep", sleeps.append)
    real_upload = ckpt.storage.upload_file
    failures = {"left": 2}

    def flaky_upload(src, uri):
        if "step_00000004" in str(uri) and failures["left"]:  # the object store is unreachable for a while
            failures["left"] -= 1
            raise StorageError(f"storage error on {uri}: EndpointConnectionError")
        if "step_00000008" in str(uri):  # ... and then for good
            raise StorageError(f"storage error on {uri}: EndpointConnectionError")
        real_upload(src, uri)

    monkeypatch.setattr(ckpt.storage, "upload_file", flaky_upload)
    out = tmp_path / "run"
    summary = llm_run("tiny", FSDP + ["train.ckpt_every=4"], str(tokenized), str(out))
    assert summary["steps"] == 12 and (out / "model.safetensors").is_file()
    assert sleeps == [1.0, 2.0, 1.0, 2.0, 4.0]  # backoff: step 4 wrote on the third try, step 8 never
    assert "checkpoint at step 8 failed 4 times" in caplog.text
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 4  # the newest complete one
