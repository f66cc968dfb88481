"""Cluster profile: loading, checking, and what apply_profile puts on a compiled task."""

import json

import pytest
import yaml
from kfp import compiler, dsl

from vlaforge.config import ConfigError
from vlaforge.kube.profile import LAUNCH_ENV, apply_profile, load_profile, profile_from_dict


def _profile_dict():
    return yaml.safe_load(load_profile.__globals__["PROFILE_DIR"].joinpath("default.yaml").read_text())


@dsl.component(base_image="registry.test/vlaforge-train:9.9.9", install_kfp_package=False)
def echo(n: int) -> int:
    return n


@pytest.fixture(autouse=True)
def not_local(local_kfp):
    """Compile as for a cluster even if another test initialised kfp.local in this process."""


def _compile(tmp_path, stage: str, profile) -> tuple[dict, dict]:
    @dsl.pipeline(name="profile-probe")
    def probe(n: int = 1):
        apply_profile(echo(n=n), stage, profile)

    path = tmp_path / "probe.yaml"
    compiler.Compiler().compile(probe, str(path))
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-echo"]


def test_default_profile_classes_and_stage_overrides(clean_env):
    profile = load_profile()
    assert profile.stage("llm_pretrain").accelerator_count >= 1
    assert profile.stage("llm-pretrain") == profile.stage("llm_pretrain")
    tokenize = profile.stage("tokenize")
    assert tokenize.accelerator_count == 0
    # stage keys override their class
    assert tokenize.cpu_request != profile.classes["cpu-light"].cpu_request
    assert tokenize.node_selector == profile.classes["cpu-light"].node_selector


def test_profile_named_by_env_and_path(tmp_path, monkeypatch):
    data = _profile_dict()
    data["classes"]["gpu-train"]["accelerator_count"] = 4
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("VLAFORGE_PROFILE", str(path))
    assert load_profile().stage("vla_finetune").accelerator_count == 4
    with pytest.raises(ConfigError, match="unknown cluster profile 'nope'"):
        load_profile("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_profile(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["classes"]["gpu-train"].update(acelerator_count=2), "did you mean 'classes.gpu-train.accelerator_count'"),
    (lambda d: d["stages"]["sim_eval"].update({"class": "gpu-big"}), "stages.sim_eval.class must be one of"),
    (lambda d: d["classes"]["gpu-train"].update(num_nodes=0), "num_nodes must be >= 1"),
    (lambda d: d["classes"]["gpu-train"]["tolerations"][0].update(operator="Has"), r"tolerations\[0\].operator"),
    (lambda d: d["classes"]["cpu-sim"].update(accelerator_count=1), "needs an accelerator_type"),
    (lambda d: d["classes"]["cpu-sim"].update(node_selector={"pool": 3}), "node_selector 'pool' must be a string"),
    (lambda d: d.update(storag={}), "unknown top-level keys"),
])
def test_bad_profiles_name_the_culprit(edit, message):
    data = _profile_dict()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        profile_from_dict(data, "bad.yaml")


def test_unknown_stage_is_an_error(clean_env):
    with pytest.raises(ConfigError, match="stage 'ocr' has no entry"):
        load_profile().stage("ocr")


def test_gpu_stage_compiles_with_pool_shm_secret_retry_timeout(tmp_path, clean_env):
    profile = load_profile()
    sp = profile.stage("llm_pretrain")
    spec, k8s = _compile(tmp_path, "llm_pretrain", profile)
    container = spec["deploymentSpec"]["executors"]["exec-echo"]["container"]
    acc = container["resources"]["accelerator"]
    assert (acc["resourceType"], int(acc["resourceCount"])) == (sp.accelerator_type, sp.accelerator_count)
    assert container["resources"]["resourceMemoryRequest"] == sp.memory_request
    assert k8s["nodeSelector"]["labels"] == sp.node_selector
    assert [t["key"] for t in k8s["tolerations"]] == [t.key for t in sp.tolerations]
    assert k8s["emptyDirMounts"] == [{"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": sp.shm_size,
                                      "volumeName": "dshm"}]
    (secret,) = k8s["secretAsEnv"]
    assert secret["secretName"] == profile.storage.secret_name
    assert {e["envVar"] for e in secret["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(container.get("env", []))
    assert int(k8s["activeDeadlineSeconds"]) == sp.timeout_s
    assert k8s["securityContext"]["runAsNonRoot"] is True
    task = spec["root"]["dag"]["tasks"]["echo"]
    assert task["cachingOptions"]["enableCache"] is True
    assert task["retryPolicy"]["maxRetryCount"] == sp.retries
    assert LAUNCH_ENV not in json.dumps(container.get("env", []))  # one GPU, one node: in-process


def test_multi_node_stage_carries_launch_spec(tmp_path, clean_env):
    data = _profile_dict()
    data["stages"]["llm_pretrain"].update(num_nodes=2, accelerator_count=8)
    data["storage"]["endpoint_url"] = "http://seaweedfs.kubeflow:8333"
    profile = profile_from_dict(data)
    spec, _ = _compile(tmp_path, "llm_pretrain", profile)
    env = {e["name"]: e["value"] for e in spec["deploymentSpec"]["executors"]["exec-echo"]["container"]["env"]}
    assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs.kubeflow:8333"
    launch = json.loads(env[LAUNCH_ENV])
    assert launch["image"] == "registry.test/vlaforge-train:9.9.9"
    assert launch["stage_profile"]["num_nodes"] == 2 and launch["stage"] == "llm_pretrain"


def test_cpu_stage_has_no_gpu_and_no_shm_when_profile_has_none(tmp_path, clean_env):
    spec, k8s = _compile(tmp_path, "step_analysis", load_profile())
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-echo"]["container"]["resources"]
    assert "emptyDirMounts" not in k8s
    assert k8s["nodeSelector"]["labels"] == load_profile().stage("step_analysis").node_selector


def test_no_retries_under_kfp_local(tmp_path, clean_env):
    """A local failure is not a lost node: retrying it only repeats the error, with backoff."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    spec, k8s = _compile(tmp_path, "llm_pretrain", load_profile())
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["echo"]
    assert k8s["nodeSelector"]  # the rest is still set (and ignored by kfp.local)
