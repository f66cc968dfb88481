"""Helpers of the Helm chart tests: paths, rendering with helm, CRD schemas."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "vlaforge"
VALUES_DIR = Path(__file__).parent / "values"
CRDS = ROOT / "tests" / "crds"
NODE_MODULES = ROOT / ".tools" / "npm" / "node_modules"


def _load_chart_pipelines():
    spec = importlib.util.spec_from_file_location("chart_pipelines", ROOT / "scripts" / "chart_pipelines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chart_pipelines = _load_chart_pipelines()


def copy_chart(dest: Path) -> Path:
    chart = dest / "vlaforge"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("*.tgz"))
    return chart


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm), *args], capture_output=True, text=True)


def template(helm: Path, chart: Path, values: tuple[Path, ...], sets: tuple[str, ...]) -> subprocess.CompletedProcess:
    """`helm template vlaforge CHART --namespace ml -f VALUES... --set SETS...`."""
    args = ["template", "vlaforge", str(chart), "--namespace", "ml"]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return helm_run(helm, *args)


def render(helm: Path, chart: Path, *values: Path, sets: tuple[str, ...] = ()) -> list[dict]:
    """The rendered documents (hooks and tests included); fails on a helm error."""
    out = template(helm, chart, values, sets)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def render_error(helm: Path, chart: Path, *values: Path, sets: tuple[str, ...] = ()) -> str:
    """The error text of a `helm template` that must fail."""
    out = template(helm, chart, values, sets)
    assert out.returncode != 0, f"helm template accepted {values} {sets}"
    return out.stderr


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def strict(schema):
    """A CRD schema that also rejects unknown fields, as `kubectl apply --validate=strict` does: objects
    with declared properties (and no x-kubernetes-preserve-unknown-fields) get additionalProperties: false."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_schema(path: Path, version: str) -> dict:
    """The strict openAPIV3Schema of ``version`` in a CRD file."""
    crd = yaml.safe_load(path.read_text())
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return strict(entry["schema"]["openAPIV3Schema"])


def validate_prometheus_operator(docs: list[dict]) -> subprocess.CompletedProcess:
    """Prometheus Operator resources through its CRD-generated validators (node; see install-helm-tools.sh)."""
    return subprocess.run(["node", str(Path(__file__).parent / "validate_prometheus_operator.mjs"),
                           str(NODE_MODULES)], input=json.dumps(docs), capture_output=True, text=True)
