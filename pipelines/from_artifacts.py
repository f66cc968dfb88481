"""Pipelines that start midway, from artifacts an earlier run left in object storage (dsl.importer).

Re-run one stage on last week's outputs: give the artifact's URI (``s3://...`` on a cluster, a path
locally). An imported artifact keeps downstream caching valid (``reimport=False``).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Model

from components.llm_pretrain.component import llm_pretrain
from components.vla_finetune.component import vla_finetune
from pipelines.stages import evaluate_against_baselines, imported, preprocessed, stage


@dsl.pipeline(name="vlaforge-llm-from-dataset",
              description="Pretrain the LLM on tokenized shards from an earlier run.")
def llm_from_dataset_pipeline(dataset_uri: str, preset: str = "tiny", llm_overrides: str = "") -> Model:
    """LLM pretraining on an existing tokenize output.

    Args:
        dataset_uri: URI of a tokenize stage output (shards, manifest.jsonl, tokenizer/), e.g. s3://bucket/run/tokenize/dataset.
        preset: Preset name (tiny, metaworld4, 11m, 100m, 410m, 1b) or a YAML path.
        llm_overrides: `key=value` lines for the llm section (e.g. `train.max_steps=2000`).
    """
    dataset = imported(dataset_uri, Dataset, "dataset")
    llm = stage(llm_pretrain(preset=preset, overrides=llm_overrides, dataset=dataset.output), "llm_pretrain")
    return llm.outputs["model"]


@dsl.pipeline(name="vlaforge-robotics-from-demos",
              description="Preprocess recorded robot demonstrations from an earlier run into training shards.")
def robotics_from_demos_pipeline(demos_uri: str, preset: str = "tiny", preprocess_overrides: str = "",
                                 extra_episode_uris: str = "", preprocess_slices: int = 1) -> Dataset:
    """Robotics preprocessing on existing raw episodes.

    Args:
        demos_uri: URI of raw episodes (episodes.jsonl + episodes/*.npz), e.g. a record_demos output.
        preset: Preset name (tiny, metaworld4, 11m, 100m, 410m, 1b) or a YAML path.
        preprocess_overrides: `key=value` lines for the preprocess section (e.g. `future_steps=16`).
        extra_episode_uris: More raw episode datasets (s3:// URIs), separated by newlines, commas or spaces.
        preprocess_slices: preprocess_robotics pods, each encoding a group of episodes; merged into one dataset.
    """
    demos = imported(demos_uri, Dataset, "demos")
    robo = preprocessed(preset, preprocess_overrides, demos.output, preprocess_slices, extra_episode_uris)
    return robo.outputs["merged"]


@dsl.pipeline(name="vlaforge-vla-from-vlm",
              description="Fine-tune a VLA policy on an existing VLM and robotics shards, evaluate, compare (STEP).")
def vla_from_vlm_pipeline(
    backbone_uri: str,
    robotics_uri: str,
    preset: str = "tiny",
    vla_overrides: str = "",
    sim_eval_overrides: str = "",
    step_analysis_overrides: str = "",
    baselines: str = "expert,random",
    model_name: str = "vlaforge_policy",
    sim_eval_slices: int = 1,
) -> NamedTuple("Outputs", policy=Model, report=HTML):
    """VLA fine-tuning from last week's VLM (vlm_pretrain or hf_vlm output) and robotics shards.

    Args:
        backbone_uri: URI of a vlm_pretrain or hf_vlm output, e.g. s3://bucket/run/vlm-pretrain/model.
        robotics_uri: URI of a preprocess_robotics output (train/, val/, stats.json, preprocessing_config.yaml).
        preset: Preset name (tiny, metaworld4, 11m, 100m, 410m, 1b) or a YAML path.
        vla_overrides: `key=value` lines for the vla section (e.g. `freeze_backbone=true`, `train.max_steps=2000`).
        sim_eval_overrides: `key=value` lines for the sim_eval section (tasks, episodes `start:end`, workers).
        step_analysis_overrides: `key=value` lines for the step_analysis section, e.g. `guarantee=per-direction` (alpha per direction, as VLA Foundry), `crashed=refuse`.
        baselines: Comma-separated baselines evaluated beside the policy: expert, random, zero.
        model_name: Name of the trained policy in the rollouts and the report.
        sim_eval_slices: sim_eval pods, each evaluating a (task, episode range) slice; merged into one result set.
    """
    backbone = imported(backbone_uri, Model, "backbone")
    robotics = imported(robotics_uri, Dataset, "robotics")
    vla = stage(vla_finetune(preset=preset, overrides=vla_overrides, backbone=backbone.output,
                             robotics=robotics.output), "vla_finetune")
    _, analysis = evaluate_against_baselines(vla.outputs["policy"], preset, sim_eval_overrides, baselines, model_name,
                                             step_analysis_overrides, sim_eval_slices)
    outputs = NamedTuple("Outputs", policy=Model, report=HTML)
    return outputs(policy=vla.outputs["policy"], report=analysis.outputs["report"])
