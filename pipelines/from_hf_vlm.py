"""From a Hugging Face VLM (Qwen3-VL, SmolVLM, ...) instead of tokenize -> llm_pretrain -> vlm_pretrain:

    caption_data -> hf_vlm --------------------------+
    record_demos -> preprocess_robotics -------------+-> vla_finetune -> sim_eval --+
    sim_eval_baselines ---------------------------------------------------------------+-> step_analysis
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Model

from components.hf_vlm.component import hf_vlm
from components.record_demos.component import record_demos
from components.vla_finetune.component import vla_finetune
from pipelines.stages import captions, evaluate_against_baselines, fingerprinted, preprocessed, stage


@dsl.pipeline(name="vlaforge-from-hf-vlm",
              description="Fine-tune a VLA policy on a Hugging Face VLM, evaluate it in simulation, compare (STEP).")
def from_hf_vlm_pipeline(
    preset: str = "tiny",
    hf_vlm_overrides: str = "",
    captions_overrides: str = "",
    caption_source_uri: str = "",
    demos_overrides: str = "",
    preprocess_overrides: str = "",
    vla_overrides: str = "",
    sim_eval_overrides: str = "",
    step_analysis_overrides: str = "",
    baselines: str = "expert,random",
    model_name: str = "vlaforge_policy",
    captions_slices: int = 1,
    sim_eval_slices: int = 1,
    preprocess_slices: int = 1,
) -> NamedTuple("Outputs", policy=Model, report=HTML):
    """VLA fine-tuning on a pretrained Hugging Face VLM, then closed-loop evaluation and comparison.

    Args:
        preset: Preset name (tiny, metaworld4, 11m, 100m, 410m, 1b) or a YAML path.
        hf_vlm_overrides: `key=value` lines for the hf_vlm section, e.g. `model=Qwen/Qwen3-VL-2B-Instruct` (hub name, folder or s3:// URI), `finetune=false`.
        captions_overrides: `key=value` lines for the captions section (scenes the VLM is tuned on).
        caption_source_uri: Existing img2dataset shards (local or s3://) to use instead of rendering captions.
        demos_overrides: `key=value` lines for the demos section (tasks, episodes per task, cameras).
        preprocess_overrides: `key=value` lines for the preprocess section (windows, normalisation).
        vla_overrides: `key=value` lines for the vla section (e.g. `freeze_backbone=true`, `train.max_steps=2000`).
        sim_eval_overrides: `key=value` lines for the sim_eval section (tasks, episodes `start:end`, workers).
        step_analysis_overrides: `key=value` lines for the step_analysis section, e.g. `guarantee=per-direction` (alpha per direction, as VLA Foundry), `crashed=refuse`.
        baselines: Comma-separated baselines evaluated beside the policy: expert, random, zero.
        model_name: Name of the trained policy in the rollouts and the report.
        captions_slices: caption_data pods, each rendering a (task, scene range) slice; merged into one shard set.
        sim_eval_slices: sim_eval pods, each evaluating a (task, episode range) slice; merged into one result set.
        preprocess_slices: preprocess_robotics pods, each encoding a group of episodes; merged into one dataset.
    """
    caps = captions(preset, captions_overrides, caption_source_uri, captions_slices)
    backbone = fingerprinted(preset, "hf_vlm", hf_vlm_overrides, fields="model")
    vlm = stage(hf_vlm(preset=preset, overrides=hf_vlm_overrides, captions=caps.outputs["merged"],
                       input_fingerprint=backbone.output), "hf_vlm")
    demos = stage(record_demos(preset=preset, overrides=demos_overrides), "record_demos")
    robo = preprocessed(preset, preprocess_overrides, demos.outputs["demos"], preprocess_slices)
    vla = stage(vla_finetune(preset=preset, overrides=vla_overrides, backbone=vlm.outputs["model"],
                             robotics=robo.outputs["merged"]), "vla_finetune")
    _, analysis = evaluate_against_baselines(vla.outputs["policy"], preset, sim_eval_overrides, baselines, model_name,
                                             step_analysis_overrides, sim_eval_slices)
    outputs = NamedTuple("Outputs", policy=Model, report=HTML)
    return outputs(policy=vla.outputs["policy"], report=analysis.outputs["report"])
