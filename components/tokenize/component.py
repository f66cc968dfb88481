"""KFP component: tokenize a group of a corpus's files (one fan-out slice; merge_slices packs the shards)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def tokenize(preset: str, overrides: str, tokenizer: Input[Model], dataset: Output[Dataset],
             input_fingerprint: str = ""):
    """Tokenize the documents of one group of the corpus's input files (the `part` override, `k/n`, set by
    plan_slices) with the tokenizer train_tokenizer wrote; merge_slices packs every part into the shards.

    Args:
        preset: Preset name (tiny, 11m, 100m, 410m, 1b, metaworld4) or a YAML path; its `tokenize` section is used.
        overrides: `key=value` lines (or `;`-separated) overriding the `tokenize` section, e.g. `corpus=s3://bucket/text/`,
            plus the slice's `part="k/n"`.
        tokenizer: The train_tokenizer output: tokenizer/ and corpus.json.
        input_fingerprint: Content fingerprint of the corpus (fingerprint_inputs): not read here, it makes the
            task's cache key change when the data at the same URI does.
        dataset: The part's token ids per document (train.npz, val.npz), part.json and a copy of tokenizer/.
    """
    import time

    from vlaforge.stages.tokenize import run_part

    started = time.perf_counter()
    part = run_part(preset, overrides, tokenizer.path, dataset.path)
    dataset.metadata.update({"kind": "tokenized_part", "files": part["files"], "tokens": part["tokens"],
                             "wall_seconds": round(time.perf_counter() - started, 2)})
