"""KFP component: closed-loop evaluation of a trained policy in the embedded simulator (or an external one)."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def sim_eval(policy: Input[Model], preset: str, overrides: str, results: Output[Dataset],
             metrics: Output[Metrics], videos: Output[HTML], model_name: str = "vlaforge_policy",
             episodes: str = "", input_fingerprint: str = ""):
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
        input_fingerprint: Content fingerprint of the policy bundle when it is imported by URI (fingerprint_inputs): not read here, it makes the
            task's cache key change when the data at the same URI does.
        results: <model_name>/<Task>/rollouts/<timestamp>/results.json (+ videos/) per task.
        metrics: Success rate overall and per task; finished and crashed episode counts.
        videos: The recorded episode videos (the first `videos_per_task` of each task).
    """
    import time

    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.sim_eval import flat_metrics, run

    started = time.perf_counter()
    report = run(policy.path, preset, overrides, results.path, model_name, episodes, videos.path)
    results.metadata.update({"kind": "rollouts", "models": model_name,
                             "wall_seconds": round(time.perf_counter() - started, 2)})
    write_metrics(metrics, flat_metrics(report))
