"""KFP component: tokenize a text corpus into WebDataset shards."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def tokenize(preset: str, overrides: str, dataset: Output[Dataset], metrics: Output[Metrics],
             input_fingerprint: str = ""):
    """Train a byte-level BPE tokenizer (or load one) and write tokenized shards + manifest.jsonl.

    Args:
        preset: Preset name (tiny, 11m, 100m, 410m, 1b, metaworld4) or a YAML path; its `tokenize` section is used.
        overrides: `key=value` lines (or `;`-separated) overriding the `tokenize` section, e.g. `corpus=s3://bucket/text/`.
        input_fingerprint: Content fingerprint of the corpus (fingerprint_inputs): not read here, it makes the
            task's cache key change when the data at the same URI does.
        dataset: Tokenized shards (train/, val/), tokenizer/ and tokenize_stats.json.
        metrics: Corpus size, token counts and tokens/s.
    """
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.tokenize import run

    stats = run(preset, overrides, dataset.path)
    dataset.metadata.update({"vocab_size": stats["vocab_size"], "seq_len": stats["seq_len"]})
    write_metrics(metrics, stats)
