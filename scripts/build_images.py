#!/usr/bin/env python3
"""Build (and optionally push) the vlaforge stage images: ``<registry>/vlaforge-<family>:<version>``.

Each build gets a small context: the project wheel plus the family's requirements, pinned exactly as
in pyproject.toml. Tags are the project version (never ``latest``) and match
``vlaforge.kube.images.image(family)``, which the components name.

Here (no registry): ``scripts/build_images.py --local`` builds with podman from the local Debian base
(scripts/podman-base-image.sh) and installs the CPU torch wheel from /opt/wheels, mounted read-only.
On a cluster builder: ``REGISTRY=registry.example.com/ml scripts/build_images.py --builder docker --push``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from vlaforge.kube.images import FAMILIES, image  # noqa: E402

LOCAL_BASE = "localhost/vlaforge-base:bookworm"
HOST_WHEELS = "/opt/wheels"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Packages the analysis image leaves out: it reads rollout results and never runs a model or simulator.
ANALYSIS_EXCLUDES = {"torch", "transformers", "tokenizers", "safetensors", "metaworld", "mujoco",
                     "gymnasium", "grpcio", "grpcio-health-checking"}  # imageio + av: episode strips in the report


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].strip().lower()


def requirements(family: str) -> list[str]:
    """The family's runtime requirements: pyproject's dependencies minus what the family never imports,
    each pinned (one left unpinned in pyproject gets the version installed here, so images match CI)."""
    pinned = []
    for dep in project()["dependencies"]:
        if family == "analysis" and _name(dep) in ANALYSIS_EXCLUDES:
            continue
        pinned.append(dep if "==" in dep else f"{dep}=={importlib.metadata.version(_name(dep))}")
    return pinned


def build_wheel(out_dir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out_dir), str(ROOT)], check=True)
    (wheel,) = out_dir.glob("vlaforge-*.whl")
    return wheel


def build_command(builder: str, family: str, tag: str, context: Path, local: bool,
                  build_args: list[str] = ()) -> list[str]:
    version = project()["version"]
    cmd = [builder, "build", "-f", str(ROOT / "images" / family / "Dockerfile"), "-t", tag,
           "--build-arg", f"VERSION={version}"]
    if builder in ("podman", "buildah"):
        cmd.append("--format=docker")  # keeps SHELL (pipefail), which the OCI format drops
    if local:
        cmd += ["--build-arg", f"BASE_IMAGE={LOCAL_BASE}",
                "--build-arg", f"PIP_FIND_LINKS={HOST_WHEELS}",
                "-v", f"{HOST_WHEELS}:{HOST_WHEELS}:ro",
                "-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    for arg in build_args:
        cmd += ["--build-arg", arg]
    return cmd + [str(context)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", default=list(FAMILIES), help=f"any of {', '.join(FAMILIES)}")
    parser.add_argument("--registry", default=os.environ.get("REGISTRY"),
                        help="registry prefix (default: $REGISTRY, else vlaforge.kube.images' default)")
    parser.add_argument("--builder", default=os.environ.get("BUILDER", "podman"), help="podman, buildah or docker")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to every build, e.g. BASE_IMAGE=... or PIP_EXTRA_INDEX_URL=... (repeatable)")
    parser.add_argument("--local", action="store_true",
                        help="build from the local Debian base with the host's CPU torch wheel (no registry)")
    parser.add_argument("--push", action="store_true", help="push each image after building it")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown image families {unknown}; known: {', '.join(FAMILIES)}")
    if args.local:
        subprocess.run([str(ROOT / "scripts" / "podman-base-image.sh")], check=True)

    with tempfile.TemporaryDirectory(prefix="vlaforge-images-") as tmp:
        wheel = build_wheel(Path(tmp) / "dist")
        for family in args.families:
            tag = image(family, registry=args.registry)
            context = Path(tmp) / family
            context.mkdir()
            shutil.copy(wheel, context)
            (context / "requirements.txt").write_text("\n".join(requirements(family)) + "\n")
            start = time.monotonic()
            print(f"building {tag}", flush=True)
            subprocess.run(build_command(args.builder, family, tag, context, args.local, args.build_arg), check=True)
            print(f"built {tag} in {time.monotonic() - start:.0f} s", flush=True)
            if args.push:
                subprocess.run([args.builder, "push", tag], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
