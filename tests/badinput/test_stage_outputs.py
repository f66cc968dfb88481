"""Every stage checks its output before it works: another stage's artifact, files that are no artifact and
an unwritable folder are refused; its own artifact is resumed (training, sim_eval) or, for the other stages,
replaced only with --overwrite (components: $VLAFORGE_EXISTING_OUTPUT). Refused outputs are left untouched."""

import json
import os
from pathlib import Path

import pytest

from conftest import copy_artifact, read_only_dir, tree_hashes
from vlaforge import storage
from vlaforge.artifacts import EXISTING_ENV, ArtifactError, artifact_kind, check_output
from vlaforge.cli import main

OUT = "<out>"


def _commands(up) -> dict[str, list[str]]:
    """Each stage's subcommand with real inputs; ``<out>`` is the output."""
    return {
        "tokenize": ["tokenize", "--out", OUT],
        "llm_pretrain": ["llm-pretrain", "--data", up.tok, "--out", OUT],
        "vlm_pretrain": ["vlm-pretrain", "--llm", up.llm, "--captions", up.captions, "--out", OUT],
        "hf_vlm": ["hf-vlm", "--out", OUT],
        "vla_finetune": ["vla-finetune", "--backbone", up.vlm, "--robotics", up.robotics, "--out", OUT],
        "caption_data": ["caption-data", "--out", OUT],
        "record_demos": ["record-demos", "--out", OUT],
        "lerobot_import": ["lerobot-import", up.episodes, OUT],
        "preprocess_robotics": ["preprocess", "--episodes", up.episodes, "--out", OUT],
        "sim_eval": ["sim-eval", "--policy", "baseline:zero", "--out", OUT],
        "step_analysis": ["analyze", up.rollouts, "--out", OUT],
    }


STAGES = ["tokenize", "llm_pretrain", "vlm_pretrain", "hf_vlm", "vla_finetune", "caption_data", "record_demos",
          "lerobot_import", "preprocess_robotics", "sim_eval", "step_analysis"]
OWN = {"tokenize": "tok", "llm_pretrain": "llm", "vlm_pretrain": "vlm", "vla_finetune": "policy",
       "caption_data": "captions", "record_demos": "episodes", "lerobot_import": "episodes",
       "preprocess_robotics": "robotics", "sim_eval": "rollouts"}
NOT_RESUMABLE = ["tokenize", "caption_data", "record_demos", "lerobot_import", "preprocess_robotics"]


@pytest.fixture(autouse=True)
def _no_policy_from_env(monkeypatch):
    monkeypatch.delenv(EXISTING_ENV, raising=False)


def test_overwrite_holds_for_its_command_only(upstream, tmp_path):
    """--overwrite reaches the stage through the environment; later commands in the process resume again."""
    foreign = copy_artifact(upstream.tok, tmp_path / "out")
    assert _run(upstream, "sim_eval", foreign, "--overwrite") == 2
    assert EXISTING_ENV not in os.environ


def _run(up, stage: str, out: str, *extra: str) -> int:
    return main([out if a == OUT else a for a in _commands(up)[stage]] + list(extra))


