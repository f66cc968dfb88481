"""The text half of the DAG (tokenize -> llm_pretrain) through kfp.local, as ``vlaforge run`` runs it.

The stages are wired exactly as in ``pipelines/full.py`` (``pipelines.stages.language_model``: the corpus
fingerprinted, train_tokenizer, tokenize fanned out and merged, llm_pretrain) and receive the per-section
override strings of :func:`vlaforge.run.resolve`; running the whole full pipeline (VLM, VLA, simulation) is
the end-to-end test's job.
"""


import json
import logging
from pathlib import Path

import pytest
from foundation_util import LLM_OVERRIDES, TOKENIZE_OVERRIDES, snapshot
from kfp import dsl, local
from kfp.dsl import Model

from pipelines.stages import language_model
from vlaforge.data.shards import read_manifest
from vlaforge.data.text_shards import load_windows
from vlaforge.data.tokenize import EOS_TOKEN, load_tokenizer
from vlaforge.run import resolve

# Locally the components run in this Python environment instead of their image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


@dsl.pipeline(name="vlaforge-text-test")
def text_pipeline(preset: str, tokenize_overrides: str, llm_overrides: str) -> Model:
    return language_model(preset, tokenize_overrides, llm_overrides).outputs["model"]


def run_text(root: Path, overrides: list[str]):
    """Resolve the preset and run the text pipeline with caching, the way ``run_embedded`` does."""
    sections = resolve("tiny", overrides)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "pipeline_root"),
               enable_caching=True, cache_root=str(root / "kfp_cache"))
    return text_pipeline(preset="tiny", tokenize_overrides=sections["tokenize"], llm_overrides=sections["llm"])


def run_folders(root: Path) -> list[Path]:
    return sorted((root / "pipeline_root").iterdir())


def test_pipeline_trains_and_reuses_the_cached_tokenize_output(tmp_path, corpus, documents, caplog):
    root = tmp_path / "runs"
    overrides = ([f"tokenize.{o}" for o in TOKENIZE_OVERRIDES + [f"corpus={corpus}"]]
                 + [f"llm.{o}" for o in LLM_OVERRIDES + ["train.max_steps=60", "train.val_every=30",
                                                        "train.lr=0.01"]])
    first = run_text(root, overrides)
    (run1,) = run_folders(root)
    dataset = run1 / "merge-slices" / "merged"  # tokenize's merged shards
    summary = json.loads(Path(first.output.path, "train_summary.json").read_text())
    assert Path(first.output.path).parent.parent == run1
    assert summary["steps"] == 60
    assert summary["final_val_loss"] < summary["initial_val_loss"] - 1.0, summary

    # The shards decode back to the corpus: every complete EOS-delimited piece is one of the documents.
    tok = load_tokenizer(str(dataset / "tokenizer"))
    ids = [i for shard in read_manifest(str(dataset / "train")) for w in load_windows(shard) for i in w]
    pieces = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False).split(EOS_TOKEN)[:-1]
    assert len(pieces) >= 0.8 * len(documents) and set(pieces) <= set(documents)

    # Only an LLM parameter changes: tokenize is served from the cache, only llm-pretrain (and the uncached
    # corpus fingerprint) runs again.
    data_before = snapshot(dataset)
    with caplog.at_level(logging.INFO):
        second = run_text(root, overrides + ["llm.train.max_steps=30"])
    run2 = next(r for r in run_folders(root) if r != run1)
    assert sorted(p.name for p in run2.iterdir()) == ["fingerprint-inputs", "llm-pretrain"]
    assert (run2 / "llm-pretrain" / "executor_output.json").is_file()
    for task in ("train-tokenizer", "plan-slices", "tokenize", "merge-slices"):
        assert f"Task {task} cache hit" in caplog.text
    assert "Task llm-pretrain cache hit" not in caplog.text
    second_config = json.loads(Path(second.output.path, "config.json").read_text())
    assert second_config["data"] == str(dataset) and second_config["train"]["max_steps"] == 30
    assert json.loads(Path(second.output.path, "train_summary.json").read_text())["steps"] == 30
    assert snapshot(dataset) == data_before
    # train_tokenizer, plan, one tokenize slice, merge, llm (60 steps), llm (30 steps)
    assert len(list((root / "kfp_cache").glob("*.json"))) == 6


def test_resolve_rejects_an_unknown_key_before_anything_runs(tmp_path):
    with pytest.raises(Exception, match=r"unknown key 'llm\.train\.max_step'"):
        run_text(tmp_path, ["llm.train.max_step=3"])
    assert not (tmp_path / "pipeline_root").exists()
