"""record_demos: its interface, and a kfp.local SubprocessRunner run in the embedded simulator."""

import json
import os

from kfp import compiler, dsl, local

from components.record_demos.component import record_demos
from vlaforge.robotics.episodes import read_index


def test_interface_and_image(tmp_path):
    spec = record_demos.component_spec
    assert set(spec.inputs) == {"preset", "overrides"}
    assert set(spec.outputs) == {"demos", "report"}
    assert "vlaforge-sim:" in spec.implementation.container.image
    compiler.Compiler().compile(record_demos, str(tmp_path / "c.yaml"))


def test_local_run_records_demos_and_reports_success(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    @dsl.pipeline(name="record-demos-test")
    def pipe():
        record_demos(preset="tiny", overrides="tasks=[reach-v3]; episodes_per_task=2; cameras=[corner]; image_size=16; workers=0")

    pipe()
    task_dir = next(os.path.join(r, d) for r, ds, _ in os.walk(tmp_path / "root") for d in ds
                    if d == "record-demos")
    with open(os.path.join(task_dir, "report")) as f:
        metrics = json.load(f)
    assert metrics["attempted"] == 2 and metrics["reach-v3/success_rate"] == 1.0 and metrics["kept"] == 2
    episodes = read_index(os.path.join(task_dir, "demos"))
    assert [e.episode_id for e in episodes] == ["reach-v3-000000", "reach-v3-000001"]
    assert episodes[0].cameras == ["corner"]
