"""Compile every vlaforge pipeline to KFP IR YAML, plus Pipeline/PipelineVersion custom resources.

``<out>/<pipeline-name>.yaml`` is what the KFP UI uploads; ``<out>/manifests/<pipeline-name>.yaml``
holds the ``pipelines.kubeflow.org/v2beta1`` resources that the Helm chart applies. The pipeline name
is stable (KFP's cache is scoped by it); the PipelineVersion is named after the project version.
Compiled output depends on the image registry ($VLAFORGE_REGISTRY) and the cluster profile
($VLAFORGE_PROFILE), which are read when the pipeline modules are imported.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path

from vlaforge import __version__

log = logging.getLogger(__name__)

# Pipeline name -> "module:function". Names are stable: KFP scopes its cache by pipeline name.
PIPELINES = {
    "vlaforge-full": "pipelines.full:full_pipeline",
    "vlaforge-from-hf-vlm": "pipelines.from_hf_vlm:from_hf_vlm_pipeline",
    "vlaforge-llm-from-dataset": "pipelines.from_artifacts:llm_from_dataset_pipeline",
    "vlaforge-robotics-from-demos": "pipelines.from_artifacts:robotics_from_demos_pipeline",
    "vlaforge-vla-from-vlm": "pipelines.from_artifacts:vla_from_vlm_pipeline",
    "vlaforge-vla-from-lerobot": "pipelines.from_lerobot:vla_from_lerobot_pipeline",
    "vlaforge-eval-compare": "pipelines.evaluate_compare:evaluate_compare_pipeline",
}
MANIFEST_DIR = "manifests"


def load_pipeline(name: str):
    """The ``@dsl.pipeline`` object registered as ``name``."""
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline '{name}'; known: {', '.join(PIPELINES)}")
    module, attr = PIPELINES[name].split(":")
    pipeline = getattr(importlib.import_module(module), attr)
    declared = pipeline.pipeline_spec.pipeline_info.name
    if declared != name:
        raise ValueError(f"{PIPELINES[name]} declares pipeline name '{declared}', registered as '{name}'")
    return pipeline


def version_name(pipeline_name: str) -> str:
    """PipelineVersion resource name: ``<pipeline>-v<project version>`` as an RFC 1123 label."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{pipeline_name}-v{__version__}".lower()).strip("-")


def compile_all(out_dir: str | Path, names: list[str] | None = None) -> list[Path]:
    """Compile ``names`` (default: all) into ``out_dir``; returns the files written."""
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    out_dir = Path(out_dir)
    (out_dir / MANIFEST_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(PIPELINES):
        pipeline = load_pipeline(name)
        ir_path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(ir_path))
        manifest_path = out_dir / MANIFEST_DIR / f"{name}.yaml"
        options = KubernetesManifestOptions(pipeline_version_name=version_name(name),
                                            include_pipeline_manifest=True)
        compiler.Compiler().compile(pipeline, str(manifest_path), kubernetes_manifest_format=True,
                                    kubernetes_manifest_options=options)
        log.info("compiled %s -> %s, %s", name, ir_path, manifest_path)
        written += [ir_path, manifest_path]
    return written
