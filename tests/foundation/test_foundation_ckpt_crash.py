"""A SIGKILL in the middle of a checkpoint write (ddp in one process, fsdp on 2 torchrun ranks) leaves the
previous checkpoint the newest, and the restart resumes from it to the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from foundation_util import LLM_OVERRIDES, VLAFORGE, cli_env
from test_foundation_fsdp import FSDP, assert_same_weights, run_torchrun, torchrun

from vlaforge.train import checkpoint as ckpt

DDP = LLM_OVERRIDES + ["train.max_steps=12", "train.val_every=6", "train.ckpt_every=4", "train.keep_checkpoints=10",
                       "train.log_every=1", "model.n_layers=2"]


def ddp_command(data, out) -> list[str]:
    cmd = [*VLAFORGE, "llm-pretrain", "--data", str(data), "--out", str(out)]
    for item in DDP:
        cmd += ["--set", item]
    return cmd


def run_killed_at_step_8(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` with the checkpoint writer's crash hook at step 8: killed after its first file of it."""
    done = subprocess.run(cmd, env=cli_env(**{ckpt.KILL_IN_CHECKPOINT: "8"}), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def assert_previous_checkpoint_is_the_newest(out) -> None:
    checkpoints = out / "checkpoints"
    assert json.loads((checkpoints / "latest.json").read_text())["step"] == 4
    assert (checkpoints / "step_00000008").is_dir()  # the write had begun ...
    assert not (checkpoints / "step_00000008" / "trainer_state.json").exists()  # ... and did not finish
    assert not (out / "model.safetensors").exists()


def test_sigkill_inside_a_ddp_checkpoint_write_keeps_the_previous_one(tokenized, tmp_path):
    reference = tmp_path / "reference"
    done = subprocess.run(ddp_command(tokenized, reference), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed"
    done = run_killed_at_step_8(ddp_command(tokenized, out))
    assert done.returncode == -signal.SIGKILL
    assert os.listdir(out / "checkpoints" / "step_00000008") == ["config.json"]  # the first file, in name order
    assert_previous_checkpoint_is_the_newest(out)

    done = subprocess.run(ddp_command(tokenized, out), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "at step 4/12" in done.stdout + done.stderr
    assert_same_weights(reference, out, atol=1e-5)


@pytest.mark.slow
def test_sigkill_inside_an_fsdp_checkpoint_write_keeps_the_previous_one(tokenized, tmp_path):
    reference = tmp_path / "reference"
    run_torchrun(tokenized, reference, FSDP)

    out = tmp_path / "killed"
    run_killed_at_step_8(torchrun(tokenized, out, FSDP))
    shards = sorted(os.listdir(out / "checkpoints" / "step_00000008" / ckpt.SHARDS))
    assert len(shards) < 3 and shards != [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert_previous_checkpoint_is_the_newest(out)

    log = run_torchrun(tokenized, out, FSDP)
    assert "at step 4/12" in log
    assert_same_weights(reference, out, atol=1e-4)
