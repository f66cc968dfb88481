"""sim_eval and sim_eval_baselines: interfaces, and a kfp.local run of the baselines."""

import json
import os

from kfp import compiler, dsl, local

from components.sim_eval.component import sim_eval, sim_eval_baselines


def test_interfaces_and_image(tmp_path):
    spec = sim_eval.component_spec
    assert set(spec.inputs) == {"policy", "preset", "overrides", "model_name", "episodes"}
    assert set(spec.outputs) == {"results", "metrics", "videos"}
    assert "vlaforge-sim:" in spec.implementation.container.image
    spec = sim_eval_baselines.component_spec
    assert set(spec.inputs) == {"preset", "overrides", "baselines", "episodes"}
    assert set(spec.outputs) == {"results", "metrics"}
    for component in (sim_eval, sim_eval_baselines):
        compiler.Compiler().compile(component, str(tmp_path / "c.yaml"))


def test_local_run_of_the_baselines(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    @dsl.pipeline(name="sim-eval-baselines-test")
    def pipe():
        sim_eval_baselines(preset="tiny", overrides="workers=0", baselines="expert,zero", episodes="0:2")

    pipe()
    task_dir = next(os.path.join(r, d) for r, ds, _ in os.walk(tmp_path / "root") for d in ds
                    if d == "sim-eval-baselines")
    with open(os.path.join(task_dir, "metrics")) as f:
        metrics = json.load(f)
    assert metrics["expert/reach-v3/success_rate"] == 1.0 and metrics["zero/reach-v3/success_rate"] == 0.0
    results = os.path.join(task_dir, "results")
    assert sorted(os.listdir(results)) == ["expert", "zero"]
    for model in ("expert", "zero"):
        (stamp,) = os.listdir(os.path.join(results, model, "ReachV3", "rollouts"))
        with open(os.path.join(results, model, "ReachV3", "rollouts", stamp, "results.json")) as f:
            data = json.load(f)
        assert [e["scenario_index"] for e in data["evaluations"]] == [0, 1]
