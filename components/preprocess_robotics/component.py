"""KFP component: encode a group of raw robot episodes into training samples (one fan-out slice; merge_slices
writes the shards, stats.json and preprocessing_config.yaml)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def preprocess_robotics(demos: Input[Dataset], preset: str, overrides: str, robotics: Output[Dataset],
                        extra_episode_uris: str = ""):
    """Cut the episodes of one group (the `part` override, `k/n`, set by plan_slices) into one training
    sample per timestep (camera frames, past/future proprio and action windows with masks, instruction),
    with partial normalisation statistics of the training episodes; the train/val split is drawn over all
    episodes. merge_slices shuffles every part's samples into train/val shards and merges the statistics.

    Args:
        demos: Raw episodes (episodes.jsonl + episodes/*.npz), e.g. the record_demos output.
        preset: Preset name or YAML path; its `preprocess` section is used.
        overrides: `key=value` lines overriding the `preprocess` section, e.g. `future_steps=16`, plus the
            slice's `part="k/n"`.
        extra_episode_uris: More raw episode datasets (local paths or s3:// URIs, e.g. an imported
            LeRobot dataset), separated by newlines, commas or spaces.
        robotics: The encoded part: sample files, records.npy, partial_stats.npz, part.json.
    """
    import time

    from vlaforge.stages.preprocess_robotics import run_part, split_uris

    started = time.perf_counter()
    part = run_part(preset, overrides, [demos.path, *split_uris(extra_episode_uris)], robotics.path)
    robotics.metadata.update({"episodes": part["episodes"], "samples": part["samples"],
                              "wall_seconds": round(time.perf_counter() - started, 2)})
