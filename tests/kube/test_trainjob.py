"""Multi-node training: the rendered TrainJob is valid against the CRD; launching waits and hands on;
the training components launch through it."""

import importlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from kfp.dsl import Dataset, Metrics, Model

from vlaforge.kube import launch as launch_module
from vlaforge.kube import trainjob
from vlaforge.kube.launch import OUT, run_training, stage_cli_args, torchrun_command
from vlaforge.kube.profile import LAUNCH_ENV, PROFILE_DIR, launch_spec, profile_from_dict
from vlaforge.stages import write_summary
from vlaforge.train import checkpoint as ckpt

TRAINJOB_CRD = Path(__file__).resolve().parents[1] / "crds" / "trainer.kubeflow.org_trainjobs.yaml"
COMPILE_ARGS = ["compile", "--out", OUT, "--pipeline", "vlaforge-llm-from-dataset"]


# A tiny-preset budget that fits two processes: global batch 16 = micro batch 8 x 2 ranks.
TINY_STEPS = "train.max_steps=2\ntrain.val_every=2\ntrain.ckpt_every=2\ntrain.micro_batch_size=8\ntrain.num_threads=1"


def _launch(tmp_path, num_nodes=2, accelerators=8, stage="llm_pretrain"):
    data = yaml.safe_load((PROFILE_DIR / "default.yaml").read_text())
    data["stages"][stage].update(num_nodes=num_nodes, accelerator_count=accelerators)
    data["storage"].update(staging_uri=str(tmp_path / "staging"), endpoint_url="http://s3.test:8333")
    return launch_spec(stage, "ghcr.io/vlaforge/vlaforge-train:0.1.0", profile_from_dict(data))


def _compile_stage(args):
    """A cheap stand-in for a training stage: `vlaforge compile` into --out, plus the summary a stage leaves."""
    from vlaforge.cli import main

    rc = main(args)
    write_summary(args[args.index("--out") + 1], {"steps": 1})
    return rc


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    from vlaforge.stages.tokenize import run as tokenize

    out = tmp_path_factory.mktemp("tokenize") / "dataset"
    tokenize("tiny", [], str(out))
    return out


class FakeCluster:
    """Stands in for the Kubernetes API (none runs here): admits TrainJobs valid against the CRD and
    runs each one's command in-process with ``stage`` (default: the vlaforge CLI), as one node would."""

    def __init__(self, succeed=True, stage=None):
        self.jobs, self.succeed, self.creates, self.stage = {}, succeed, 0, stage

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == (trainjob.GROUP, trainjob.VERSION, trainjob.PLURAL)
        self.creates += 1
        if body["metadata"]["name"] in self.jobs:
            err = RuntimeError("AlreadyExists")
            err.status = 409
            raise err
        trainjob.validate_trainjob(body, TRAINJOB_CRD)
        from vlaforge.cli import main

        rc = (self.stage or main)(body["spec"]["trainer"]["args"]) if self.succeed else 1
        kind = "Complete" if rc == 0 else "Failed"
        self.jobs[body["metadata"]["name"]] = {**body, "status": {"conditions": [
            {"type": kind, "status": "True", "reason": "JobFinished" if rc == 0 else "BackoffLimitExceeded",
             "message": f"exit code {rc}"}]}}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        return self.jobs[name]


