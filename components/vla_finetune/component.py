"""KFP component: fine-tune a VLA (VLM backbone + flow-matching action expert) on robot data."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def vla_finetune(preset: str, overrides: str, backbone: Input[Model], robotics: Input[Dataset],
                 policy: Output[Model], metrics: Output[Metrics]):
    """Fine-tune a VLA policy: the backbone reads camera images + instruction, an appended action token's
    hidden states condition a flow-matching action expert over proprioception and action chunks.

    Runs in-process, under torchrun when the stage's cluster profile gives it several accelerators, or as a
    Kubeflow Trainer TrainJob when it asks for several nodes (see vlaforge.kube.launch).

    Args:
        preset: Preset name or YAML path; its `vla` section is used.
        overrides: `key=value` lines overriding the `vla` section, e.g. `freeze_backbone=true`, `expert.flow_steps=10`.
        backbone: A vlm_pretrain output or a Hugging Face VLM artifact (hf_vlm output).
        robotics: Preprocessed robotics shards with stats.json and preprocessing_config.yaml.
        policy: The self-contained policy bundle: weights, config, normaliser, preprocessing config, tokenizer.
        metrics: Final flow-matching loss, validation loss, samples/s.
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.kube.launch import OUT, run_training, stage_cli_args
    from vlaforge.stages.vla_finetune import run

    summary = run_training(stage_cli_args("vla-finetune", preset, overrides, backbone=backbone.uri,
                                          robotics=robotics.uri, out=OUT),
                           policy.path, policy.uri,
                           local=lambda: run(preset, overrides, backbone.path, robotics.path, policy.path))
    policy.metadata.update({"kind": "vla", "framework": "pytorch"})
    write_metrics(metrics, {k: summary[k] for k in ("final_loss", "final_val_loss", "samples_per_s", "steps")})
