"""The llm_pretrain component: its interface, and one kfp.local run on shards tokenized here."""

import json
import math
from pathlib import Path

import pytest
import torch
from kfp import dsl, local
from kfp.dsl import Dataset, Model

from components.llm_pretrain.component import llm_pretrain
from vlaforge.data.corpus import robot_sentences
from vlaforge.kube.images import image
from vlaforge.stages.llm_pretrain import load_llm
from vlaforge.stages.tokenize import run as tokenize_run

# Locally the component runs in this Python environment instead of its image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_interface():
    spec = llm_pretrain.component_spec
    assert {k: v.type for k, v in spec.inputs.items()} == {"preset": "String", "overrides": "String",
                                                          "dataset": "system.Dataset@0.0.1"}
    assert {k: v.type for k, v in spec.outputs.items()} == {"model": "system.Model@0.0.1",
                                                           "metrics": "system.Metrics@0.0.1"}
    assert all(v.description for v in spec.inputs.values())
    assert spec.implementation.container.image == image("train")


@dsl.pipeline(name="llm-pretrain-on-dataset")
def pretrain_on(dataset_uri: str, overrides: str) -> Model:
    data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False)
    return llm_pretrain(preset="tiny", overrides=overrides, dataset=data.output).outputs["model"]


def test_local_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(robot_sentences(600, seed=1)), encoding="utf-8")
    data = tmp_path / "data"
    tokenize_run("tiny", [f"corpus={corpus}", "vocab_size=280", "seq_len=16", "robot_fraction=0"], str(data))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    overrides = ("model.n_layers=1; model.d_model=32; model.n_heads=2; train.max_steps=30; train.val_every=15; "
                 "train.ckpt_every=10; train.global_batch_size=8; train.micro_batch_size=8; train.num_threads=1")
    model = pretrain_on(dataset_uri=str(data), overrides=overrides).output

    out = Path(model.path)
    assert {"model.safetensors", "config.json", "metrics.jsonl", "train_summary.json", "tokenizer",
            "checkpoints"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 30 and summary["final_val_loss"] < summary["initial_val_loss"]
    assert model.metadata == {"kind": "llm", "framework": "pytorch", "parameters": summary["parameters"]}
    metrics = json.loads(Path(out.parent, "metrics").read_text())
    assert math.isclose(metrics["val_perplexity"], math.exp(summary["final_val_loss"]), rel_tol=1e-9)
    assert metrics["steps"] == 30
    llm, config = load_llm(str(out))
    assert config["data"] == str(data)
    assert sum(p.numel() for p in llm.parameters()) == summary["parameters"]
    assert torch.isfinite(llm(torch.zeros(1, 4, dtype=torch.long))).all()
