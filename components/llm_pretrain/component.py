"""KFP component: pretrain the from-scratch LLM."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def llm_pretrain(preset: str, overrides: str, dataset: Input[Dataset], model: Output[Model],
                 metrics: Output[Metrics]):
    """Pretrain a decoder-only LLM (RoPE, SwiGLU, RMSNorm) on tokenized shards.

    Resumes from the newest checkpoint in `train.checkpoint_dir` (default: inside the output) after a
    restart; SIGTERM writes a final checkpoint first.
    Runs in-process, under torchrun when the stage's cluster profile gives it several accelerators, or as a
    Kubeflow Trainer TrainJob when it asks for several nodes (see vlaforge.kube.launch).

    Args:
        preset: Preset name (tiny, 11m, 100m, 410m, 1b, metaworld4) or a YAML path; its `llm` section is used.
        overrides: `key=value` lines overriding the `llm` section, e.g. `model.n_layers=4` or `train.lr=1e-3`.
        dataset: Output of the tokenize stage.
        model: Weights (safetensors), config.json, tokenizer/, metrics.jsonl, checkpoints/.
        metrics: Final loss, validation loss and perplexity, tokens/s.
    """
    import math

    from vlaforge.kfp_io import write_metrics
    from vlaforge.kube.launch import OUT, run_training, stage_cli_args
    from vlaforge.stages.llm_pretrain import run

    summary = run_training(stage_cli_args("llm-pretrain", preset, overrides, data=dataset.uri, out=OUT),
                           model.path, model.uri, local=lambda: run(preset, overrides, dataset.path, model.path))
    model.metadata.update({"kind": "llm", "framework": "pytorch", "parameters": summary["parameters"]})
    write_metrics(metrics, {"final_loss": summary["final_loss"], "final_val_loss": summary["final_val_loss"],
                            "val_perplexity": math.exp(min(summary["final_val_loss"], 50.0)),
                            "tokens_per_s": summary["tokens_per_s"], "steps": summary["steps"]})
