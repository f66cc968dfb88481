"""Building blocks the pipeline variants share: a stage task with its cluster profile, an imported
artifact, a stage fanned out across pods (plan -> ParallelFor -> merge), content fingerprints for cache
keys, and the evaluate-and-compare tail (sim_eval + baselines -> step_analysis)."""

from kfp import dsl

from components.caption_data.component import caption_data
from components.fingerprint_inputs.component import fingerprint_inputs
from components.llm_pretrain.component import llm_pretrain
from components.merge_slices.component import merge_slices
from components.plan_slices.component import plan_slices
from components.preprocess_robotics.component import preprocess_robotics
from components.sim_eval.component import sim_eval
from components.sim_eval_baselines.component import sim_eval_baselines
from components.step_analysis.component import step_analysis
from components.tokenize.component import tokenize
from components.train_tokenizer.component import train_tokenizer
from vlaforge.kube.profile import apply_profile

# Slices of one stage running at once. KFP 2.17 compiles a ParallelFor's parallelism into the IR as an
# integer (iteratorPolicy.parallelismLimit), so it is fixed here, not a run parameter; the width is one.
MAX_PARALLEL_SLICES = 8


def stage(task, name: str):
    """``task`` shown as the stage name, with the stage's cluster settings."""
    return apply_profile(task.set_display_name(name.replace("_", "-")), name)


def imported(uri, artifact_class, what: str):
    """An importer task for ``uri`` shown as ``import-<what>``; ``reimport=False`` keeps downstream caching."""
    return dsl.importer(artifact_uri=uri, artifact_class=artifact_class,
                        reimport=False).set_display_name(f"import-{what}")


def fanned_out(section: str, name: str, width, preset, overrides, slice_task, output: str, source_uri=""):
    """Stage ``name`` run as ``width`` slices in parallel pods and merged into one artifact.

    ``plan_slices`` cuts the ``section``'s work into per-slice overrides; ``slice_task(overrides)`` makes
    the stage's task for one slice inside a ``dsl.ParallelFor``; ``merge_slices`` gathers the slices'
    ``output`` artifacts (``dsl.Collected``); a ``source_uri`` the stage imports makes one slice. Returns the
    merge task (outputs ``merged``, ``metrics``).
    """
    plan = apply_profile(plan_slices(section=section, preset=preset, overrides=overrides, width=width,
                                     source_uri=source_uri)
                         .set_display_name(f"plan-{name.replace('_', '-')}"), "plan_slices")
    with dsl.ParallelFor(plan.output, parallelism=MAX_PARALLEL_SLICES) as slice_overrides:
        part = stage(slice_task(slice_overrides), name)
    merge = merge_slices(section=section, preset=preset, overrides=overrides,
                         slices=dsl.Collected(part.outputs[output]))
    return apply_profile(merge.set_display_name(f"merge-{name.replace('_', '-')}"), "merge_slices")


def fingerprinted(preset, section: str, overrides, fields: str = "", uris=""):
    """An uncached task fingerprinting the inputs a ``section`` stage reads by URI; its output goes into
    that stage's cache key (see vlaforge.fingerprint)."""
    task = fingerprint_inputs(preset=preset, section=section, overrides=overrides, fields=fields, uris=uris)
    task = apply_profile(task.set_display_name(f"fingerprint-{section.replace('_', '-')}"), "fingerprint_inputs")
    return task.set_caching_options(enable_caching=False)


def tokenized(preset, tokenize_overrides, tokenize_slices=1):
    """The corpus (fingerprinted into the cache keys of the tasks reading it) tokenized: train_tokenizer, then
    tokenize in ``tokenize_slices`` groups of input files; returns the merge task (output ``merged``: the shards)."""
    corpus = fingerprinted(preset, "tokenize", tokenize_overrides, fields="corpus")
    tok = stage(train_tokenizer(preset=preset, overrides=tokenize_overrides, input_fingerprint=corpus.output),
                "train_tokenizer")
    return fanned_out("tokenize", "tokenize", tokenize_slices, preset, tokenize_overrides,
                      lambda slice_overrides: tokenize(preset=preset, overrides=slice_overrides,
                                                       tokenizer=tok.outputs["tokenizer"],
                                                       input_fingerprint=corpus.output), "dataset")


def language_model(preset, tokenize_overrides, llm_overrides, tokenize_slices=1):
    """tokenize (fanned out over ``tokenize_slices``) -> llm_pretrain; returns the llm_pretrain task."""
    shards = tokenized(preset, tokenize_overrides, tokenize_slices)
    return stage(llm_pretrain(preset=preset, overrides=llm_overrides, dataset=shards.outputs["merged"]),
                 "llm_pretrain")


def captions(preset, captions_overrides, caption_source_uri, captions_slices=1):
    """caption_data in ``captions_slices`` slices, rendering, or importing ``caption_source_uri`` (fingerprinted
    into its cache key); returns the merge task (output ``merged``: the caption shards)."""
    shards = fingerprinted(preset, "captions", captions_overrides, uris=caption_source_uri)
    return fanned_out("captions", "caption_data", captions_slices, preset, captions_overrides,
                      lambda slice_overrides: caption_data(preset=preset, overrides=slice_overrides,
                                                           source_uri=caption_source_uri,
                                                           input_fingerprint=shards.output),
                      "captions", caption_source_uri)


def preprocessed(preset, preprocess_overrides, demos, preprocess_slices=1, extra_episode_uris=""):
    """preprocess_robotics over ``demos`` (and ``extra_episode_uris``) in ``preprocess_slices`` groups of
    episodes; returns the merge task (output ``merged``: shards, stats.json, preprocessing_config.yaml)."""
    return fanned_out("preprocess", "preprocess_robotics", preprocess_slices, preset, preprocess_overrides,
                      lambda slice_overrides: preprocess_robotics(demos=demos, preset=preset, overrides=slice_overrides,
                                                                  extra_episode_uris=extra_episode_uris), "robotics")


def evaluate_against_baselines(policy, preset, sim_eval_overrides, baselines, model_name, step_analysis_overrides="",
                               sim_eval_slices=1):
    """Roll out ``policy`` (in ``sim_eval_slices`` parallel slices) and the baselines on the same scenes and
    compare them; returns the merged sim_eval task (output ``merged``: the rollouts) and the analysis task."""
    evals = fanned_out("sim_eval", "sim_eval", sim_eval_slices, preset, sim_eval_overrides,
                       lambda slice_overrides: sim_eval(policy=policy, preset=preset, overrides=slice_overrides,
                                                        model_name=model_name), "results")
    base = stage(sim_eval_baselines(preset=preset, overrides=sim_eval_overrides, baselines=baselines),
                 "sim_eval_baselines")
    analysis = stage(step_analysis(policy_results=evals.outputs["merged"], baseline_results=base.outputs["results"],
                                   preset=preset, overrides=step_analysis_overrides), "step_analysis")
    return evals, analysis
