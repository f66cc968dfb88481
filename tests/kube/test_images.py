"""Stage images: hadolint-clean Dockerfiles, FROM ${BASE_IMAGE}, non-root, pinned requirements."""

import importlib.util
import re
import shutil
import subprocess

import pytest

from vlaforge.kube.images import FAMILIES, image


@pytest.fixture(scope="module")
def build_images(repo):
    spec = importlib.util.spec_from_file_location("build_images", repo / "scripts" / "build_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dockerfile(repo, family):
    return (repo / "images" / family / "Dockerfile").read_text()


@pytest.mark.parametrize("family", FAMILIES)
def test_hadolint_passes(repo, family):
    hadolint = shutil.which("hadolint") or str(repo / ".venv" / "bin" / "hadolint")
    result = subprocess.run([hadolint, str(repo / "images" / family / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("family", FAMILIES)
def test_dockerfile_base_arg_and_non_root_user(repo, family):
    text = _dockerfile(repo, family)
    (default,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert ":" in default and not default.endswith(":latest"), f"{family}: base {default} must be a pinned tag"
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE_IMAGE}"]
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0, \
        f"{family}: the image must end as a numeric non-root USER (Kubernetes runAsNonRoot checks the UID)"


@pytest.mark.parametrize("family", FAMILIES)
def test_requirements_are_pinned_and_fit_the_family(build_images, family):
    reqs = build_images.requirements(family)
    assert reqs and all("==" in r for r in reqs), reqs
    names = {build_images._name(r) for r in reqs}
    assert "kfp" in names  # the lightweight components' executor runs inside the image
    assert ("torch" in names) == (family != "analysis")


def test_build_command_tags_with_the_project_version(build_images, tmp_path):
    cmd = build_images.build_command("podman", "sim", image("sim", registry="reg.test/ml"), tmp_path, local=True)
    assert cmd[cmd.index("-t") + 1] == "reg.test/ml/vlaforge-sim:" + build_images.project()["version"]
    assert f"BASE_IMAGE={build_images.LOCAL_BASE}" in cmd and "/opt/wheels:/opt/wheels:ro" in cmd
    cluster = build_images.build_command("docker", "train", image("train"), tmp_path, local=False)
    assert not any(a.startswith("BASE_IMAGE=") for a in cluster)  # the Dockerfile's production default
