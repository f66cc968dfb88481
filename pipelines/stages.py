"""Building blocks the pipeline variants share: a stage task with its cluster profile, an imported
artifact, and the evaluate-and-compare tail (sim_eval + baselines -> step_analysis)."""

from kfp import dsl

from components.sim_eval.component import sim_eval
from components.sim_eval_baselines.component import sim_eval_baselines
from components.step_analysis.component import step_analysis
from vlaforge.kube.profile import apply_profile


def stage(task, name: str):
    """``task`` shown as the stage name, with the stage's cluster settings."""
    return apply_profile(task.set_display_name(name.replace("_", "-")), name)


def imported(uri, artifact_class, what: str):
    """An importer task for ``uri`` shown as ``import-<what>``; ``reimport=False`` keeps downstream caching."""
    return dsl.importer(artifact_uri=uri, artifact_class=artifact_class,
                        reimport=False).set_display_name(f"import-{what}")


def evaluate_against_baselines(policy, preset, sim_eval_overrides, baselines, model_name, step_analysis_overrides=""):
    """Roll out ``policy`` and the baselines on the same scenes and compare them; returns the analysis task."""
    evals = stage(sim_eval(policy=policy, preset=preset, overrides=sim_eval_overrides, model_name=model_name),
                  "sim_eval")
    base = stage(sim_eval_baselines(preset=preset, overrides=sim_eval_overrides, baselines=baselines),
                 "sim_eval_baselines")
    return stage(step_analysis(policy_results=evals.outputs["results"], baseline_results=base.outputs["results"],
                               preset=preset, overrides=step_analysis_overrides), "step_analysis")
