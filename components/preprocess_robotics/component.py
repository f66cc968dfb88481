"""KFP component: raw robot episodes -> robotics training shards, stats.json, preprocessing_config.yaml."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def preprocess_robotics(demos: Input[Dataset], preset: str, overrides: str, robotics: Output[Dataset],
                        metrics: Output[Metrics], extra_episode_uris: str = ""):
    """Cut demonstration episodes into one training sample per timestep (camera frames, past/future
    proprio and action windows with masks, instruction), shuffle them into train/val shards split by
    episode, and compute normalisation statistics.

    Args:
        demos: Raw episodes (episodes.jsonl + episodes/*.npz), e.g. the record_demos output.
        preset: Preset name or YAML path; its `preprocess` section is used.
        overrides: `key=value` lines overriding the `preprocess` section, e.g. `future_steps=16`.
        extra_episode_uris: More raw episode datasets (local paths or s3:// URIs, e.g. an imported
            LeRobot dataset), separated by newlines, commas or spaces.
        robotics: train/ and val/ shards with manifest.jsonl, stats.json, preprocessing_config.yaml, splits.json.
        metrics: Episode and sample counts per split, preprocessing throughput.
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.preprocess_robotics import run, split_uris

    summary = run(preset, overrides, [demos.path, *split_uris(extra_episode_uris)], robotics.path)
    robotics.metadata.update({"kind": "robotics", "train_samples": summary["train_samples"],
                              "val_samples": summary.get("val_samples", 0)})
    write_metrics(metrics, summary)
