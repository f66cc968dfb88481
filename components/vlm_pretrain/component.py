"""KFP component: pretrain the VLM (ViT + projector + the pretrained LLM) on image captions."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def vlm_pretrain(preset: str, overrides: str, llm: Input[Model], captions: Input[Dataset], model: Output[Model],
                 metrics: Output[Metrics]):
    """Train a ViT and pixel-shuffle projector into the LLM on captions (loss on caption tokens only).

    Resumes from the newest checkpoint after a restart; SIGTERM writes a final checkpoint first.
    Runs in-process, under torchrun when the stage's cluster profile gives it several accelerators, or as a
    Kubeflow Trainer TrainJob when it asks for several nodes (see vlaforge.kube.launch).

    Args:
        preset: Preset name or YAML path; its `vlm` section is used.
        overrides: `key=value` lines overriding the `vlm` section, e.g. `vit.n_layers=6` or `train.max_steps=5000`.
        llm: The llm_pretrain output (or an imported LLM artifact).
        captions: Image-caption shards in the img2dataset layout (caption_data output).
        model: VLM weights (safetensors), config.json, tokenizer/ (with <|image|>), metrics, checkpoints.
        metrics: Final caption loss, and caption loss with paired vs. mismatched images.
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.kube.launch import OUT, run_training, stage_cli_args
    from vlaforge.stages.vlm_pretrain import run

    summary = run_training(stage_cli_args("vlm-pretrain", preset, overrides, llm=llm.uri, captions=captions.uri,
                                          out=OUT),
                           model.path, model.uri,
                           local=lambda: run(preset, overrides, llm.path, captions.path, model.path))
    model.metadata.update({"kind": "vlm", "framework": "pytorch"})
    write_metrics(metrics, {k: summary[k] for k in ("final_loss", "final_val_loss", "val_loss_paired",
                                                    "val_loss_mismatched", "samples_per_s", "steps")})
