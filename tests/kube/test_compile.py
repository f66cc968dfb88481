"""Compiled pipelines: golden files up to date, and every task set up for the cluster as the profile says."""

import os
import re
import subprocess
import sys

import jsonschema
import pytest
import yaml

from vlaforge import __version__
from vlaforge.kube.compile import MANIFEST_DIR, PIPELINES
from vlaforge.kube.images import DEFAULT_REGISTRY
from vlaforge.kube.profile import load_profile

TRAINING_STAGES = {"llm_pretrain", "vlm_pretrain", "vla_finetune"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, repo):
    """A fresh compile of every pipeline with the default registry and profile."""
    out = tmp_path_factory.mktemp("compiled")
    env = {k: v for k, v in os.environ.items() if k not in ("VLAFORGE_REGISTRY", "VLAFORGE_PROFILE")}
    subprocess.run([sys.executable, "-m", "vlaforge.cli", "compile", "--out", str(out)],
                   check=True, cwd=repo, env=env, capture_output=True)
    return out


def _load(path):
    spec, *platform = yaml.safe_load_all(path.read_text())
    executors = platform[0]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if platform else {}
    return spec, executors


def _dags(spec):
    yield spec["root"]["dag"]
    for comp in spec["components"].values():
        if "dag" in comp:
            yield comp["dag"]


def _stage(executor_label: str) -> str:
    """``exec-llm-pretrain-2`` -> ``llm_pretrain``."""
    name = executor_label.removeprefix("exec-")
    head, _, tail = name.rpartition("-")
    return (head if tail.isdigit() else name).replace("-", "_")


def test_golden_files_match_a_fresh_compile(compiled, repo):
    golden = repo / "pipelines" / "compiled"
    fresh = sorted(p.relative_to(compiled) for p in compiled.rglob("*.yaml"))
    checked_in = sorted(p.relative_to(golden) for p in golden.rglob("*.yaml")) if golden.is_dir() else []
    assert fresh == checked_in, "the set of compiled pipelines changed: run `make golden`"
    # parsed, not as text: kfp's header comment lists dict defaults in no fixed key order
    stale = [str(rel) for rel in fresh
             if list(yaml.safe_load_all((compiled / rel).read_text())) != list(yaml.safe_load_all((golden / rel).read_text()))]
    assert not stale, f"pipelines/compiled is stale (a component or pipeline changed) for {stale}: run `make golden`"


@pytest.mark.parametrize("name", list(PIPELINES))
def test_every_task_is_set_up_for_the_cluster(compiled, name):
    profile = load_profile("default")
    spec, k8s = _load(compiled / f"{name}.yaml")
    assert spec["pipelineInfo"]["name"] == name
    containers = {label: ex["container"] for label, ex in spec["deploymentSpec"]["executors"].items()
                  if "container" in ex}
    assert containers, f"{name} has no container tasks"
    for label, container in containers.items():
        image = container["image"]
        assert image.startswith(f"{DEFAULT_REGISTRY}/vlaforge-"), f"{label}: image {image}"
        assert image.rsplit(":", 1)[1] == __version__, f"{label}: image tag of {image} is not {__version__}"
        stage = profile.stage(_stage(label))
        kube = k8s.get(label, {})
        assert kube, f"{name}: {label} has no Kubernetes settings: call vlaforge.kube.profile.apply_profile on it"
        assert kube.get("nodeSelector", {}).get("labels") == stage.node_selector, f"{label}: node selector"
        (secret,) = kube["secretAsEnv"]
        assert secret["secretName"] == profile.storage.secret_name
        assert {e["envVar"] for e in secret["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert not {e["name"] for e in container.get("env", [])} & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        if stage.shm_size:
            assert {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": stage.shm_size,
                    "volumeName": "dshm"} in kube["emptyDirMounts"], f"{label}: /dev/shm"
        if _stage(label) in TRAINING_STAGES:
            acc = container["resources"]["accelerator"]
            assert acc["resourceType"] == stage.accelerator_type and int(acc["resourceCount"]) >= 1, label
            assert [t["key"] for t in kube["tolerations"]] == [t.key for t in stage.tolerations], label
    for dag in _dags(spec):
        for task_name, task in dag["tasks"].items():
            for param, value in task.get("inputs", {}).get("parameters", {}).items():
                constant = value.get("runtimeValue", {}).get("constant")
                assert "loop-item" not in str(constant), \
                    f"{name}: {task_name}.{param} got a loop variable's name, not its value: {constant!r}"
            if "componentRef" in task and spec["components"][task["componentRef"]["name"]].get("dag"):
                continue  # a loop/condition; its tasks are checked in their own DAG
            fingerprint = task["componentRef"]["name"].startswith("comp-fingerprint-inputs")  # reads the data: every run
            assert bool(task.get("cachingOptions", {}).get("enableCache")) is not fingerprint, \
                f"{name}: {task_name} {'cached' if fingerprint else 'not cached'}"


@pytest.mark.parametrize("name", list(PIPELINES))
def test_manifests_are_valid_kfp_custom_resources(compiled, crds, name):
    docs = list(yaml.safe_load_all((compiled / MANIFEST_DIR / f"{name}.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Pipeline", "PipelineVersion"]
    for doc in docs:
        crd = yaml.safe_load((crds / f"pipelines.kubeflow.org_{doc['kind'].lower()}s.yaml").read_text())
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == doc["apiVersion"].split("/")[1]]
        jsonschema.validate(doc, version["schema"]["openAPIV3Schema"])
    assert docs[1]["spec"]["pipelineName"] == docs[0]["metadata"]["name"] == name
    assert docs[1]["metadata"]["name"].endswith(__version__.replace(".", "-"))


def test_fanned_out_stages_loop_over_their_plan(compiled):
    """tokenize, caption_data, record_demos, preprocess_robotics and sim_eval run in a ParallelFor over plan_slices'
    output, the width a pipeline parameter, at most MAX_PARALLEL_SLICES at once, gathered by merge_slices
    (dsl.Collected)."""
    from pipelines.stages import MAX_PARALLEL_SLICES

    spec, _ = _load(compiled / "vlaforge-full.yaml")
    root = spec["root"]["dag"]["tasks"]
    widths = {task["inputs"]["parameters"]["width"]["componentInputParameter"]
              for task in root.values() if task["componentRef"]["name"].startswith("comp-plan-slices")}
    slices = {"captions_slices", "demos_slices", "sim_eval_slices", "tokenize_slices", "preprocess_slices"}
    assert widths == slices
    assert all(spec["root"]["inputDefinitions"]["parameters"][p]["defaultValue"] == 1 for p in slices)
    loops = [task for task in root.values() if "parameterIterator" in task]
    assert len(loops) == 5
    for loop in loops:
        assert loop["iteratorPolicy"]["parallelismLimit"] == MAX_PARALLEL_SLICES
        assert re.fullmatch(r"pipelinechannel--plan-slices(-\d)?-Output", loop["parameterIterator"]["items"]["inputParameter"])
    merges = [task for task in root.values() if task["componentRef"]["name"].startswith("comp-merge-slices")]
    assert len(merges) == 5 and all(m["inputs"]["artifacts"]["slices"]["taskOutputArtifact"]["producerTask"]
                                    .startswith("for-loop") for m in merges)

