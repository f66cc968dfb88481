"""KFP component: a LeRobot dataset (v2.0, v2.1, v3.0; by URI) -> raw robot episodes."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def lerobot_import(dataset_uri: str, preset: str, overrides: str, episodes: Output[Dataset],
                   metrics: Output[Metrics], input_fingerprint: str = ""):
    """Import a LeRobot dataset as raw episodes, read while streaming (no download before work starts):
    each episode's task text becomes its instruction; state, action and camera features are mapped by
    the preset's `lerobot_import` section.

    Args:
        dataset_uri: LeRobot dataset folder (local path or s3:// URI holding meta/info.json), codebase
            v2.0, v2.1 or v3.0.
        preset: Preset name or YAML path; its `lerobot_import` section is used.
        overrides: `key=value` lines overriding the `lerobot_import` section, e.g. `state_slice="0:4"`
            (quoted: YAML reads 0:4 as a number) or `cameras={observation.images.top: corner}`.
        input_fingerprint: Content fingerprint of `dataset_uri` (fingerprint_inputs): not read here, it makes the
            task's cache key change when the data at the same URI does.
        episodes: Raw episodes (episodes.jsonl + episodes/*.npz), the input preprocess_robotics reads.
        metrics: Episodes, frames and import throughput (frames/s).
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.lerobot_import import run

    summary = run(preset, overrides, dataset_uri, episodes.path)
    episodes.metadata.update({"kind": "raw_episodes", "source": dataset_uri, "episodes": summary["episodes"],
                              "codebase_version": summary["codebase_version"], "cameras": summary["cameras"]})
    write_metrics(metrics, {k: v for k, v in summary.items() if isinstance(v, (int, float))})
