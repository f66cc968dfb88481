"""hf_vlm: its interface, and kfp.local SubprocessRunner runs with and without caption shards."""

import io
import json
import os

import numpy as np
import pytest
from kfp import compiler, dsl, local
from kfp.dsl import Dataset
from PIL import Image

from components.hf_vlm.component import hf_vlm
from vlaforge.data.shards import ShardWriter
from vlaforge.models.hf_vlm import load_hf_vlm_artifact


def write_captions(out: str, n: int) -> None:
    """Solid-colour 32 px images captioned with their colour."""
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    with ShardWriter(out, prefix="captions") as writer:
        for i in range(n):
            name = list(colours)[i % 3]
            buf = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), colours[name], np.uint8)).save(buf, format="PNG")
            writer.write({"__key__": f"{i:06d}", "png": buf.getvalue(), "txt": f"a {name} picture"})


def test_interface_and_image(tmp_path):
    spec = hf_vlm.component_spec
    assert set(spec.inputs) == {"preset", "overrides", "captions", "input_fingerprint"}
    assert spec.inputs["captions"].optional
    assert set(spec.outputs) == {"model", "metrics"}
    assert "vlaforge-train:" in spec.implementation.container.image
    compiler.Compiler().compile(hf_vlm, str(tmp_path / "c.yaml"))


@pytest.fixture
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield tmp_path


def task_outputs(root) -> tuple[str, dict]:
    dirs = [os.path.join(r, d) for r, ds, _ in os.walk(root) for d in ds if d == "hf-vlm"]
    assert len(dirs) == 1
    with open(os.path.join(dirs[0], "metrics")) as f:
        return os.path.join(dirs[0], "model"), json.load(f)


def test_local_run_finetunes_on_captions(local_runner):
    tmp = local_runner
    write_captions(str(tmp / "captions"), 24)

    @dsl.pipeline(name="hf-vlm-test")
    def pipe(captions_uri: str):
        shards = dsl.importer(artifact_uri=captions_uri, artifact_class=Dataset, reimport=False)
        hf_vlm(preset="tiny", overrides="model=tiny:idefics3;train.max_steps=2", captions=shards.output)

    pipe(captions_uri=str(tmp / "captions"))
    model, metrics = task_outputs(tmp / "root")
    assert metrics["steps"] == 2 and metrics["val_loss_paired"] > 0
    assert load_hf_vlm_artifact(model).model.config.model_type == "idefics3"


def test_local_run_without_captions_only_imports(local_runner):
    @dsl.pipeline(name="hf-vlm-import-test")
    def pipe():
        hf_vlm(preset="tiny", overrides="model=tiny:qwen3_vl")

    pipe()
    model, metrics = task_outputs(local_runner / "root")
    assert "steps" not in metrics and metrics["num_layers"] == 2
    with open(os.path.join(model, "config.json")) as f:
        assert json.load(f)["kind"] == "hf_vlm"
