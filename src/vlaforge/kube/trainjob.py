"""Kubeflow Trainer TrainJobs (trainer.kubeflow.org/v1alpha1, runtime ``torch-distributed``) for
training stages that span several nodes: render, validate against the CRD, create, wait.

Every node runs ``torchrun -m vlaforge.cli <stage command>`` in the stage image; the runtime sets the
``PET_*`` variables (nodes, rank, master) that torchrun reads.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
RUNTIME = "torch-distributed"
NODE = "node"  # the torch-distributed runtime's replicated job and container name
MANAGER = "vlaforge.dev/launcher"
SHM_VOLUME = "dshm"
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class TrainJobError(RuntimeError):
    """A TrainJob could not be created, failed, or ran past its deadline; names the job."""


def job_name(stage: str, key: str) -> str:
    """A stable RFC 1035 name: the same stage and key (the output URI) give the same job, so a retried
    launcher pod re-attaches to its TrainJob instead of starting a second one."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9-]+", "-", stage.lower()).strip("-")[:40].strip("-")
    return f"vlaforge-{slug}-{digest}"


def _resources(sp: dict) -> dict:
    requests = {k: sp[f] for k, f in (("cpu", "cpu_request"), ("memory", "memory_request")) if sp.get(f)}
    limits = {k: sp[f] for k, f in (("cpu", "cpu_limit"), ("memory", "memory_limit")) if sp.get(f)}
    if sp.get("accelerator_count"):
        requests[sp["accelerator_type"]] = limits[sp["accelerator_type"]] = str(sp["accelerator_count"])
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def _env(storage: dict) -> list[dict]:
    env = [{"name": var, "valueFrom": {"secretKeyRef": {"name": storage["secret_name"], "key": key}}}
           for key, var in ((storage["access_key_id_key"], "AWS_ACCESS_KEY_ID"),
                            (storage["secret_access_key_key"], "AWS_SECRET_ACCESS_KEY"))]
    if storage.get("endpoint_url"):
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage["endpoint_url"]})
    if storage.get("region"):
        env.append({"name": "AWS_DEFAULT_REGION", "value": storage["region"]})
    return env


def _pod_patch(sp: dict, security: dict) -> dict:
    pod: dict = {}
    if sp.get("node_selector"):
        pod["nodeSelector"] = dict(sp["node_selector"])
    if sp.get("tolerations"):
        pod["tolerations"] = [{k: v for k, v in tol.items() if v is not None} for tol in sp["tolerations"]]
    if security.get("run_as_user") is not None:
        pod["securityContext"] = {"runAsUser": security["run_as_user"], "runAsNonRoot": True}
        if security.get("run_as_group") is not None:
            pod["securityContext"]["runAsGroup"] = security["run_as_group"]
    if sp.get("shm_size"):
        pod["volumes"] = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": sp["shm_size"]}}]
        pod["containers"] = [{"name": NODE, "volumeMounts": [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]}]
    return pod


def render_trainjob(name: str, namespace: str, launch: dict, cli_args: list[str]) -> dict:
    """The TrainJob that runs ``vlaforge <cli_args>`` on ``num_nodes`` nodes as ``launch`` describes
    (a :func:`vlaforge.kube.profile.launch_spec` mapping)."""
    sp, storage = launch["stage_profile"], launch["storage"]
    trainer = {
        "image": launch["image"],
        "command": ["torchrun", "-m", "vlaforge.cli"],
        "args": [str(a) for a in cli_args],
        "numNodes": int(sp["num_nodes"]),
        "numProcPerNode": max(int(sp.get("accelerator_count") or 0), 1),
        "env": _env(storage),
    }
    resources = _resources(sp)
    if resources:
        trainer["resourcesPerNode"] = resources
    spec: dict = {"runtimeRef": {"name": RUNTIME}, "trainer": trainer}
    if sp.get("timeout_s"):
        spec["activeDeadlineSeconds"] = int(sp["timeout_s"])
    pod = _pod_patch(sp, launch.get("security") or {})
    if pod:
        spec["runtimePatches"] = [{"manager": MANAGER, "trainingRuntimeSpec": {"template": {"spec": {
            "replicatedJobs": [{"name": NODE, "template": {"spec": {"template": {"spec": pod}}}}]}}}}]
    labels = {"app.kubernetes.io/part-of": "vlaforge", "vlaforge.dev/stage": launch["stage"].replace("_", "-")}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainJob",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


def crd_schema(crd_path: str | Path) -> dict:
    """The openAPIV3Schema of the TrainJob CRD's served version ``v1alpha1``."""
    crd = yaml.safe_load(Path(crd_path).read_text())
    for version in crd["spec"]["versions"]:
        if version["name"] == VERSION:
            return version["schema"]["openAPIV3Schema"]
    raise ValueError(f"{crd_path}: no version {VERSION} in the CRD")


def validate_trainjob(body: dict, crd_path: str | Path) -> None:
    """Validate ``body`` against the CRD's schema (jsonschema) plus its CEL name rules; raises ValueError
    naming the offending field."""
    import jsonschema

    validator = jsonschema.Draft7Validator(crd_schema(crd_path))
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        raise ValueError(f"TrainJob {body.get('metadata', {}).get('name')}: {where}: {err.message}")
    name = body["metadata"]["name"]
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
        raise ValueError(f"TrainJob name {name!r} is not an RFC 1035 label of at most 63 characters")
    if body["spec"]["trainer"].get("numProcPerNode", 1) < 1:
        raise ValueError(f"TrainJob {name}: spec.trainer.numProcPerNode must be >= 1")


def current_namespace() -> str:
    path = Path(SA_NAMESPACE_FILE)
    return path.read_text().strip() if path.is_file() else "default"


def in_cluster_api():
    """A ``CustomObjectsApi`` authenticated as the pod's service account."""
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CustomObjectsApi()


def _condition(obj: dict, kind: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def run_trainjob(body: dict, api, poll_s: float = 15.0, timeout_s: float | None = None) -> dict:
    """Create ``body`` (or attach to the job of that name that already exists) and wait until it is
    Complete; raise :class:`TrainJobError` when it Fails or ``timeout_s`` passes. Returns the final object."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        log.info("created TrainJob %s/%s (%d nodes)", namespace, name, body["spec"]["trainer"]["numNodes"])
    except Exception as err:  # kubernetes.client.ApiException; 409: a retried launcher re-attaches
        if getattr(err, "status", None) != 409:
            raise TrainJobError(f"creating TrainJob {namespace}/{name} failed: {err}") from err
        log.info("TrainJob %s/%s exists already; waiting for it", namespace, name)
    start = time.monotonic()
    while True:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        if _condition(obj, "Complete"):
            log.info("TrainJob %s/%s complete after %.0f s", namespace, name, time.monotonic() - start)
            return obj
        failed = _condition(obj, "Failed")
        if failed:
            raise TrainJobError(f"TrainJob {namespace}/{name} failed: "
                                f"{failed.get('reason', '')} {failed.get('message', '')}".strip())
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TrainJobError(f"TrainJob {namespace}/{name} not complete after {timeout_s:.0f} s")
        time.sleep(poll_s)
