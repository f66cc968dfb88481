"""Data-parallel training under torchrun (2 CPU ranks, gloo) matches one process with the same global batch."""

from __future__ import annotations

import subprocess
import sys

import torch
from foundation_util import LLM_OVERRIDES, VLAFORGE, cli_env
from safetensors.torch import load_file

from vlaforge.stages.llm_pretrain import run as llm_run

DDP = LLM_OVERRIDES + ["train.max_steps=12", "train.global_batch_size=8", "train.micro_batch_size=4",
                       "train.val_every=6", "train.ckpt_every=6", "train.lr=0.01"]


def test_two_ranks_match_gradient_accumulation(tokenized, tmp_path):
    single = tmp_path / "single"
    llm_run("tiny", DDP, str(tokenized), str(single))  # accumulates 2 micro-batches of 4 per step

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *VLAFORGE[1:], "llm-pretrain", "--data", str(tokenized), "--out", str(out)]
    for item in DDP:
        cmd += ["--set", item]
    done = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "checkpoints" / "step_00000006" / "optimizer.pt").is_file()

    expected, got = load_file(str(single / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for name in expected:  # same samples per step; only the summation order differs (Adam amplifies ~1e-7)
        assert torch.allclose(expected[name], got[name], atol=1e-4, rtol=0), name
