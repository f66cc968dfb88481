"""Puts the compiled vlaforge pipelines into the Helm chart (charts/vlaforge/pipelines/), for `make chart`.

Without ``--values``: copies the IR YAMLs of ``--compiled`` (``vlaforge compile`` output; its
``manifests/`` subfolder is not needed, the chart renders its own Pipeline/PipelineVersion resources)
and records the cluster profile they were compiled with ($VLAFORGE_PROFILE or the packaged default).
With ``--values FILE``: compiles the pipelines with the ``clusterProfile`` of the chart's values.yaml
overlaid with FILE (as helm merges values), so the chart carries the profile its installers give.
The profile goes to ``pipelines/profile.json``; the chart refuses values whose profile differs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from vlaforge.config import merge

log = logging.getLogger("chart_pipelines")
ROOT = Path(__file__).resolve().parent.parent


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SystemExit(f"chart_pipelines: cannot read {path}: {err}") from err
    if not isinstance(data, dict):
        raise SystemExit(f"chart_pipelines: {path} must hold a YAML mapping")
    return data


def is_pipeline_ir(path: Path) -> bool:
    """True for a compiled KFP IR YAML (first document has pipelineInfo), not a CR manifest."""
    first = next(yaml.safe_load_all(path.read_text()), None)
    return isinstance(first, dict) and "pipelineInfo" in first


def compile_pipelines(profile: dict, out: Path) -> None:
    """`vlaforge compile --profile` in a fresh process (the profile is read when pipelines are imported)."""
    profile_file = out / "profile.yaml"
    profile_file.write_text(yaml.safe_dump(profile, sort_keys=False))
    code = "import sys; from vlaforge.kube.compile import compile_all; compile_all(sys.argv[1])"
    log.info("compiling the pipelines with the cluster profile %s", profile_file)
    subprocess.run([sys.executable, "-c", code, str(out / "compiled")], check=True, cwd=ROOT,
                   env={**os.environ, "VLAFORGE_PROFILE": str(profile_file)})


def default_profile() -> dict:
    """The profile `vlaforge compile` uses when given none."""
    from vlaforge.kube.profile import profile_path

    return load_yaml(profile_path())


def package(chart: Path, compiled: Path, profile: dict) -> list[Path]:
    """Replaces the chart's pipelines with the IR YAMLs in ``compiled``; writes profile.json."""
    sources = sorted(p for p in compiled.glob("*.yaml") if is_pipeline_ir(p))
    if not sources:
        raise SystemExit(f"chart_pipelines: no compiled pipelines (KFP IR YAML) in {compiled}: "
                         "run `make compile` first")
    target = chart / "pipelines"
    target.mkdir(exist_ok=True)
    for old in target.glob("*.yaml"):
        old.unlink()
    written = []
    for src in sources:
        dst = target / src.name
        tmp = dst.with_suffix(".tmp")
        tmp.write_bytes(src.read_bytes())
        os.replace(tmp, dst)
        written.append(dst)
    tmp = target / "profile.json.tmp"
    tmp.write_text(json.dumps(profile, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, target / "profile.json")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", type=Path, default=ROOT / "charts" / "vlaforge")
    parser.add_argument("--compiled", type=Path, default=ROOT / "pipelines" / "compiled",
                        help="folder of `vlaforge compile` output (used without --values)")
    parser.add_argument("--values", type=Path, help="values file whose clusterProfile to compile with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.values is None:
        written = package(args.chart, args.compiled, default_profile())
    else:
        values = merge(load_yaml(args.chart / "values.yaml"), load_yaml(args.values))
        with tempfile.TemporaryDirectory() as tmp:
            compile_pipelines(values["clusterProfile"], Path(tmp))
            written = package(args.chart, Path(tmp) / "compiled", values["clusterProfile"])
    for path in written:
        log.info("packaged %s", path.relative_to(args.chart))
    return 0


if __name__ == "__main__":
    sys.exit(main())
