"""step_analysis: its interface, and kfp.local SubprocessRunner runs (two inputs, and dsl.Collected)."""

import json
import os

import pytest
from kfp import compiler, dsl, local
from kfp.dsl import Dataset, Output

from components.step_analysis.component import step_analysis, step_analysis_collected
from vlaforge.analysis.synthetic import write_results

RATES = {"vlaforge_policy": {"reach-v3": 0.5}, "expert": {"reach-v3": 1.0}, "random": {"reach-v3": 0.0}}


def test_interface_and_image(tmp_path):
    spec = step_analysis.component_spec
    assert set(spec.inputs) == {"policy_results", "baseline_results", "extra_result_uris", "preset", "overrides"}
    assert "guarantee=per-direction" in spec.inputs["overrides"].description
    assert set(spec.outputs) == {"report", "tables", "metrics", "details"}
    assert spec.outputs["report"].type == "system.HTML@0.0.1"
    assert "vlaforge-analysis:" in spec.implementation.container.image
    assert set(step_analysis_collected.component_spec.inputs) == {"results", "extra_result_uris", "preset",
                                                                  "overrides"}
    compiler.Compiler().compile(step_analysis, str(tmp_path / "c.yaml"))


@pytest.fixture
def local_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("VLAFORGE_CACHE", str(tmp_path / "cache"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield tmp_path


def _task_dir(root, name):
    found = [os.path.join(r, d) for r, ds, _ in os.walk(root) for d in ds if d == name]
    assert len(found) == 1, found
    return found[0]


def test_local_run_compares_policy_baselines_and_extra(local_runner):
    tmp = local_runner
    write_results(str(tmp / "policy"), {"vlaforge_policy": RATES["vlaforge_policy"]}, episodes=30, seed=1)
    write_results(str(tmp / "baselines"), {k: RATES[k] for k in ("expert", "random")}, episodes=30, seed=2)
    write_results(str(tmp / "earlier"), {"old_policy": {"reach-v3": 0.4}}, episodes=30, seed=3)

    @dsl.pipeline(name="step-analysis-test")
    def pipe(policy_uri: str, baselines_uri: str, extra: str, overrides: str):
        policy = dsl.importer(artifact_uri=policy_uri, artifact_class=Dataset, reimport=False)
        baselines = dsl.importer(artifact_uri=baselines_uri, artifact_class=Dataset, reimport=False)
        step_analysis(policy_results=policy.output, baseline_results=baselines.output, extra_result_uris=extra,
                      overrides=overrides)

    pipe(policy_uri=str(tmp / "policy"), baselines_uri=str(tmp / "baselines"), extra=str(tmp / "earlier"),
         overrides="guarantee=per-direction")
    task = _task_dir(tmp / "root", "step-analysis")
    html = open(os.path.join(task, "report")).read()
    assert html.startswith("<!DOCTYPE html>") and "old_policy" in html and "data:image/png;base64," in html
    assert "Guarantee: per direction" in html
    assert "| Reach-v3 | expert | 30 |" in open(os.path.join(task, "tables")).read()
    with open(os.path.join(task, "metrics")) as f:
        metrics = json.load(f)
    assert metrics["models"] == 4 and metrics["expert.balanced_pct"] == 100.0
    assert {"per_task.csv", "pairwise.csv", "aggregate.csv", "plot_tasks.png"} <= set(
        os.listdir(os.path.join(task, "details")))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fake_eval(model: str, results: Output[Dataset]):
    from vlaforge.analysis.synthetic import write_results

    write_results(results.path, {model: {"Reach": 0.9 if model == "good" else 0.1}}, episodes=30, seed=len(model))


def test_local_run_with_collected_results(local_runner):
    tmp = local_runner

    @dsl.pipeline(name="step-analysis-collected-test")
    def pipe():
        with dsl.ParallelFor(items=["good", "bad"]) as model:
            ev = fake_eval(model=model)
        step_analysis_collected(results=dsl.Collected(ev.outputs["results"]))

    pipe()
    task = _task_dir(tmp / "root", "step-analysis-collected")
    with open(os.path.join(task, "metrics")) as f:
        metrics = json.load(f)
    assert metrics["models"] == 2 and metrics["good.balanced_pct"] > metrics["bad.balanced_pct"]
    assert "Pairwise decisions" in open(os.path.join(task, "report")).read()
