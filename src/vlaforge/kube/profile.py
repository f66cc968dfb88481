"""Cluster profile: per-stage scheduling (GPU node pools, resources, /dev/shm, S3 secret, retries,
timeouts, nodes), read from one YAML file and applied to pipeline tasks.

A profile has ``storage``, ``security``, ``classes`` (named scheduling classes such as ``gpu-train``)
and ``stages`` (stage name -> ``{class: NAME, <class key>: <override>, ...}``). ``load_profile()``
reads ``$VLAFORGE_PROFILE`` or the packaged ``default``; ``apply_profile(task, stage)`` sets
everything on a KFP task. Under ``kfp.local`` the Kubernetes settings are ignored by KFP (with a
warning); retries are left out there because a local failure is not a lost node.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vlaforge.config import ConfigError, from_dict, named_yaml

PROFILE_DIR = Path(__file__).parent / "profiles"
PROFILE_ENV = "VLAFORGE_PROFILE"
LAUNCH_ENV = "VLAFORGE_LAUNCH"
OPERATORS = ("Equal", "Exists")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass
class Toleration:
    key: str | None = None
    operator: str = "Equal"
    value: str | None = None
    effect: str | None = None


@dataclass
class StageProfile:
    """How one stage's pod (or, with ``num_nodes > 1``, each TrainJob node) is scheduled."""

    accelerator_type: str | None = None
    accelerator_count: int = 0
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Toleration] = field(default_factory=list)
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    shm_size: str | None = None
    retries: int = 0
    retry_backoff: str = "30s"
    timeout_s: int | None = None
    num_nodes: int = 1

    @property
    def nproc_per_node(self) -> int:
        """Training processes per node: one per accelerator, else one."""
        return max(self.accelerator_count, 1)


@dataclass
class StorageProfile:
    secret_name: str
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    endpoint_url: str = ""
    region: str = ""
    staging_uri: str = ""

    def env(self) -> dict[str, str]:
        """Plain (non-secret) environment for S3 access."""
        env = {}
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.region:
            env["AWS_DEFAULT_REGION"] = self.region
        return env

    def secret_env(self) -> dict[str, str]:
        """Secret key -> environment variable."""
        return {self.access_key_id_key: "AWS_ACCESS_KEY_ID",
                self.secret_access_key_key: "AWS_SECRET_ACCESS_KEY"}


@dataclass
class SecurityProfile:
    run_as_user: int | None = 1000
    run_as_group: int | None = 1000


@dataclass
class ClusterProfile:
    storage: StorageProfile
    classes: dict[str, StageProfile]
    stages: dict[str, StageProfile]
    security: SecurityProfile = field(default_factory=SecurityProfile)
    source: str = "<dict>"

    def stage(self, name: str) -> StageProfile:
        key = name.replace("-", "_")
        if key not in self.stages:
            raise ConfigError(f"{self.source}: stage '{name}' has no entry under 'stages'; "
                              f"known stages: {', '.join(sorted(self.stages))}")
        return self.stages[key]


def _check_stage(sp: StageProfile, where: str) -> StageProfile:
    if sp.num_nodes < 1:
        raise ConfigError(f"{where}: num_nodes must be >= 1, got {sp.num_nodes}")
    if sp.accelerator_count < 0:
        raise ConfigError(f"{where}: accelerator_count must be >= 0, got {sp.accelerator_count}")
    if sp.accelerator_count and not sp.accelerator_type:
        raise ConfigError(f"{where}: accelerator_count {sp.accelerator_count} needs an accelerator_type")
    if sp.retries < 0:
        raise ConfigError(f"{where}: retries must be >= 0, got {sp.retries}")
    for key, value in sp.node_selector.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: node_selector '{key}' must be a string, got {value!r}")
    for i, tol in enumerate(sp.tolerations):
        if tol.operator not in OPERATORS:
            raise ConfigError(f"{where}: tolerations[{i}].operator must be one of {OPERATORS}, "
                              f"got {tol.operator!r}")
        if tol.effect is not None and tol.effect not in EFFECTS:
            raise ConfigError(f"{where}: tolerations[{i}].effect must be one of {EFFECTS}, got {tol.effect!r}")
    return sp