@pytest.mark.parametrize("stage", STAGES)
def test_another_stages_artifact_is_refused_and_untouched(stage, upstream, tmp_path, capsys):
    foreign = copy_artifact(upstream.llm if stage == "tokenize" else upstream.tok, tmp_path / "out")
    before = tree_hashes(tmp_path)
    assert _run(upstream, stage, foreign, "--overwrite") == 2  # not even with --overwrite
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and foreign in err and "never writes over another stage's artifact" in err
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("stage", STAGES)
def test_files_that_are_no_artifact_are_refused(stage, upstream, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("my notes")
    before = tree_hashes(tmp_path)
    assert _run(upstream, stage, str(tmp_path / "out")) == 2
    assert "holds no vlaforge artifact (notes.txt)" in capsys.readouterr().err
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("stage", STAGES)
def test_unwritable_output_is_refused_before_work(stage, upstream, tmp_path, capsys):
    out = str(read_only_dir(tmp_path) / "out")
    assert _run(upstream, stage, out) == 2
    err = capsys.readouterr().err
    assert f"output {out} is not writable" in err and "Traceback" not in err


@pytest.mark.parametrize("stage", NOT_RESUMABLE)
def test_own_artifact_needs_overwrite(stage, upstream, tmp_path, capsys):
    own = copy_artifact(getattr(upstream, OWN[stage]), tmp_path / "out")
    before = tree_hashes(tmp_path)
    assert _run(upstream, stage, own) == 2
    assert "from an earlier run; pass --overwrite" in capsys.readouterr().err
    assert tree_hashes(tmp_path) == before


def test_overwrite_replaces_own_artifact(upstream, tmp_path, capsys):
    own = Path(copy_artifact(upstream.robotics, tmp_path / "robo"))
    (own / "train" / "stale.tar").write_bytes(b"left by an older run")
    assert _run(upstream, "preprocess_robotics", str(own), "--overwrite", "--set", "num_workers=0",
                "--set", "future_steps=4") == 0
    assert not (own / "train" / "stale.tar").exists() and artifact_kind(str(own)) == "robotics"
    assert json.loads(capsys.readouterr().out)["episodes"] == 4


def test_training_output_resumes_by_default(upstream, tmp_path):
    own = copy_artifact(upstream.llm, tmp_path / "llm")
    before = tree_hashes(tmp_path)
    assert check_output(own, "llm_pretrain") == "resume"
    assert check_output(str(tmp_path / "new"), "llm_pretrain") == "new" and not (tmp_path / "new").exists()
    assert tree_hashes(tmp_path) == before


def test_unfinished_training_output_is_its_stages_own(upstream, tmp_path):
    """Checkpoints written, final model not yet: still the stage's own artifact (a restarted pod resumes)."""
    out = tmp_path / "llm"
    step = out / "checkpoints" / "step_00000002"
    step.mkdir(parents=True)
    (step / "config.json").write_text((Path(upstream.llm) / "config.json").read_text())
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"step": 2, "path": "step_00000002"}))
    assert artifact_kind(str(out)) == "llm" and check_output(str(out), "llm_pretrain") == "resume"
    with pytest.raises(ArtifactError, match="holds an LLM model"):
        check_output(str(out), "vlm_pretrain")
    (out / "checkpoints" / "latest.json").unlink()  # stopped between a checkpoint's files and its pointer
    assert artifact_kind(str(out)) == "training" and check_output(str(out), "vla_finetune") == "resume"
    with pytest.raises(ArtifactError, match="holds an unfinished training run"):
        check_output(str(out), "tokenize")


def test_component_policy_from_the_environment(upstream, tmp_path, monkeypatch):
    own = copy_artifact(upstream.tok, tmp_path / "tok")
    with pytest.raises(ArtifactError, match="VLAFORGE_EXISTING_OUTPUT=overwrite"):
        check_output(own, "tokenize")
    monkeypatch.setenv(EXISTING_ENV, "overwrite")
    assert check_output(own, "tokenize") == "overwrite" and artifact_kind(own) is None
    monkeypatch.setenv(EXISTING_ENV, "clobber")
    with pytest.raises(ArtifactError, match=r"\$VLAFORGE_EXISTING_OUTPUT must be one of resume, overwrite"):
        check_output(own, "tokenize")


def test_other_ranks_leave_the_check_to_rank_0(upstream, tmp_path, monkeypatch):
    foreign = copy_artifact(upstream.tok, tmp_path / "tok")
    monkeypatch.setenv("RANK", "1")
    assert check_output(foreign, "llm_pretrain") == "resume"


def test_object_store_output_is_probed(upstream, s3_server):
    assert check_output("s3://bucket/runs/llm", "llm_pretrain") == "new"
    _, root = s3_server
    assert not list((root / "bucket").rglob("*"))  # the probe object is gone again
    storage.write_text("s3://bucket/tok/tokenize_stats.json", "{}")  # through S3: rclone caches its listings
    with pytest.raises(ArtifactError, match="s3://bucket/tok holds a tokenized dataset"):
        check_output("s3://bucket/tok", "llm_pretrain")
