"""Data-parallel training under torchrun (2 CPU ranks, gloo) matches one process with the same global batch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from foundation_util import LLM_OVERRIDES, VLAFORGE, cli_env, sigterm_after_first_checkpoint
from safetensors.torch import load_file

from vlaforge.stages.llm_pretrain import run as llm_run

DDP = LLM_OVERRIDES + ["train.max_steps=12", "train.global_batch_size=8", "train.micro_batch_size=4",
                       "train.val_every=6", "train.ckpt_every=6", "train.lr=0.01"]


def torchrun(data, out, overrides: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *VLAFORGE[1:], "llm-pretrain", "--data", str(data), "--out", str(out)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def test_two_ranks_match_gradient_accumulation(tokenized, tmp_path):
    single = tmp_path / "single"
    llm_run("tiny", DDP, str(tokenized), str(single))  # accumulates 2 micro-batches of 4 per step

    out = tmp_path / "ddp"
    done = subprocess.run(torchrun(tokenized, out, DDP), env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "checkpoints" / "step_00000006" / "optimizer.pt").is_file()

    expected, got = load_file(str(single / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for name in expected:  # same samples per step; only the summation order differs (Adam amplifies ~1e-7)
        assert torch.allclose(expected[name], got[name], atol=1e-4, rtol=0), name


@pytest.mark.slow
def test_sigterm_stops_every_rank_at_the_same_step_and_resumes(tokenized, tmp_path):
    overrides = DDP + ["train.max_steps=120", "train.ckpt_every=10", "train.val_every=60"]
    reference = tmp_path / "reference"
    done = subprocess.run(torchrun(tokenized, reference, overrides), env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "ddp"
    _, log, stopped_at = sigterm_after_first_checkpoint(torchrun(tokenized, out, overrides), out)  # to torchrun
    assert 10 <= stopped_at < 120, log[-3000:]
    assert log.count(f"stopped by SIGTERM at step {stopped_at};") == 2, log[-3000:]  # both ranks, same step

    done = subprocess.run(torchrun(tokenized, out, overrides), env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected, got = load_file(str(reference / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
