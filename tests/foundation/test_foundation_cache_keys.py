"""Cache keys follow the data (issue #19): the full pipeline's tokenize -> llm_pretrain wiring under kfp.local
with caching. A corpus rewritten at the same path or the same s3:// URI re-runs tokenize and llm_pretrain;
an untouched corpus is served from the cache, nothing executed twice."""

import pytest
from foundation_util import LLM_OVERRIDES, TOKENIZE_OVERRIDES, make_documents, write_corpus
from kfp import dsl, local

from pipelines.stages import language_model

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
LLM = "\n".join(LLM_OVERRIDES + ["train.max_steps=2", "train.val_every=2", "train.ckpt_every=2"])


@dsl.pipeline(name="vlaforge-cache-keys-test")
def language_model_pipeline(tokenize_overrides: str, llm_overrides: str):
    language_model("tiny", tokenize_overrides, llm_overrides)


def _task_folders(root) -> set:
    """Every task folder of every run, those of a ParallelFor's iterations (``for-loop-1-iteration-0/tokenize``) included."""
    if not root.exists():
        return set()
    return {p for p in [*root.glob("*/*"), *root.glob("*/for-loop-*/*")] if p.is_dir() and "for-loop-" not in p.name}


def _run(corpus_uri: str, root) -> set[str]:
    """Run the pipeline; returns the names of the tasks that executed (a cache hit executes nothing)."""
    before = _task_folders(root)
    language_model_pipeline(tokenize_overrides="\n".join(TOKENIZE_OVERRIDES + [f"corpus={corpus_uri}"]),
                            llm_overrides=LLM)
    return {p.name for p in _task_folders(root) - before}


def _cached_runs(tmp_path, corpus_uri: str, rewrite) -> None:
    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), enable_caching=True,
               cache_root=str(tmp_path / "cache"))
    assert {"train-tokenizer", "tokenize", "llm-pretrain", "fingerprint-inputs"} <= _run(corpus_uri, root)
    assert _run(corpus_uri, root) == {"fingerprint-inputs"}  # untouched: cache hits, nothing else executes
    rewrite()
    # same URI, new content: the tokenizer, the tokenize slices (whose keys hold the fingerprint too), the
    # merge and llm_pretrain re-run
    assert {"train-tokenizer", "tokenize", "merge-slices", "llm-pretrain"} <= _run(corpus_uri, root)


def test_corpus_rewritten_at_the_same_path_reruns_tokenize_and_llm(tmp_path, local_kfp):
    corpus = write_corpus(tmp_path / "corpus", make_documents(40, seed=1))
    _cached_runs(tmp_path, str(corpus), lambda: write_corpus(corpus, make_documents(40, seed=2)))


def test_corpus_rewritten_at_the_same_s3_uri_reruns_tokenize_and_llm(s3_server, tmp_path, local_kfp):
    _, root = s3_server
    corpus = write_corpus(root / "bucket" / "corpus", make_documents(40, seed=1))
    _cached_runs(tmp_path, "s3://bucket/corpus/", lambda: write_corpus(corpus, make_documents(40, seed=2)))
