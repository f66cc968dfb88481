"""KFP components: statistical comparison of the trained policy with the baselines (the last stage)."""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("analysis"), install_kfp_package=False)
def step_analysis(policy_results: Input[Dataset], baseline_results: Input[Dataset], report: Output[HTML],
                  tables: Output[Markdown], metrics: Output[Metrics], details: Output[Dataset],
                  extra_result_uris: str = "", preset: str = "tiny", overrides: str = ""):
    """Compare policies from their rollouts: per-task and aggregate success rates with 90% Clopper-Pearson
    intervals, pairwise STEP (or Lai) sequential tests with Bonferroni correction, compact letters.

    Args:
        policy_results: Rollouts of the trained policy (sim_eval output): <model>/<Task>/rollouts/<ts>/results.json.
        baseline_results: Rollouts of the baselines (sim_eval_baselines output), same layout.
        extra_result_uris: Comma-separated URIs (local or s3://) of earlier result sets to compare as well.
        preset: Preset name or YAML path; its `step_analysis` section is used.
        overrides: `key=value` lines overriding the `step_analysis` section: `alpha=0.05` (family-wise level),
            `guarantee=two-sided` (equal policies separated with probability <= alpha) or
            `guarantee=per-direction` (alpha for each direction, as VLA Foundry reports), `crashed=failure`
            (crashed episodes count as failures) or `crashed=refuse` (an error naming them), `seed=0`.
        report: Self-contained HTML report (tables, plots, decisions) shown by the KFP UI.
        tables: The tables in Markdown.
        metrics: Headline numbers: per model balanced aggregate success % and interval, counts.
        details: Every output file: CSV and Markdown tables, PNG plots, report.html, metrics.json.
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.step_analysis import run

    numbers = run([policy_results.path, baseline_results.path], extra_result_uris, details.path, report.path,
                  tables.path, preset, overrides)
    write_metrics(metrics, numbers)


@dsl.component(base_image=image("analysis"), install_kfp_package=False)
def step_analysis_collected(results: Input[List[Dataset]], report: Output[HTML], tables: Output[Markdown],
                            metrics: Output[Metrics], details: Output[Dataset], extra_result_uris: str = "",
                            preset: str = "tiny", overrides: str = ""):
    """The same comparison for result sets gathered with dsl.Collected (a ParallelFor over policies).

    Args:
        results: Rollout result sets, each <model>/<Task>/rollouts/<ts>/results.json.
        extra_result_uris: Comma-separated URIs (local or s3://) of earlier result sets to compare as well.
        preset: Preset name or YAML path; its `step_analysis` section is used.
        overrides: `key=value` lines overriding the `step_analysis` section: `alpha`, `guarantee`
            (two-sided or per-direction), `crashed` (failure or refuse), `seed`; see step_analysis.
        report: Self-contained HTML report (tables, plots, decisions) shown by the KFP UI.
        tables: The tables in Markdown.
        metrics: Headline numbers: per model balanced aggregate success % and interval, counts.
        details: Every output file: CSV and Markdown tables, PNG plots, report.html, metrics.json.
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.step_analysis import run

    numbers = run([r.path for r in results], extra_result_uris, details.path, report.path, tables.path,
                  preset, overrides)
    write_metrics(metrics, numbers)
