"""Multi-node training: the rendered TrainJob is valid against the CRD; launching waits and hands on."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from vlaforge.kube import trainjob
from vlaforge.kube.launch import OUT, run_training, stage_cli_args, torchrun_command
from vlaforge.kube.profile import LAUNCH_ENV, PROFILE_DIR, launch_spec, profile_from_dict

TRAINJOB_CRD = Path(__file__).resolve().parents[3] / "shared" / "crds" / "trainer.kubeflow.org_trainjobs.yaml"
COMPILE_ARGS = ["compile", "--out", OUT, "--pipeline", "vlaforge-llm-from-dataset"]


def _launch(tmp_path, num_nodes=2, accelerators=8):
    data = yaml.safe_load((PROFILE_DIR / "default.yaml").read_text())
    data["stages"]["llm_pretrain"].update(num_nodes=num_nodes, accelerator_count=accelerators)
    data["storage"].update(staging_uri=str(tmp_path / "staging"), endpoint_url="http://s3.test:8333")
    return launch_spec("llm_pretrain", "ghcr.io/vlaforge/vlaforge-train:0.1.0", profile_from_dict(data))


class FakeCluster:
    """Stands in for the Kubernetes API (none runs here): admits TrainJobs valid against the CRD and
    runs each one's command in-process, as one node would."""

    def __init__(self, succeed=True):
        self.jobs, self.succeed, self.creates = {}, succeed, 0

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == (trainjob.GROUP, trainjob.VERSION, trainjob.PLURAL)
        self.creates += 1
        if body["metadata"]["name"] in self.jobs:
            err = RuntimeError("AlreadyExists")
            err.status = 409
            raise err
        trainjob.validate_trainjob(body, TRAINJOB_CRD)
        from vlaforge.cli import main

        rc = main(body["spec"]["trainer"]["args"]) if self.succeed else 1
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
    cluster = FakeCluster()
    out = tmp_path / "out"
    result = run_training(COMPILE_ARGS, str(out), "s3://b/run/model", local=lambda: pytest.fail("ran locally"),
                          api=cluster)
    assert result is None and cluster.creates == 1
    (job,) = cluster.jobs.values()
    staging = tmp_path / "staging" / job["metadata"]["name"]
    assert job["spec"]["trainer"]["args"][2] == str(staging)
    assert (staging / "vlaforge-llm-from-dataset.yaml").read_text() == (out / "vlaforge-llm-from-dataset.yaml").read_text()
    # a retried launcher pod re-attaches to the same TrainJob instead of starting another
    run_training(COMPILE_ARGS, str(tmp_path / "out2"), "s3://b/run/model", local=lambda: None, api=cluster)
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


def test_several_gpus_on_one_node_run_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=1, accelerators=2)))
    out = tmp_path / "out"
    assert run_training(COMPILE_ARGS, str(out), "uri", local=lambda: pytest.fail("ran locally")) is None
    assert (out / "vlaforge-llm-from-dataset.yaml").is_file()
    with pytest.raises(RuntimeError, match="torchrun of 'vlaforge compile .*' exited with"):
        run_training(["compile", "--out", OUT, "--profile", "no-such-profile"], str(out), "uri", local=lambda: None)


def test_torchrun_command_runs_the_vlaforge_cli():
    cmd = torchrun_command(["llm-pretrain", "--out", "/x"], 4)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc-per-node=4" in cmd
    assert cmd[-5:] == ["-m", "vlaforge.cli", "llm-pretrain", "--out", "/x"]


def test_llm_pretrain_trains_under_torchrun_with_two_processes(monkeypatch, tmp_path):
    """The real training stage through the one-node torchrun path (gloo on CPU): DDP, one output."""
    from vlaforge.data.tokenize import run as tokenize

    tokenize("tiny", [], str(tmp_path / "tokens"))
    monkeypatch.setenv(LAUNCH_ENV, json.dumps(_launch(tmp_path, num_nodes=1, accelerators=2)))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "model"
    overrides = "train.max_steps=4\ntrain.val_every=2\ntrain.ckpt_every=4\ntrain.micro_batch_size=8"  # 16 = 8 x 2
    args = stage_cli_args("llm-pretrain", "tiny", overrides, data=str(tmp_path / "tokens"), out=OUT)
    assert args[:5] == ["llm-pretrain", "--preset", "tiny", "--set", "train.max_steps=4"]
    assert run_training(args, str(out), "uri", local=lambda: pytest.fail("ran in-process")) is None
    assert (out / "config.json").is_file() and any(out.rglob("*.safetensors"))
