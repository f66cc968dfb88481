"""``vlaforge run``: the full pipeline on this machine through kfp.local, with caching.

The preset and the user's overrides are resolved here and handed to each stage as that stage's
complete ``key=value`` list, every field of its config class included, so the KFP cache key of a
task changes exactly when its configuration does: edits to the preset file and new or changed
defaults in the code included.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from vlaforge.analysis.headline import DEFAULT_POLICY, headline_table, to_text
from vlaforge.config import ConfigError, apply_overrides, load, load_preset_dict, split_overrides
from vlaforge.fanout import FanoutConfig
from vlaforge.run_console import StageConsole


def flatten(section: dict, prefix: str = "") -> list[str]:
    """``{"model": {"d": 4}}`` -> ``["model.d=4"]`` (values as JSON, which YAML parses back)."""
    items = []
    for key, value in section.items():
        if isinstance(value, dict) and value:
            items += flatten(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={json.dumps(value)}")
    return items


# Every preset section and the config class that reads it ("module:Class").
SECTIONS = {
    "tokenize": "vlaforge.data.tokenize:TokenizeConfig",
    "llm": "vlaforge.stages.llm_pretrain:LLMStageConfig",
    "captions": "vlaforge.sim.scene_captions:CaptionConfig",
    "vlm": "vlaforge.stages.vlm_pretrain:VLMStageConfig",
    "hf_vlm": "vlaforge.stages.hf_vlm:HFVLMStageConfig",
    "demos": "vlaforge.sim.demos:DemoConfig",
    "preprocess": "vlaforge.robotics.config:PreprocessConfig",
    "lerobot_import": "vlaforge.stages.lerobot_import:LeRobotImportConfig",
    "vla": "vlaforge.stages.vla_finetune:VLAStageConfig",
    "sim_eval": "vlaforge.sim.evaluate:EvalConfig",
    "serve": "vlaforge.serve.server:ServeConfig",
    "step_analysis": "vlaforge.analysis.config:AnalysisConfig",
    "fanout": "vlaforge.fanout:FanoutConfig",
}


def stage_configs() -> dict[str, type]:
    """Config class of every preset section."""
    classes = {}
    for section, target in SECTIONS.items():
        module, name = target.split(":")
        classes[section] = getattr(importlib.import_module(module), name)
    return classes


def resolve(preset: str, overrides: list[str]) -> dict[str, str]:
    """Per-section override strings of the resolved preset: every field of each section's config."""
    data, source = load_preset_dict(preset)
    data = apply_overrides(data, split_overrides(overrides))
    classes = stage_configs()
    unknown = sorted(set(data) - set(classes))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(classes)}")
    resolved = {}
    for section, cls in classes.items():
        cfg = load(cls, preset, flatten(data.get(section) or {}), section)  # raises a ConfigError naming the key
        resolved[section] = "\n".join(flatten(dataclasses.asdict(cfg)))
    return resolved


def run_embedded(preset: str, overrides: list[str], root: str = "runs", fresh: bool = False,
                 out: TextIO | None = None) -> dict:
    """Run the full pipeline of ``preset`` + ``overrides`` under ``root``; one console line per stage, the
    stages' logs under ``<root>/logs/<time>/``, then the report's path and the headline table."""
    from kfp import local

    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's import-time notice, not the run's
    from pipelines.full import STAGE_SECTIONS, full_pipeline
    from vlaforge.stages import plan_slices

    out = out or sys.stdout
    sections = resolve(preset, overrides)
    fanout = dataclasses.asdict(load(FanoutConfig, preset, sections["fanout"], "fanout"))
    for section, width in fanout.items():
        plan_slices.run(section, preset, sections[section], width)  # a bad width fails here, naming the parameter
    root_path = Path(root).resolve()
    os.environ.setdefault("VLAFORGE_CACHE", str(root_path / "cache"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root_path / "pipeline_root"),
               enable_caching=not fresh, cache_root=str(root_path / "kfp_cache"))
    args = {f"{prefix}_overrides": sections[section] for prefix, section in STAGE_SECTIONS.items()}
    args.update({f"{section}_slices": width for section, width in fanout.items()})
    log_dir = root_path / "logs" / time.strftime("%Y-%m-%d-%H-%M-%S")
    stages = len(full_pipeline.pipeline_spec.root.dag.tasks)
    out.write(f"vlaforge run: preset {preset}, {stages} stages; stage logs in {log_dir}/<stage>.log\n")
    start = time.perf_counter()
    with StageConsole(log_dir, stages, out) as console:
        try:
            run = full_pipeline(preset=preset, **args)
        except RuntimeError as err:
            raise RuntimeError(f"{err}; logs of the failed stage(s): "
                               f"{', '.join(str(console.log_path(t)) for t in console.failed)}") from err
    report = summarize(run, time.perf_counter() - start)
    out.write(f"\npipeline finished in {report['pipeline_seconds']:.0f} s\nreport: {report['report']}\n"
              f"tables, plots and episode strips: {report['details']}\n")
    if report["sim_eval"].get("slices"):
        out.write(f"sim_eval: {int(report['sim_eval']['slices'])} slice(s), wall seconds "
                  f"{report['sim_eval']['slice_seconds']}\n")
    if report["headline"]:
        out.write("\n" + to_text(report["headline"]) + "\n")
    out.flush()
    return report


def summarize(run, elapsed: float) -> dict:
    """Where the final artifacts are, the report, and the headline table of the comparison."""
    outputs = {name: artifact.path for name, artifact in run.outputs.items()}
    details = str(Path(outputs["report"]).parent / "details")  # step_analysis's folder of every output file
    has_tables = Path(details, "per_task.csv").exists()
    fanout = run.outputs["rollouts"].metadata  # merge_slices: the sim_eval slices' wall times
    return {"pipeline_seconds": round(elapsed, 1), "artifacts": outputs, "report": outputs["report"],
            "details": details, "headline": headline_table(details, DEFAULT_POLICY) if has_tables else None,
            "sim_eval": {k: fanout[k] for k in ("slices", "slice_seconds", "slowest_slice_seconds") if k in fanout}}
