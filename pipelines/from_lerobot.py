"""A pipeline that starts from a team's own robot data: a LeRobot dataset (v2.x or v3.0) by URI."""

from kfp import dsl
from kfp.dsl import Model

from components.lerobot_import.component import lerobot_import
from components.vla_finetune.component import vla_finetune
from pipelines.stages import fingerprinted, imported, preprocessed, stage


@dsl.pipeline(name="vlaforge-vla-from-lerobot",
              description="Import a LeRobot dataset, preprocess it and fine-tune a VLA policy on an existing VLM.")
def vla_from_lerobot_pipeline(dataset_uri: str, backbone_uri: str, preset: str = "tiny",
                              lerobot_import_overrides: str = "", preprocess_overrides: str = "",
                              vla_overrides: str = "", preprocess_slices: int = 1) -> Model:
    """LeRobot dataset -> raw episodes -> robotics shards -> VLA policy (lerobot_import, preprocess_robotics,
    vla_finetune). The dataset streams from its URI; nothing is downloaded before the import starts.

    Args:
        dataset_uri: LeRobot dataset folder or s3:// URI (meta/info.json inside), codebase v2.0, v2.1 or v3.0.
        backbone_uri: URI of a vlm_pretrain or hf_vlm output, e.g. s3://bucket/run/vlm-pretrain/model.
        preset: Preset name (tiny, metaworld4, 11m, 100m, 410m, 1b) or a YAML path.
        lerobot_import_overrides: `key=value` lines for the lerobot_import section (e.g. `state_slice="0:4"`,
            `cameras={observation.images.top: corner}`).
        preprocess_overrides: `key=value` lines for the preprocess section (e.g. `future_steps=16`).
        vla_overrides: `key=value` lines for the vla section (e.g. `freeze_backbone=true`).
        preprocess_slices: preprocess_robotics pods, each encoding a group of episodes; merged into one dataset.
    """
    dataset = fingerprinted(preset, "lerobot_import", lerobot_import_overrides, uris=dataset_uri)
    episodes = stage(lerobot_import(dataset_uri=dataset_uri, preset=preset, overrides=lerobot_import_overrides,
                                    input_fingerprint=dataset.output), "lerobot_import")
    robo = preprocessed(preset, preprocess_overrides, episodes.outputs["episodes"], preprocess_slices)
    backbone = imported(backbone_uri, Model, "backbone")
    vla = stage(vla_finetune(preset=preset, overrides=vla_overrides, backbone=backbone.output,
                             robotics=robo.outputs["merged"]), "vla_finetune")
    return vla.outputs["policy"]
