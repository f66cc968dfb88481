"""The full vlaforge DAG.

    tokenize -> llm_pretrain --+
    caption_data --------------+-> vlm_pretrain --+
    record_demos -> preprocess_robotics ----------+-> vla_finetune -> sim_eval --+
    sim_eval_baselines ----------------------------------------------------------+-> step_analysis

Every stage takes the preset name and its own overrides, so changing one stage's parameters changes
only that task's cache key: upstream tasks are served from the cache. Inputs read by URI (the corpus,
caption shards) are fingerprinted by content into the reading task's cache key. tokenize, caption_data,
record_demos, preprocess_robotics and sim_eval fan out across `<section>_slices` pods (docs/fanout.md).
Cluster settings (GPUs, node selectors, tolerations, /dev/shm, S3 secret, retries) come from the
cluster profile.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Model

from components.record_demos.component import record_demos
from components.vla_finetune.component import vla_finetune
from components.vlm_pretrain.component import vlm_pretrain
from pipelines.stages import captions, evaluate_against_baselines, fanned_out, language_model, preprocessed, stage

PIPELINE_NAME = "vlaforge-full"
# pipeline parameter prefix -> preset section
STAGE_SECTIONS = {"tokenize": "tokenize", "llm": "llm", "captions": "captions", "vlm": "vlm", "demos": "demos",
                  "preprocess": "preprocess", "vla": "vla", "sim_eval": "sim_eval", "step_analysis": "step_analysis"}


@dsl.pipeline(name=PIPELINE_NAME, description="Text -> LLM -> VLM -> VLA -> simulation -> STEP comparison.")
def full_pipeline(
    preset: str = "tiny",
    tokenize_overrides: str = "",
    llm_overrides: str = "",
    captions_overrides: str = "",
    caption_source_uri: str = "",
    vlm_overrides: str = "",
    demos_overrides: str = "",
    preprocess_overrides: str = "",
    vla_overrides: str = "",
    sim_eval_overrides: str = "",
    step_analysis_overrides: str = "",
    baselines: str = "expert,random",
    model_name: str = "vlaforge_policy",
    captions_slices: int = 1,
    demos_slices: int = 1,
    sim_eval_slices: int = 1,
    tokenize_slices: int = 1,
    preprocess_slices: int = 1,
) -> NamedTuple("Outputs", llm=Model, vlm=Model, policy=Model, rollouts=Dataset, report=HTML):
    """Train a VLA policy end to end and compare it with baselines in closed-loop simulation.

    Args:
        preset: Preset name (tiny, metaworld4, 11m, 100m, 410m, 1b) or a YAML path.
        tokenize_overrides: `key=value` lines for the tokenize section (e.g. `corpus=s3://bucket/text/`).
        llm_overrides: `key=value` lines for the llm section (e.g. `train.max_steps=2000`).
        captions_overrides: `key=value` lines for the captions section (rendered scenes).
        caption_source_uri: Existing img2dataset shards (local or s3://) to use instead of rendering captions.
        vlm_overrides: `key=value` lines for the vlm section (e.g. `vit.n_layers=6`).
        demos_overrides: `key=value` lines for the demos section (tasks, episodes per task, cameras).
        preprocess_overrides: `key=value` lines for the preprocess section (windows, normalisation).
        vla_overrides: `key=value` lines for the vla section (expert size, execute steps, EMA).
        sim_eval_overrides: `key=value` lines for the sim_eval section (tasks, episodes `start:end`, workers).
        step_analysis_overrides: `key=value` lines for the step_analysis section, e.g. `guarantee=per-direction` (alpha per direction, as VLA Foundry), `crashed=refuse`.
        baselines: Comma-separated baselines evaluated beside the policy: expert, random, zero.
        model_name: Name of the trained policy in the rollouts and the report.
        captions_slices: caption_data pods, each rendering a (task, scene range) slice; merged into one shard set.
        demos_slices: record_demos pods, each recording a (task, seed range) slice; merged into one dataset.
        sim_eval_slices: sim_eval pods, each evaluating a (task, episode range) slice; merged into one result set.
        tokenize_slices: tokenize pods, each tokenizing a group of the corpus's input files; packed into one shard set.
        preprocess_slices: preprocess_robotics pods, each encoding a group of episodes; merged into one dataset.
    """
    llm = language_model(preset, tokenize_overrides, llm_overrides, tokenize_slices)
    caps = captions(preset, captions_overrides, caption_source_uri, captions_slices)
    vlm = stage(vlm_pretrain(preset=preset, overrides=vlm_overrides, llm=llm.outputs["model"],
                             captions=caps.outputs["merged"]), "vlm_pretrain")
    demos = fanned_out("demos", "record_demos", demos_slices, preset, demos_overrides,
                       lambda slice_overrides: record_demos(preset=preset, overrides=slice_overrides), "demos")
    robo = preprocessed(preset, preprocess_overrides, demos.outputs["merged"], preprocess_slices)
    vla = stage(vla_finetune(preset=preset, overrides=vla_overrides, backbone=vlm.outputs["model"],
                             robotics=robo.outputs["merged"]), "vla_finetune")
    evals, analysis = evaluate_against_baselines(vla.outputs["policy"], preset, sim_eval_overrides, baselines,
                                                 model_name, step_analysis_overrides, sim_eval_slices)
    outputs = NamedTuple("Outputs", llm=Model, vlm=Model, policy=Model, rollouts=Dataset, report=HTML)
    return outputs(llm=llm.outputs["model"], vlm=vlm.outputs["model"], policy=vla.outputs["policy"],
                   rollouts=evals.outputs["merged"], report=analysis.outputs["report"])