def test_rendered_trainjob_is_valid_and_carries_the_profile(tmp_path):
    launch = _launch(tmp_path)
    name = trainjob.job_name("llm_pretrain", "s3://bucket/run/llm-pretrain/model")
    body = trainjob.render_trainjob(name, "kubeflow-user", launch, ["llm-pretrain", "--out", "s3://x/y"])
    trainjob.validate_trainjob(body, TRAINJOB_CRD)
    sp = launch["stage_profile"]
    trainer = body["spec"]["trainer"]
    assert body["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert trainer["image"] == launch["image"] and trainer["command"] == ["torchrun", "-m", "vlaforge.cli"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    secret_env = [e for e in trainer["env"] if "valueFrom" in e]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in secret_env} == {launch["storage"]["secret_name"]}
    (patch,) = body["spec"]["runtimePatches"]
    pod = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == sp["node_selector"]
    assert len(pod["tolerations"]) == len(sp["tolerations"])
    assert pod["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": sp["shm_size"]}
    assert pod["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert body["spec"]["activeDeadlineSeconds"] == sp["timeout_s"]


def test_job_names_are_stable_rfc1035_labels():
    a = trainjob.job_name("vla_finetune", "s3://b/run-1/model")
    assert a == trainjob.job_name("vla_finetune", "s3://b/run-1/model")
    assert a != trainjob.job_name("vla_finetune", "s3://b/run-2/model")
    long = trainjob.job_name("x" * 80, "k")
    assert len(long) <= 63 and long[0].isalpha() and not long.endswith("-")


@pytest.mark.parametrize("edit, culprit", [
    (lambda b: b["spec"]["trainer"].update(numNodes="two"), "spec.trainer.numNodes"),
    (lambda b: b["spec"].pop("runtimeRef"), "runtimeRef"),
    (lambda b: b["spec"]["trainer"].update(numProcPerNode=0), "numProcPerNode"),
    (lambda b: b["metadata"].update(name="Bad_Name"), "RFC 1035"),
])
def test_invalid_trainjobs_are_rejected(tmp_path, edit, culprit):
    body = trainjob.render_trainjob("vlaforge-llm-1", "ns", _launch(tmp_path), ["llm-pretrain"])
    edit(body)
    with pytest.raises(ValueError, match=culprit):
        trainjob.validate_trainjob(body, TRAINJOB_CRD)


def test_one_process_runs_in_process(monkeypatch, tmp_path):
    monkeypatch.delenv(LAUNCH_ENV, raising=False)
    assert run_training(COMPILE_ARGS, str(tmp_path / "out"), "uri", local=lambda: "local result") == "local result"


def test_multi_node_launches_a_trainjob_and_hands_on_its_output(monkeypatch, tmp_path):
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path)))
    cluster = FakeCluster(stage=_compile_stage)
    out = tmp_path / "out"
    result = run_training(COMPILE_ARGS, str(out), "s3://b/run/model", local=lambda: pytest.fail("ran locally"),
                          api=cluster)
    assert result == {"steps": 1} and cluster.creates == 1
    (job,) = cluster.jobs.values()
    staging = tmp_path / "staging" / job["metadata"]["name"]
    assert job["spec"]["trainer"]["args"][2] == str(staging)
    assert (staging / "vlaforge-llm-from-dataset.yaml").read_text() == (out / "vlaforge-llm-from-dataset.yaml").read_text()
    # a retried launcher pod re-attaches to the same TrainJob instead of starting another
    assert run_training(COMPILE_ARGS, str(tmp_path / "out2"), "s3://b/run/model", local=lambda: None,
                        api=cluster) == {"steps": 1}
    assert cluster.creates == 2 and len(cluster.jobs) == 1


def test_failed_trainjob_fails_the_stage(monkeypatch, tmp_path):
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path)))
    with pytest.raises(trainjob.TrainJobError, match="failed: BackoffLimitExceeded exit code 1"):
        run_training(COMPILE_ARGS, str(tmp_path / "out"), "s3://b/m", local=lambda: None, api=FakeCluster(False))
    assert not (tmp_path / "out").exists()


def test_multi_node_needs_a_staging_uri(monkeypatch, tmp_path):
    launch = _launch(tmp_path)
    launch["storage"]["staging_uri"] = ""
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(launch))
    with pytest.raises(ValueError, match="storage.staging_uri is empty"):
        run_training(COMPILE_ARGS, str(tmp_path / "out"), "s3://b/m", local=lambda: None, api=FakeCluster())


def test_failed_torchrun_fails_the_stage(monkeypatch, tmp_path):
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=1, accelerators=2)))
    with pytest.raises(RuntimeError, match="torchrun of 'vlaforge compile .*' exited with"):
        run_training(["compile", "--out", OUT, "--profile", "no-such-profile"], str(tmp_path / "out"), "uri",
                     local=lambda: None)


def test_torchrun_without_a_summary_fails_the_stage(monkeypatch, tmp_path):
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=1, accelerators=2)))
    monkeypatch.setattr(launch_module, "torchrun_command", lambda args, nproc: [sys.executable, "-c", "pass"])
    with pytest.raises(RuntimeError, match="holds no train_summary.json"):
        run_training(COMPILE_ARGS, str(tmp_path / "out"), "uri", local=lambda: None)


# Stands in for torchrun: reports when it is ready, then waits for SIGTERM and exits as a preempted stage does.
PREEMPTIBLE = """import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[-1]); out.mkdir(parents=True)
signal.signal(signal.SIGTERM, lambda *_: ((out / "terminated").touch(), sys.exit(143)))
(out / "ready").touch(); time.sleep(30)
"""


