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
import time
from pathlib import Path

import yaml

from vlaforge.config import ConfigError, apply_overrides, load, load_preset_dict, split_overrides
from vlaforge.fanout import FanoutConfig

log = logging.getLogger(__name__)


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


def run_embedded(preset: str, overrides: list[str], root: str = "runs", fresh: bool = False) -> dict:
    from kfp import local

    from pipelines.full import STAGE_SECTIONS, full_pipeline
    from vlaforge.stages import plan_slices

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
    start = time.perf_counter()
    run = full_pipeline(preset=preset, **args)
    elapsed = time.perf_counter() - start
    report = summarize(run, elapsed)
    print(yaml.safe_dump(report, sort_keys=False, width=120))
    return report


def _json(path: str, name: str) -> dict:
    file = Path(path, name)
    return json.loads(file.read_text()) if file.exists() else {}


def summarize(run, elapsed: float) -> dict:
    """Where the final artifacts are and the headline numbers of each stage."""
    outputs = {name: artifact.path for name, artifact in run.outputs.items()}
    report: dict = {"pipeline_seconds": round(elapsed, 1), "artifacts": outputs}
    for stage, keys in (("llm", ("final_val_loss", "tokens_per_s", "sample")),
                        ("vlm", ("final_val_loss", "val_loss_paired", "val_loss_mismatched")),
                        ("policy", ("final_val_loss", "samples_per_s", "train_seconds"))):
        summary = _json(outputs[stage], "train_summary.json")
        report[stage] = {k: summary[k] for k in keys if k in summary}
    fanout = run.outputs["rollouts"].metadata
    report["sim_eval"] = {k: fanout[k] for k in ("slices", "slice_seconds", "slowest_slice_seconds") if k in fanout}
    return report