def profile_from_dict(data: dict, source: str = "<dict>") -> ClusterProfile:
    """Build and check a :class:`ClusterProfile`; errors name the file and key."""
    unknown = set(data) - {"storage", "security", "classes", "stages"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}; "
                          "known: classes, security, stages, storage")
    for key in ("storage", "classes", "stages"):
        if not isinstance(data.get(key), dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping")
    classes = {name: _check_stage(from_dict(StageProfile, body or {}, source, prefix=f"classes.{name}."),
                                  f"{source}: classes.{name}")
               for name, body in data["classes"].items()}
    stages = {}
    for name, body in data["stages"].items():
        body = dict(body or {})
        cls = body.pop("class", None)
        if cls not in classes:
            raise ConfigError(f"{source}: stages.{name}.class must be one of {sorted(classes)}, got {cls!r}")
        merged = {**dataclasses.asdict(classes[cls]), **body}
        stages[name] = _check_stage(from_dict(StageProfile, merged, source, prefix=f"stages.{name}."),
                                    f"{source}: stages.{name}")
    return ClusterProfile(
        storage=from_dict(StorageProfile, data["storage"], source, prefix="storage."),
        security=from_dict(SecurityProfile, data.get("security") or {}, source, prefix="security."),
        classes=classes, stages=stages, source=source)


def profile_path(name_or_path: str | None = None) -> Path:
    """A profile name (``default``) resolves to the packaged YAML; a ``.yaml`` path is used as is."""
    return named_yaml(name_or_path or os.environ.get(PROFILE_ENV) or "default", PROFILE_DIR, "cluster profile")


def load_profile(path_or_name: str | None = None) -> ClusterProfile:
    """Load a cluster profile by name or path (default: ``$VLAFORGE_PROFILE``, else ``default``)."""
    path = profile_path(path_or_name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a cluster profile must be a mapping")
    return profile_from_dict(data, str(path))


def launch_spec(stage: str, image: str, profile: ClusterProfile) -> dict:
    """What a training component needs at run time to go beyond one process (see vlaforge.kube.launch)."""
    return {"stage": stage, "image": image,
            "stage_profile": dataclasses.asdict(profile.stage(stage)),
            "storage": dataclasses.asdict(profile.storage),
            "security": dataclasses.asdict(profile.security)}


def _running_locally() -> bool:
    from kfp.local import config as local_config

    return local_config.LocalExecutionConfig.instance is not None


def apply_profile(task, stage: str, profile: ClusterProfile | None = None):
    """Apply ``stage``'s cluster settings to a KFP pipeline task; returns the task."""
    from kfp import kubernetes

    profile = profile or load_profile()
    sp = profile.stage(stage)
    task.set_caching_options(enable_caching=True)
    if sp.accelerator_count:
        task.set_accelerator_type(sp.accelerator_type).set_accelerator_limit(sp.accelerator_count)
    for setter, value in ((task.set_cpu_request, sp.cpu_request), (task.set_cpu_limit, sp.cpu_limit),
                          (task.set_memory_request, sp.memory_request),
                          (task.set_memory_limit, sp.memory_limit)):
        if value:
            setter(value)
    for key, value in sp.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in sp.tolerations:
        kubernetes.add_toleration(task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect)
    if sp.shm_size:
        kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                                   size_limit=sp.shm_size)
    kubernetes.use_secret_as_env(task, secret_name=profile.storage.secret_name,
                                 secret_key_to_env=profile.storage.secret_env())
    for name, value in profile.storage.env().items():
        task.set_env_variable(name, value)
    if profile.security.run_as_user is not None:
        kubernetes.set_security_context(task, run_as_user=profile.security.run_as_user,
                                        run_as_group=profile.security.run_as_group, run_as_non_root=True)
    if sp.timeout_s:
        kubernetes.set_timeout(task, sp.timeout_s)
    if sp.retries and not _running_locally():
        task.set_retry(num_retries=sp.retries, backoff_duration=sp.retry_backoff)
    if sp.num_nodes > 1 or sp.nproc_per_node > 1:
        image = task.container_spec.image if task.container_spec else ""
        task.set_env_variable(LAUNCH_ENV, json.dumps(launch_spec(stage, image, profile), sort_keys=True))
    return task