def test_sigterm_to_the_launcher_reaches_torchrun(monkeypatch, tmp_path):
    """A preempted pod's SIGTERM is passed on to torchrun (which stops its workers with it, so they checkpoint)."""
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=1, accelerators=2)))
    monkeypatch.setattr(launch_module, "torchrun_command",
                        lambda args, nproc: [sys.executable, "-c", PREEMPTIBLE, *args])
    out = tmp_path / "out"
    missed = []

    def ours(*_):  # this process's own handler, hit if launching did not take SIGTERM over: not fatal here
        missed.append(True)

    previous = signal.signal(signal.SIGTERM, ours)

    def preempt():
        deadline = time.monotonic() + 20
        while not (out / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=preempt)
    killer.start()
    try:
        with pytest.raises(RuntimeError, match="exited with 143"):
            run_training(["llm-pretrain", "--out", OUT], str(out), "uri", local=lambda: None)
        restored = signal.getsignal(signal.SIGTERM)
    finally:
        killer.join()
        signal.signal(signal.SIGTERM, previous)
    assert (out / "terminated").exists() and not missed
    assert restored is ours


def test_torchrun_command_runs_the_vlaforge_cli():
    cmd = torchrun_command(["llm-pretrain", "--out", "/x"], 4)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc-per-node=4" in cmd
    assert cmd[-5:] == ["-m", "vlaforge.cli", "llm-pretrain", "--out", "/x"]


def test_llm_pretrain_component_trains_with_two_processes_under_torchrun(monkeypatch, tmp_path, tokenized):
    """One node, two processes: the component runs the real stage under torchrun (DDP, gloo on CPU), and its
    model and metrics are those of that run."""
    from components.llm_pretrain.component import llm_pretrain

    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=1, accelerators=2)))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr("vlaforge.stages.llm_pretrain.run", lambda *a: pytest.fail("ran in-process"))
    model, metrics = Model(name="model", uri=str(tmp_path / "model")), Metrics(name="m", uri=str(tmp_path / "m"))
    llm_pretrain.python_func(preset="tiny", overrides=TINY_STEPS, dataset=Dataset(name="d", uri=str(tokenized)),
                             model=model, metrics=metrics)
    out = tmp_path / "model"
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["sample"]
    assert json.loads((tmp_path / "m").read_text()) == {
        "final_loss": summary["final_loss"], "final_val_loss": summary["final_val_loss"],
        "val_perplexity": math.exp(summary["final_val_loss"]), "tokens_per_s": summary["tokens_per_s"], "steps": 2}
    assert model.metadata == {"kind": "llm", "framework": "pytorch", "parameters": summary["parameters"]}


def test_llm_pretrain_component_trains_on_a_multi_node_trainjob(monkeypatch, tmp_path, tokenized):
    """Two nodes: the component submits a TrainJob running the real stage on the dataset's URI, waits, and hands
    on the staged model and its metrics."""
    from components.llm_pretrain.component import llm_pretrain

    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=2, accelerators=1)))
    cluster = FakeCluster()  # runs the job's `vlaforge llm-pretrain ...` in this process
    monkeypatch.setattr(trainjob, "in_cluster_api", lambda: cluster)
    model, metrics = Model(name="model", uri=str(tmp_path / "model")), Metrics(name="m", uri=str(tmp_path / "m"))
    llm_pretrain.python_func(preset="tiny", overrides=TINY_STEPS, dataset=Dataset(name="d", uri=str(tokenized)),
                             model=model, metrics=metrics)
    (job,) = cluster.jobs.values()
    staging = tmp_path / "staging" / job["metadata"]["name"]
    assert job["spec"]["trainer"]["args"] == stage_cli_args("llm-pretrain", "tiny", TINY_STEPS, data=str(tokenized),
                                                           out=str(staging))
    assert job["spec"]["trainer"]["numNodes"] == 2 and cluster.creates == 1
    summary = json.loads((tmp_path / "model" / "train_summary.json").read_text())
    assert summary == json.loads((staging / "train_summary.json").read_text()) and summary["steps"] == 2
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "m").read_text())["final_val_loss"] == summary["final_val_loss"]
    assert model.metadata["parameters"] == summary["parameters"]


FAKE_SUMMARY = {"model": "tiny:idefics3", "model_type": "idefics3", "parameters": 1234, "final_loss": 1.5,
                "final_val_loss": 1.25, "val_loss_paired": 1.0, "val_loss_mismatched": 2.0, "tokens_per_s": 10.0,
                "samples_per_s": 5.0, "steps": 2}


