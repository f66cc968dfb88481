"""KFP component: scripted-expert demonstrations recorded in the embedded simulator."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def record_demos(preset: str, overrides: str, demos: Output[Dataset], report: Output[Metrics]):
    """Record demonstrations with Meta-World's scripted experts (with action noise, so the data covers
    recoveries): camera frames, proprioception, actions and the task's instruction per episode.

    Args:
        preset: Preset name or YAML path; its `demos` section is used.
        overrides: `key=value` lines overriding the `demos` section, e.g. `episodes_per_task=50`
            or `tasks=[reach-v3, push-v3]`.
        demos: Raw episodes: episodes.jsonl, episodes/<episode_id>.npz, recording_report.json.
        report: The experts' success rate overall and per task, episodes attempted and kept.
    """
    import time

    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.record_demos import report_metrics, run

    started = time.perf_counter()
    summary = run(preset, overrides, demos.path)
    demos.metadata.update({"kind": "raw_episodes", "episodes": summary["kept"], "tasks": ",".join(summary["tasks"]),
                           "wall_seconds": round(time.perf_counter() - started, 2)})
    write_metrics(report, report_metrics(summary))
