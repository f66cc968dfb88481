"""KFP component: the baselines that need no training (scripted expert, random, zero actions), evaluated with
the same closed loop as a trained policy."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from vlaforge.kube.images import image


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
    from vlaforge.stages.sim_eval_baselines import flat_metrics, run

    reports = run(baselines, preset, overrides, results.path, episodes)
    results.metadata.update({"kind": "rollouts", "models": ",".join(reports)})
    write_metrics(metrics, {f"{name}/{key}": value for name, rep in reports.items()
                            for key, value in flat_metrics(rep).items()})
