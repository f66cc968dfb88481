"""KFP components: closed-loop evaluation in the embedded simulator (trained policy and baselines)."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def sim_eval(policy: Input[Model], preset: str, overrides: str, results: Output[Dataset],
             metrics: Output[Metrics], videos: Output[HTML], model_name: str = "vlaforge_policy",
             episodes: str = ""):
    """Run the policy in closed loop on every configured task and episode index (each index has its
    own seeded scene, the same for every policy) and record success per episode.

    Args:
        policy: The policy bundle to evaluate (the vla_finetune output).
        preset: Preset name or YAML path; its `sim_eval` section is used (tasks, cameras, workers...).
        overrides: `key=value` lines overriding the `sim_eval` section, e.g. `workers=4`; with
            `simulator=external` and `external_results_uri=...` the policy is served to an external
            simulator (LBM Eval) instead, and its rollouts are collected (see the README).
        model_name: The model's folder name in the results (what the analysis calls the policy).
        episodes: Episode indices `start:end` (end exclusive); empty: the section's `episodes`.
        results: <model_name>/<Task>/rollouts/<timestamp>/results.json (+ videos/) per task.
        metrics: Success rate overall and per task; finished and crashed episode counts.
        videos: The recorded episode videos (the first `videos_per_task` of each task).
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.sim_eval import flat_metrics, run

    report = run(policy.path, preset, overrides, results.path, model_name, episodes, videos.path)
    results.metadata.update({"kind": "rollouts", "models": model_name})
    write_metrics(metrics, flat_metrics(report))


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def sim_eval_baselines(preset: str, overrides: str, results: Output[Dataset], metrics: Output[Metrics],
                       baselines: str = "expert,random", episodes: str = ""):
    """Evaluate policies that need no training with the same loop: the scripted expert (upper bound),
    random and zero actions (lower bounds). Independent of the trained policy, so it stays cached.

    Args:
        preset: Preset name or YAML path; its `sim_eval` section is used.
        overrides: `key=value` lines overriding the `sim_eval` section.
        baselines: Comma-separated baseline names: expert, random, zero.
        episodes: Episode indices `start:end` (end exclusive); empty: the section's `episodes`.
        results: One model folder per baseline, in the rollout layout.
        metrics: `<baseline>/<metric>` success rates and counts.
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.sim_eval import flat_metrics, run_baselines

    reports = run_baselines(baselines, preset, overrides, results.path, episodes)
    results.metadata.update({"kind": "rollouts", "models": ",".join(reports)})
    write_metrics(metrics, {f"{name}/{key}": value for name, rep in reports.items()
                            for key, value in flat_metrics(rep).items()})