@pytest.mark.parametrize("stage, command, inputs, output, kind, metric_keys", [
    ("llm_pretrain", "llm-pretrain", {"dataset": ("data", Dataset)}, "model", "llm",
     {"final_loss", "final_val_loss", "val_perplexity", "tokens_per_s", "steps"}),
    ("vlm_pretrain", "vlm-pretrain", {"llm": ("llm", Model), "captions": ("captions", Dataset)}, "model", "vlm",
     {"final_loss", "final_val_loss", "val_loss_paired", "val_loss_mismatched", "samples_per_s", "steps"}),
    ("vla_finetune", "vla-finetune", {"backbone": ("backbone", Model), "robotics": ("robotics", Dataset)}, "policy",
     "vla", {"final_loss", "final_val_loss", "samples_per_s", "steps"}),
    ("hf_vlm", "hf-vlm", {"captions": ("captions", Dataset)}, "model", "hf_vlm",
     {k for k, v in FAKE_SUMMARY.items() if not isinstance(v, str)}),
])
def test_training_components_hand_their_inputs_to_a_trainjob(monkeypatch, tmp_path, stage, command, inputs, output,
                                                             kind, metric_keys):
    """Each training component names its inputs by URI (s3://, not the launcher pod's /s3/ mount) in the
    TrainJob's stage command, and writes its metrics from the summary the job left in its output."""
    component = getattr(importlib.import_module(f"components.{stage}.component"), stage)
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, stage=stage)))
    cluster = FakeCluster(stage=lambda args: write_summary(args[args.index("--out") + 1], FAKE_SUMMARY) or 0)
    monkeypatch.setattr(trainjob, "in_cluster_api", lambda: cluster)
    artifacts = {name: cls(name=name, uri=f"s3://bucket/run/{name}") for name, (_, cls) in inputs.items()}
    out = Model(name=output, uri=str(tmp_path / output))
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    component.python_func(preset="tiny", overrides="train.max_steps=2", **artifacts, **{output: out},
                          metrics=metrics)
    (job,) = cluster.jobs.values()
    staging = tmp_path / "staging" / job["metadata"]["name"]
    options = {option: f"s3://bucket/run/{name}" for name, (option, _) in inputs.items()}
    assert job["spec"]["trainer"]["args"] == stage_cli_args(command, "tiny", "train.max_steps=2", **options,
                                                           out=str(staging))
    assert json.loads((tmp_path / output / "train_summary.json").read_text()) == FAKE_SUMMARY
    written = json.loads((tmp_path / "metrics").read_text())
    assert set(written) == metric_keys
    assert all(written[k] == FAKE_SUMMARY[k] for k in written if k in FAKE_SUMMARY)
    assert out.metadata["kind"] == kind


def test_multi_node_fsdp_trainjob_carries_the_strategy_and_trains_sharded(monkeypatch, tmp_path, tokenized):
    """A 2-node x 8-GPU fsdp stage: the TrainJob (valid against the CRD) runs torchrun over the stage command
    with the UI overrides as --set arguments, one process per GPU; a node running it trains FSDP2 shards."""
    from components.llm_pretrain.component import llm_pretrain

    overrides = TINY_STEPS + "\ntrain.max_steps=3\ntrain.strategy=fsdp\ntrain.activation_checkpointing=true"
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=2, accelerators=8)))
    cluster = FakeCluster()  # validates the body against the CRD, then runs the node's command in this process
    monkeypatch.setattr(trainjob, "in_cluster_api", lambda: cluster)
    model, metrics = Model(name="model", uri=str(tmp_path / "model")), Metrics(name="m", uri=str(tmp_path / "m"))
    llm_pretrain.python_func(preset="tiny", overrides=overrides, dataset=Dataset(name="d", uri=str(tokenized)),
                             model=model, metrics=metrics)
    (job,) = cluster.jobs.values()
    trainer = job["spec"]["trainer"]
    assert trainer["command"] == ["torchrun", "-m", "vlaforge.cli"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)  # the runtime's PET_NNODES / PET_NPROC_PER_NODE
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    args = trainer["args"]
    assert args[:3] == ["llm-pretrain", "--preset", "tiny"]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sets[-2:] == ["train.strategy=fsdp", "train.activation_checkpointing=true"]
    staging = tmp_path / "staging" / job["metadata"]["name"]
    latest = json.loads((staging / "checkpoints" / "latest.json").read_text())
    assert ckpt.is_sharded(str(staging / "checkpoints" / latest["path"]))
    assert json.loads((staging / "config.json").read_text())["train"]["strategy"] == "fsdp"
    assert (tmp_path / "model" / "model.safetensors").is_file()  # one file, gathered from the shards
