"""Pipelines that start midway, from artifacts an earlier run left in object storage (dsl.importer).

Re-run one stage on last week's outputs: give the artifact's URI (``s3://...`` on a cluster, a path
locally). An imported artifact keeps downstream caching valid (``reimport=False``).
"""

from kfp import dsl
from kfp.dsl import Dataset

from components.llm_pretrain.component import llm_pretrain
from components.preprocess_robotics.component import preprocess_robotics
from vlaforge.kube.profile import apply_profile


def imported(uri, artifact_class, what: str):
    """An importer task for ``uri`` shown as ``import-<what>``."""
    return dsl.importer(artifact_uri=uri, artifact_class=artifact_class,
                        reimport=False).set_display_name(f"import-{what}")


@dsl.pipeline(name="vlaforge-llm-from-dataset",
              description="Pretrain the LLM on tokenized shards from an earlier run.")
def llm_from_dataset_pipeline(dataset_uri: str, preset: str = "tiny", llm_overrides: str = ""):
    """LLM pretraining on an existing tokenize output.

    Args:
        dataset_uri: URI of a tokenize stage output (shards, manifest.jsonl, tokenizer/), e.g. s3://bucket/run/tokenize/dataset.
        preset: Preset name (tiny, 11m, 100m, 410m, 1b, metaworld4) or YAML path.
        llm_overrides: `key=value` lines for the llm section (e.g. `train.max_steps=2000`).
    """
    dataset = imported(dataset_uri, Dataset, "dataset")
    apply_profile(llm_pretrain(preset=preset, overrides=llm_overrides, dataset=dataset.output)
                  .set_display_name("llm-pretrain"), "llm_pretrain")


@dsl.pipeline(name="vlaforge-robotics-from-demos",
              description="Preprocess recorded robot demonstrations from an earlier run into training shards.")
def robotics_from_demos_pipeline(demos_uri: str, preset: str = "tiny", preprocess_overrides: str = "",
                                 extra_episode_uris: str = ""):
    """Robotics preprocessing on existing raw episodes.

    Args:
        demos_uri: URI of raw episodes (episodes.jsonl + episodes/*.npz), e.g. a record_demos output.
        preset: Preset name (tiny, 11m, 100m, 410m, 1b, metaworld4) or YAML path.
        preprocess_overrides: `key=value` lines for the preprocess section (e.g. `future_steps=16`).
        extra_episode_uris: More raw episode datasets (s3:// URIs), separated by newlines, commas or spaces.
    """
    demos = imported(demos_uri, Dataset, "demos")
    apply_profile(preprocess_robotics(demos=demos.output, preset=preset, overrides=preprocess_overrides,
                                      extra_episode_uris=extra_episode_uris)
                  .set_display_name("preprocess-robotics"), "preprocess_robotics")
