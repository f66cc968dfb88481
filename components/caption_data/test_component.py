"""caption_data: its interface, and kfp.local runs that render captions and import existing shards."""

import json
import os

from kfp import compiler, dsl, local

from components.caption_data.component import caption_data
from vlaforge.sim.scene_captions import validate_caption_shards


def test_interface_and_image(tmp_path):
    spec = caption_data.component_spec
    assert set(spec.inputs) == {"preset", "overrides", "source_uri", "input_fingerprint"}
    assert set(spec.outputs) == {"captions"}
    assert "vlaforge-sim:" in spec.implementation.container.image
    compiler.Compiler().compile(caption_data, str(tmp_path / "c.yaml"))


def test_local_run_renders_then_imports(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    @dsl.pipeline(name="caption-data-test")
    def render():
        caption_data(preset="tiny", overrides="scenes_per_task=2\ntasks=[push-v3]\nmax_expert_steps=10")

    render()
    rendered = [os.path.join(r, d, "captions") for r, ds, _ in os.walk(tmp_path / "root") for d in ds
                if d == "caption-data"]
    shards = validate_caption_shards(rendered[0])
    assert sum(s.num_samples for s in shards) == 4  # 2 scenes x 2 cameras

    @dsl.pipeline(name="caption-import-test")
    def import_existing(source: str):
        caption_data(preset="tiny", overrides="", source_uri=source)

    import_existing(source=rendered[0])
    imported = [os.path.join(r, d, "captions") for r, ds, _ in os.walk(tmp_path / "root") for d in ds
                if d == "caption-data" and "caption-import-test" in r]
    with open(os.path.join(imported[0], "manifest.jsonl")) as f:
        assert sum(json.loads(line)["num_sequences"] for line in f) == 4
