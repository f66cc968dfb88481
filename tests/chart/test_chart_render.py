"""The vlaforge Helm chart, checked statically (no Kubernetes API server can run here): helm lint
--strict, helm template, strict Kubernetes schema validation of every manifest, custom resources
against their CRDs, the compiled pipeline specs inside the PipelineVersions, and the values schema."""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from chart_helpers import (CHART, CRDS, ROOT, VALUES_DIR, by_kind, chart_pipelines, copy_chart, crd_schema,
                           helm_run, render, render_error, validate_prometheus_operator)

K8S_VERSION = "1.35.0"
VALUES_FILES = ["created-secret.yaml", "existing-secret.yaml", "hook.yaml", "monitoring.yaml"]
CR_SCHEMAS = {
    ("pipelines.kubeflow.org/v2beta1", "Pipeline"): CRDS / "pipelines.kubeflow.org_pipelines.yaml",
    ("pipelines.kubeflow.org/v2beta1", "PipelineVersion"): CRDS / "pipelines.kubeflow.org_pipelineversions.yaml",
}


@pytest.fixture(scope="session")
def multinode_chart(tmp_path_factory):
    """The chart built for multinode.yaml: `make chart VALUES=...` compiles with that clusterProfile."""
    chart = copy_chart(tmp_path_factory.mktemp("chart-multinode"))
    assert chart_pipelines.main(["--chart", str(chart), "--values", str(VALUES_DIR / "multinode.yaml")]) == 0
    return chart


def compiled_documents(compiled_dir):
    """name -> (pipeline spec, platform spec or None) of each compiled IR YAML."""
    out = {}
    for path in sorted(compiled_dir.glob("*.yaml")):
        if chart_pipelines.is_pipeline_ir(path):
            docs = list(yaml.safe_load_all(path.read_text()))
            out[docs[0]["pipelineInfo"]["name"]] = (docs[0], docs[1] if len(docs) > 1 else None)
    return out


def validate_manifests(docs: list[dict]) -> None:
    """Strict schema validation: Kubernetes' own for built-in kinds, the CRDs' for custom resources."""
    operator_docs = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    if operator_docs:
        out = validate_prometheus_operator(operator_docs)
        assert out.returncode == 0, out.stderr
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CR_SCHEMAS:
            jsonschema.validate(doc, crd_schema(CR_SCHEMAS[key], doc["apiVersion"].split("/")[1]))
        elif doc not in operator_docs:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("values", [None, *VALUES_FILES])
def test_lint_strict_and_manifests_validate(helm, chart, values):
    files = [VALUES_DIR / values] if values else []
    lint = helm_run(helm, "lint", "--strict", str(chart), *[a for f in files for a in ("-f", str(f))])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(helm, chart, *files)
    assert docs
    validate_manifests(docs)


