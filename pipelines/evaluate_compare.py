"""Evaluate-and-compare: existing policy bundles -> sim_eval for each (ParallelFor) -> one STEP analysis.

The question a person brings: "which of these checkpoints is better, and is the difference real?"
Each policy is imported by URI, evaluated on the same seeded scenes, and all result sets go into one
comparison (Clopper-Pearson intervals, pairwise STEP tests, compact letters).
"""

from kfp import dsl
from kfp.dsl import HTML, Model

from components.sim_eval.component import sim_eval
from components.step_analysis.component import step_analysis_collected
from pipelines.stages import fingerprinted, imported, stage

EXAMPLE_POLICIES = [{"model": "policy_a", "uri": "s3://vlaforge/runs/a/vla-finetune/policy"},
                    {"model": "policy_b", "uri": "s3://vlaforge/runs/b/vla-finetune/policy"}]


@dsl.pipeline(name="vlaforge-eval-compare",
              description="Evaluate existing policies in simulation and compare them statistically (STEP).")
def evaluate_compare_pipeline(policies: list = EXAMPLE_POLICIES, preset: str = "tiny",
                              sim_eval_overrides: str = "", episodes: str = "", extra_result_uris: str = "",
                              step_analysis_overrides: str = "") -> HTML:
    """Closed-loop evaluation of several policy bundles on the same scenes, then one comparison.

    Args:
        policies: JSON list of {"model": ..., "uri": ...}: the policy's name in the results and report and the URI of a policy bundle (vla_finetune output, s3:// on a cluster).
        preset: Preset name (tiny, 11m, 100m, 410m, 1b, metaworld4) or YAML path; its `sim_eval` and `step_analysis` sections are used.
        sim_eval_overrides: `key=value` lines for the sim_eval section, e.g. `tasks=[reach-v3, push-v3]` or `workers=8`.
        episodes: Episode indices `start:end` (end exclusive) run for every policy; empty: the preset's.
        extra_result_uris: Comma-separated URIs of earlier result sets (e.g. baselines) to compare as well.
        step_analysis_overrides: `key=value` lines for the step_analysis section, e.g. `guarantee=per-direction` (alpha per direction, as VLA Foundry), `crashed=refuse`.
    """
    with dsl.ParallelFor(policies, parallelism=4) as policy:
        bundle = imported(policy.uri, Model, "policy")
        content = fingerprinted(preset, "sim_eval", sim_eval_overrides, uris=policy.uri)
        evaluated = stage(sim_eval(policy=bundle.output, preset=preset, overrides=sim_eval_overrides,
                                   model_name=policy.model, episodes=episodes, input_fingerprint=content.output),
                          "sim_eval")
    analysis = stage(step_analysis_collected(results=dsl.Collected(evaluated.outputs["results"]),
                                             extra_result_uris=extra_result_uris, preset=preset,
                                             overrides=step_analysis_overrides),
                     "step_analysis_collected")
    return analysis.outputs["report"]
