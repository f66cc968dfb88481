"""KFP component: a Hugging Face VLM as the pipeline's VLM, optionally fine-tuned on image captions."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def hf_vlm(preset: str, overrides: str, model: Output[Model], metrics: Output[Metrics],
           captions: Input[Dataset] = None, input_fingerprint: str = ""):
    """Load an image-text-to-text model through transformers (Qwen3-VL, SmolVLM, ...), add the
    `<|action|>` token, fine-tune it on image captions when given, and write it as a VLM model folder
    that vla_finetune takes as its backbone (instead of tokenize -> llm_pretrain -> vlm_pretrain).

    Runs in-process, under torchrun when the stage's cluster profile gives it several accelerators, or as a
    Kubeflow Trainer TrainJob when it asks for several nodes (see vlaforge.kube.launch).

    Args:
        preset: Preset name or YAML path; its `hf_vlm` section is used.
        overrides: `key=value` lines overriding the `hf_vlm` section, e.g. `model=Qwen/Qwen3-VL-2B-Instruct`
            (a hub name, a local folder, an s3:// URI of save_pretrained files, or tiny:<family>),
            `torch_dtype=bfloat16`, `finetune=false` or `train.max_steps=500`.
        captions: Optional image-caption shards (e.g. the caption_data output) to fine-tune on.
        input_fingerprint: Content fingerprint of the `model` when it is a folder or URI (fingerprint_inputs): not read here, it makes the
            task's cache key change when the data at the same URI does.
        model: config.json (kind hf_vlm) + the Hugging Face files under hf/, metrics.jsonl, train_summary.json.
        metrics: Model type and size; after fine-tuning, caption losses (paired vs. mismatched images).
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.kube.launch import OUT, run_training, stage_cli_args
    from vlaforge.stages.hf_vlm import run

    given = captions is not None
    summary = run_training(stage_cli_args("hf-vlm", preset, overrides, captions=captions.uri if given else "",
                                          out=OUT),
                           model.path, model.uri,
                           local=lambda: run(preset, overrides, model.path, captions.path if given else ""))
    model.metadata.update({"kind": "hf_vlm", "framework": "transformers", "model_type": summary["model_type"],
                           "parameters": summary["parameters"]})
    write_metrics(metrics, {k: v for k, v in summary.items() if isinstance(v, (int, float))})
