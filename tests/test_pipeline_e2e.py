"""The whole embedded pipeline through kfp.local on a tiny budget, and the cache on a re-run."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from vlaforge.run import run_embedded

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")

FAST = ["tokenize.vocab_size=512", "llm.train.max_steps=20", "llm.train.val_every=10", "vlm.train.max_steps=10",
        "vlm.train.val_every=5", "demos.episodes_per_task=4", "vla.train.max_steps=10", "vla.train.val_every=5",
        "sim_eval.episodes=0:2", "sim_eval.videos_per_task=1",
        # the tiny preset's frames are 64 px: 32 px and shorter episodes keep this check as fast as before
        "captions.image_size=32", "vlm.vit.image_size=32", "demos.image_size=32", "sim_eval.image_size=32",
        "sim_eval.max_steps=150"]
STAGES = ["tokenize", "llm-pretrain", "caption-data", "vlm-pretrain", "record-demos", "preprocess-robotics",
          "vla-finetune", "sim-eval", "sim-eval-baselines", "step-analysis"]
UPSTREAM_OF_VLM = ["tokenize", "llm-pretrain", "caption-data", "record-demos", "preprocess-robotics",
                   "sim-eval-baselines"]


def test_full_pipeline_runs_every_stage_and_reuses_the_cache(tmp_path, caplog):
    root = tmp_path / "runs"
    console = io.StringIO()
    report = run_embedded("tiny", FAST, str(root), out=console)
    lines = console.getvalue().splitlines()
    stage_lines = [line for line in lines if line.startswith("[")]
    ran = [re.match(r"\[\s*\d+/\d+\] (\S+)", line).group(1) for line in stage_lines]
    assert set(STAGES) <= set(ran) and all(" done " in line for line in stage_lines), lines  # + plan/merge tasks
    assert f"report: {report['report']}" in lines and "KFP Executor" not in console.getvalue()
    assert any(line.startswith("task ") and "vlaforge_policy vs random" in line for line in lines)
    assert len(list((root / "logs").glob("*/vla-finetune.log"))) == 1
    artifacts = {k: Path(v) for k, v in report["artifacts"].items()}
    for name in ("llm", "vlm", "policy"):
        assert (artifacts[name] / "model.safetensors").is_file(), name
    for name in ("normalizer.json", "preprocessing_config.yaml", "stats.json", "tokenizer"):
        assert (artifacts["policy"] / name).exists(), name
    results = list(artifacts["rollouts"].glob("vlaforge_policy/*/rollouts/*/results.json"))
    assert results, "sim_eval wrote no results.json"
    for path in results:
        data = json.loads(path.read_text())
        assert data["max_sample_size_per_model"] > 0
        assert sorted(e["scenario_index"] for e in data["evaluations"]) == [0, 1]
        assert all(isinstance(e["is_success"], bool) for e in data["evaluations"])
    assert report["sim_eval"]["slices"] == 1 and len(report["sim_eval"]["slice_seconds"]) == 1  # where the time went
    html = artifacts["report"].read_text()
    assert "vlaforge_policy" in html and "expert" in html and "random" in html

    # Change one VLM parameter: everything upstream of vlm_pretrain (and the baselines) comes from the cache.
    with caplog.at_level(logging.INFO):
        second = run_embedded("tiny", FAST + ["vlm.train.lr=0.002"], str(root))
    for task in UPSTREAM_OF_VLM:
        assert f"Task {task} cache hit" in caplog.text, task
    for task in ("vlm-pretrain", "vla-finetune", "sim-eval", "step-analysis"):
        assert f"Task {task} cache hit" not in caplog.text, task
    assert second["artifacts"]["llm"] == report["artifacts"]["llm"]
    assert second["artifacts"]["vlm"] != report["artifacts"]["vlm"]
