"""KFP component: the tokenizer of a fanned-out tokenize, trained once on the whole corpus."""

from kfp import dsl
from kfp.dsl import Model, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def train_tokenizer(preset: str, overrides: str, tokenizer: Output[Model], input_fingerprint: str = ""):
    """Train a byte-level BPE tokenizer on the whole corpus (or load `tokenizer_path`) and list the corpus's
    input files, which the tokenize slices then split among them.

    Args:
        preset: Preset name or YAML path; its `tokenize` section is used.
        overrides: `key=value` lines overriding the `tokenize` section, e.g. `corpus=s3://bucket/text/`.
        input_fingerprint: Content fingerprint of the corpus (fingerprint_inputs): not read here, it makes the
            task's cache key change when the data at the same URI does.
        tokenizer: tokenizer/ (Hugging Face tokenizer files) and corpus.json (input files, documents per file).
    """
    from vlaforge.stages.train_tokenizer import run

    corpus = run(preset, overrides, tokenizer.path)
    tokenizer.metadata.update({"files": len(corpus["files"]), "documents": corpus["documents"]})
