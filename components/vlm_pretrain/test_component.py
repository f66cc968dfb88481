"""The vlm_pretrain component: its interface, and one kfp.local run on an LLM and captions imported by URI."""

import json
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset, Model

from components.testing import VLM, assert_interface
from components.vlm_pretrain.component import vlm_pretrain
from vlaforge.models.vlm_backbone import load_vlm

# Locally the component runs in this Python environment instead of its image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_interface(tmp_path):
    assert_interface(vlm_pretrain, {"preset": "String", "overrides": "String", "llm": "system.Model@0.0.1",
                                    "captions": "system.Dataset@0.0.1"},
                     {"model": "system.Model@0.0.1", "metrics": "system.Metrics@0.0.1"}, "train", tmp_path)


@dsl.pipeline(name="vlm-pretrain-on-artifacts")
def pretrain_on(llm_uri: str, captions_uri: str, overrides: str) -> Model:
    llm = dsl.importer(artifact_uri=llm_uri, artifact_class=Model, reimport=False)
    captions = dsl.importer(artifact_uri=captions_uri, artifact_class=Dataset, reimport=False)
    return vlm_pretrain(preset="tiny", overrides=overrides, llm=llm.output,
                        captions=captions.output).outputs["model"]


def test_local_run(upstream, tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    model = pretrain_on(llm_uri=upstream.llm, captions_uri=upstream.captions, overrides="\n".join(VLM)).output

    out = Path(model.path)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 2
    assert model.metadata == {"kind": "vlm", "framework": "pytorch"}
    metrics = json.loads(Path(out.parent, "metrics").read_text())
    assert metrics["val_loss_paired"] == summary["val_loss_paired"]
    vlm, tokenizer, config = load_vlm(str(out))
    assert config["kind"] == "vlm" and config["vit"]["d_model"] == 32
    assert "<|image|>" in tokenizer.get_vocab() and vlm.vit.cfg.n_layers == 1