def test_multinode_chart_lints_validates_and_carries_the_profile(helm, multinode_chart):
    values = VALUES_DIR / "multinode.yaml"
    lint = helm_run(helm, "lint", "--strict", str(multinode_chart), "-f", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(helm, multinode_chart, values)
    validate_manifests(docs)
    role = next(r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-runner"))
    trainjobs = [r for r in role["rules"] if r["apiGroups"] == ["trainer.kubeflow.org"]]
    assert {"create", "watch"} <= set(trainjobs[0]["verbs"])
    llm_accelerators = [e["container"]["resources"]["accelerator"]
                        for v in by_kind(docs, "PipelineVersion")
                        for name, e in v["spec"]["pipelineSpec"]["deploymentSpec"]["executors"].items()
                        if name.startswith("exec-llm-pretrain") and "accelerator" in e["container"].get("resources", {})]
    assert llm_accelerators
    for accelerator in llm_accelerators:
        assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "8")


def test_helm_package(helm, chart, tmp_path):
    out = helm_run(helm, "package", str(chart), "-d", str(tmp_path))
    assert out.returncode == 0, out.stderr
    (package,) = tmp_path.glob("vlaforge-*.tgz")
    assert package.stat().st_size > 0


def test_pipeline_versions_carry_the_exact_compiled_specs(helm, chart, compiled_dir):
    compiled = compiled_documents(compiled_dir)
    assert compiled, f"no compiled pipelines in {compiled_dir}"
    docs = render(helm, chart)
    pipelines = {p["metadata"]["name"]: p for p in by_kind(docs, "Pipeline")}
    versions = {v["spec"]["pipelineName"]: v for v in by_kind(docs, "PipelineVersion")}
    assert set(pipelines) == set(versions) == set(compiled)
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for name, (spec, platform) in compiled.items():
        version = versions[name]
        assert version["spec"]["pipelineSpec"] == spec
        assert version["spec"].get("platformSpec") == platform
        assert version["metadata"]["name"] == f"{name}-v{app_version.replace('.', '-')}"
        assert version["metadata"]["namespace"] == "ml"
        manifest = compiled_dir / "manifests" / f"{name}.yaml"
        if manifest.exists():  # `vlaforge compile`'s own CRs: same version name, same spec
            (theirs,) = [d for d in yaml.safe_load_all(manifest.read_text()) if d["kind"] == "PipelineVersion"]
            assert theirs["metadata"]["name"] == version["metadata"]["name"]
            assert theirs["spec"]["pipelineSpec"] == spec


def test_platform_specs_parse_as_kfp_protos_with_pushgateway_env(helm, chart, compiled_dir):
    compiled = compiled_documents(compiled_dir)
    docs = render(helm, chart, VALUES_DIR / "monitoring.yaml")
    (env_map,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-env")]
    assert env_map["data"]["PUSHGATEWAY_URL"] == "http://vlaforge-pushgateway.ml.svc:9091"
    for version in by_kind(docs, "PipelineVersion"):
        spec, platform = compiled[version["spec"]["pipelineName"]]
        assert version["spec"]["pipelineSpec"] == spec
        rendered = version["spec"]["platformSpec"]
        json_format.ParseDict(rendered, pipeline_spec_pb2.PlatformSpec())
        executors = rendered["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        containers = {n for n, e in spec["deploymentSpec"]["executors"].items() if "container" in e}
        assert set(executors) == containers
        compiled_executors = ((platform or {}).get("platforms", {}).get("kubernetes", {})
                              .get("deploymentSpec", {}).get("executors", {}))
        for name, config in executors.items():
            json_format.ParseDict(config, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
            *kept, added = config["configMapAsEnv"]
            assert added["configMapName"] == "vlaforge-env"
            assert added["keyToEnv"] == [{"configMapKey": "PUSHGATEWAY_URL", "envVar": "PUSHGATEWAY_URL"}]
            before = dict(compiled_executors.get(name, {}))
            assert kept == before.pop("configMapAsEnv", [])
            assert {k: v for k, v in config.items() if k != "configMapAsEnv"} == before


def test_values_profile_is_the_default_cluster_profile():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    default = yaml.safe_load((ROOT / "src" / "vlaforge" / "kube" / "profiles" / "default.yaml").read_text())
    assert values["clusterProfile"] == default


@pytest.mark.parametrize("sets, culprit", [
    (("objectStore.bucket=",), "bucket"),
    (("objectStore.bucket=null",), "bucket"),
    (("clusterProfile.classes.gpu-train.accelerator_count=-1",), "accelerator_count"),
    (("objectStore.bukket=artifacts",), "bukket"),
    (("clusterProfile.stages.llm_pretrain.gpus=2",), "gpus"),
    (("registration.mode=kubectl",), "mode"),
    (("podSecurityContext.runAsNonRoot=false",), "runAsNonRoot"),
    (("objectStore.existingSecret=", "objectStore.accessKey="), "accessKey"),
])
def test_schema_rejects_invalid_values(helm, chart, sets, culprit):
    error = render_error(helm, chart, sets=sets)
    assert "values don't meet the specifications of the schema" in error
    assert culprit in error


def test_profile_that_differs_from_the_packaged_one_is_refused(helm, chart):
    error = render_error(helm, chart, sets=("clusterProfile.classes.gpu-train.accelerator_count=4",))
    assert "make chart VALUES=" in error
    error = render_error(helm, chart, VALUES_DIR / "multinode.yaml")
    assert "clusterProfile differs" in error


def test_multinode_stage_needs_trainjob_permission(helm, multinode_chart):
    error = render_error(helm, multinode_chart, VALUES_DIR / "multinode.yaml", sets=("multiNode.enabled=false",))
    assert "clusterProfile.stages.llm_pretrain runs on 2 nodes" in error and "multiNode.enabled=true" in error


def test_existing_secret_must_be_the_profile_secret(helm, chart):
    error = render_error(helm, chart, sets=("objectStore.existingSecret=other-s3",))
    assert "clusterProfile.storage.secret_name" in error and "other-s3" in error


def test_object_storage_configuration(helm, chart, multinode_chart):
    docs = render(helm, chart, VALUES_DIR / "created-secret.yaml")
    (launcher,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == "kfp-launcher"]
    assert launcher["data"]["defaultPipelineRoot"] == "s3://ml-artifacts/teams/robotics/vlaforge"
    s3 = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]
    assert s3["credentials"] == {"fromEnv": False, "secretRef": {
        "secretName": "vlaforge-s3", "accessKeyKey": "AWS_ACCESS_KEY_ID", "secretKeyKey": "AWS_SECRET_ACCESS_KEY"}}
    assert s3["forcePathStyle"] is True and "endpoint" not in s3
    (secret,) = by_kind(docs, "Secret")
    assert secret["metadata"]["name"] == "vlaforge-s3"
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}

    existing = render(helm, chart, VALUES_DIR / "existing-secret.yaml")
    assert not by_kind(existing, "Secret")
    assert not [c for c in by_kind(existing, "ConfigMap") if c["metadata"]["name"] == "kfp-launcher"]

    seaweed = render(helm, multinode_chart, VALUES_DIR / "multinode.yaml")
    (launcher,) = [c for c in by_kind(seaweed, "ConfigMap") if c["metadata"]["name"] == "kfp-launcher"]
    s3 = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]
    assert (s3["endpoint"], s3["disableSSL"], s3["region"]) == ("seaweedfs.kubeflow:8333", True, "us-east-1")


def test_rbac_is_least_privilege(helm, chart):
    docs = render(helm, chart, VALUES_DIR / "hook.yaml")
    roles = {r["metadata"]["name"]: r for r in by_kind(docs, "Role")}
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]) \
                or rule["apiGroups"] == ["trainer.kubeflow.org"]
    runner = roles["vlaforge-runner"]
    assert not [r for r in runner["rules"] if "trainer.kubeflow.org" in r["apiGroups"]]
    secrets = [r for r in runner["rules"] if r["resources"] == ["secrets"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["vlaforge-s3"],
                        "verbs": ["get"]}]
    bindings = {b["roleRef"]["name"]: b["subjects"] for b in by_kind(docs, "RoleBinding")}
    assert bindings["vlaforge-runner"] == [{"kind": "ServiceAccount", "name": "vlaforge-runner", "namespace": "ml"}]
    assert bindings["vlaforge-registrar"][0]["name"] == "vlaforge-registrar"


