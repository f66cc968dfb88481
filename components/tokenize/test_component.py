"""The tokenize component: its interface, and one kfp.local run on a corpus written here."""

import json
import math
from pathlib import Path

import pytest
import yaml
from kfp import compiler, local

from components.tokenize.component import tokenize
from vlaforge.data.corpus import robot_sentences
from vlaforge.data.shards import read_manifest
from vlaforge.kube.images import image

# Locally the component runs in this Python environment instead of its image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_interface():
    spec = tokenize.component_spec
    assert {k: v.type for k, v in spec.inputs.items()} == {"preset": "String", "overrides": "String",
                                                          "input_fingerprint": "String"}
    assert {k: v.type for k, v in spec.outputs.items()} == {"dataset": "system.Dataset@0.0.1",
                                                           "metrics": "system.Metrics@0.0.1"}
    assert all(v.description for v in spec.inputs.values())  # the docstring's Args, shown by the KFP UI
    assert spec.implementation.container.image == image("train")


def test_compiles(tmp_path):
    compiler.Compiler().compile(tokenize, str(tmp_path / "tokenize.yaml"))
    spec = yaml.safe_load((tmp_path / "tokenize.yaml").read_text())
    assert "kfp-package" not in json.dumps(spec)  # the image brings kfp; nothing is pip-installed at run time
    assert spec["deploymentSpec"]["executors"]["exec-tokenize"]["container"]["image"] == image("train")


def test_local_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in (1, 2):
        (corpus / f"part{seed}.txt").write_text("\n".join(robot_sentences(400, seed=seed)), encoding="utf-8")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    overrides = f"corpus={corpus}; vocab_size=280\nseq_len=16; val_fraction=0.5; robot_fraction=0"
    task = tokenize(preset="tiny", overrides=overrides)

    dataset, metrics = task.outputs["dataset"], task.outputs["metrics"]
    stats = json.loads(Path(dataset.path, "tokenize_stats.json").read_text())
    assert stats["documents"] == 2 and stats["seq_len"] == 16
    assert dataset.metadata == {"vocab_size": stats["vocab_size"], "seq_len": 16}
    assert stats["vocab_size"] <= 280
    for split in ("train", "val"):
        assert sum(s.num_samples for s in read_manifest(str(Path(dataset.path, split)))) == stats[f"{split}_samples"]
    assert Path(dataset.path, "tokenizer", "tokenizer.json").is_file()
    written = json.loads(Path(metrics.path).read_text())  # the file keeps the task cacheable
    assert written["tokens"] == stats["tokens"] and math.isclose(written["tokens_per_s"], stats["tokens_per_s"])
    assert metrics.metadata["train_samples"] == stats["train_samples"]
