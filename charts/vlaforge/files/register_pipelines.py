"""Registers vlaforge's compiled pipelines with Kubeflow Pipelines through its REST API (kfp.Client).

The chart runs ``upload`` in its post-install/post-upgrade hook Job (registration.mode=hook) and
``check`` as its ``helm test``. The plan file lists, per compiled pipeline file, the pipeline name and
the version name to register. Registration is idempotent: a pipeline or version that already exists
(HTTP 409 AlreadyExists) counts as registered.

    python register_pipelines.py upload --host URL --plan plan.json --pipelines DIR [--namespace NS]
    python register_pipelines.py check  --host URL --plan plan.json [--namespace NS]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import kfp
from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials
from kfp_server_api.exceptions import ApiException

log = logging.getLogger("register_pipelines")
ALREADY_EXISTS = 409
# Where the chart mounts the projected ServiceAccount token of multi-user KFP.
TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"


def load_plan(path: str) -> list[dict]:
    """Reads the plan: a JSON list of {"file", "pipeline", "version", "description"}."""
    with open(path) as f:
        plan = json.load(f)
    if not isinstance(plan, list):
        raise ValueError(f"{path}: expected a JSON list of pipelines, got {type(plan).__name__}")
    for i, entry in enumerate(plan):
        missing = {"file", "pipeline", "version"} - set(entry)
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {', '.join(sorted(missing))}")
    return plan


def connect(host: str, namespace: str | None, token_path: str = TOKEN_PATH) -> kfp.Client:
    """A kfp.Client for ``host``; sends the ServiceAccount token when one is mounted (multi-user)."""
    credentials = ServiceAccountTokenVolumeCredentials(token_path) if os.path.exists(token_path) else None
    return kfp.Client(host=host, namespace=namespace or "kubeflow", credentials=credentials)


def _name_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def find_pipeline(client: kfp.Client, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline called ``name``, or None."""
    found = client.list_pipelines(filter=_name_filter(name), namespace=namespace).pipelines or []
    return found[0].pipeline_id if found else None


def find_version(client: kfp.Client, pipeline_id: str, version: str) -> str | None:
    """The id of version ``version`` of the pipeline, or None."""
    found = client.list_pipeline_versions(pipeline_id, filter=_name_filter(version)).pipeline_versions or []
    return found[0].pipeline_version_id if found else None


def _tolerate_exists(call, what: str) -> bool:
    """Runs ``call``; True when it created something, False when KFP answered 409 AlreadyExists."""
    try:
        call()
        return True
    except ApiException as err:
        if err.status == ALREADY_EXISTS:
            log.info("%s already exists", what)
            return False
        raise RuntimeError(f"registering {what} failed: HTTP {err.status} {err.reason}: {err.body}") from err


def register(client: kfp.Client, entry: dict, pipelines_dir: str, namespace: str | None) -> str:
    """Uploads one pipeline version (and the pipeline when new). Returns "created" or "exists"."""
    path = os.path.join(pipelines_dir, entry["file"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"compiled pipeline {path} (plan entry {entry['pipeline']}) does not exist")
    name, version, description = entry["pipeline"], entry["version"], entry.get("description") or None
    pipeline_id = find_pipeline(client, name, namespace)
    if pipeline_id is None:
        _tolerate_exists(lambda: client.upload_pipeline(path, pipeline_name=name, description=description,
                                                        namespace=namespace), f"pipeline {name}")
        pipeline_id = find_pipeline(client, name, namespace)
        if pipeline_id is None:
            raise RuntimeError(f"pipeline {name} was uploaded but KFP does not list it")
    created = _tolerate_exists(
        lambda: client.upload_pipeline_version(path, pipeline_version_name=version, pipeline_id=pipeline_id,
                                               description=description),
        f"pipeline {name} version {version}")
    return "created" if created else "exists"


def check(client: kfp.Client, plan: list[dict], namespace: str | None) -> list[str]:
    """Names of the planned pipeline versions that KFP does not list (empty when all are there)."""
    missing = []
    for entry in plan:
        pipeline_id = find_pipeline(client, entry["pipeline"], namespace)
        if pipeline_id is None or find_version(client, pipeline_id, entry["version"]) is None:
            missing.append(f"{entry['pipeline']}/{entry['version']}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["upload", "check"])
    parser.add_argument("--host", required=True, help="KFP API URL, e.g. http://ml-pipeline.kubeflow:8888")
    parser.add_argument("--plan", required=True, help="JSON plan: file, pipeline, version per pipeline")
    parser.add_argument("--pipelines", default=".", help="folder holding the compiled pipeline files")
    parser.add_argument("--namespace", default="", help="namespace of the pipelines (multi-user KFP)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    plan = load_plan(args.plan)
    namespace = args.namespace or None
    client = connect(args.host, namespace)
    if args.action == "upload":
        for entry in plan:
            outcome = register(client, entry, args.pipelines, namespace)
            log.info("pipeline %s version %s: %s", entry["pipeline"], entry["version"], outcome)
        return 0
    missing = check(client, plan, namespace)
    if missing:
        print(f"not registered in KFP at {args.host}: {', '.join(missing)}", file=sys.stderr)
        return 1
    log.info("all %d pipeline versions are registered", len(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