def pod_specs(docs):
    for doc in docs:
        if doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["spec"]
        elif doc["kind"] in ("Job", "Deployment"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("values", ["hook.yaml", "monitoring.yaml"])
def test_pods_run_as_non_root(helm, chart, values):
    specs = dict(pod_specs(render(helm, chart, VALUES_DIR / values)))
    assert specs
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name


def test_hook_mode_uploads_the_compiled_files(helm, chart, compiled_dir):
    docs = render(helm, chart, VALUES_DIR / "hook.yaml")
    assert not by_kind(docs, "Pipeline") and not by_kind(docs, "PipelineVersion")
    (job,) = by_kind(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1] == "upload" and "--namespace=ml" in container["args"]
    maps = {c["metadata"]["name"]: c["data"] for c in by_kind(docs, "ConfigMap")}
    plan = json.loads(maps["vlaforge-registrar"]["plan.json"])
    files = {k: v for data in maps.values() for k, v in data.items() if k.endswith(".yaml")}
    compiled = compiled_documents(compiled_dir)
    assert {e["pipeline"] for e in plan} == set(compiled)
    for entry in plan:
        assert entry["version"] == "release-2026-11"
        assert files[entry["file"]] == (compiled_dir / entry["file"]).read_text()
    script = maps["vlaforge-registrar"]["register_pipelines.py"]
    assert script == (CHART / "files" / "register_pipelines.py").read_text()
    (test_pod,) = by_kind(docs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["command"][-1] == "check"


def test_grafana_dashboard_plots_the_metrics_training_exports(helm, chart):
    from vlaforge.train.metrics import GAUGES

    docs = render(helm, chart)
    (dashboard_map,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboard_map["data"]["vlaforge-training.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    exported = {f"vlaforge_train_{name}" for name in GAUGES}
    plotted = {word.split("{")[0] for word in exprs.split() if word.startswith("vlaforge_train_")}
    assert plotted <= exported, plotted - exported
    assert {"vlaforge_train_loss", "vlaforge_train_lr", "vlaforge_train_tokens_per_s"} <= plotted


def test_notes_say_how_to_launch_the_first_run(helm, chart):
    out = helm_run(helm, "install", "vlaforge", str(chart), "--dry-run=client", "--namespace", "ml")
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "helm test vlaforge -n ml" in notes
    assert 'service_account="vlaforge-runner"' in notes and "vlaforge-full" in notes
