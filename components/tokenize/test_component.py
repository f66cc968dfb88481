"""The tokenize component: its interface, and kfp.local fan-outs (train_tokenizer -> plan_slices -> tokenize per
group of corpus files -> merge_slices) whose shards and stats with 2 slices equal a one-slice run's."""

import json
from pathlib import Path

import pytest
from kfp import dsl, local

from components.merge_slices.test_component import _merged
from components.testing import assert_interface
from components.tokenize.component import tokenize
from pipelines.stages import tokenized
from vlaforge.data.corpus import robot_sentences
from vlaforge.data.shards import read_manifest

# Locally the component runs in this Python environment instead of its image, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_interface(tmp_path):
    assert_interface(tokenize, {"preset": "String", "overrides": "String", "tokenizer": "system.Model@0.0.1",
                                "input_fingerprint": "String"}, {"dataset": "system.Dataset@0.0.1"}, "train", tmp_path)


@dsl.pipeline(name="tokenize-fanned-out")
def tokenize_corpus(overrides: str, slices: int):
    tokenized("tiny", overrides, slices)


def _corpus(folder: Path) -> Path:
    """Three text files (whole documents) and a JSON-lines file of 30 documents: 33 documents, 4 inputs."""
    folder.mkdir()
    for seed in (1, 2, 3):
        (folder / f"part{seed}.txt").write_text("\n".join(robot_sentences(150, seed=seed)), encoding="utf-8")
    (folder / "short.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in robot_sentences(30, seed=9)))
    return folder


@pytest.mark.parametrize("val_fraction", [0.1, 0.02])  # whole documents to val; the tail of every document
def test_two_slices_write_the_shards_of_one(tmp_path, val_fraction):
    corpus = _corpus(tmp_path / "corpus")
    overrides = f"corpus={corpus}\nvocab_size=280\nseq_len=16\nval_fraction={val_fraction}\nrobot_fraction=0.1"
    runs = {}
    for slices in (1, 2):
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / str(slices)))
        tokenize_corpus(overrides=overrides, slices=slices)
        runs[slices] = _merged(tmp_path / str(slices))
    (one, one_metrics), (two, two_metrics) = runs[1], runs[2]
    files = {n: {str(p.relative_to(m)): p.read_bytes() for p in sorted(m.rglob("*"))
                 if p.is_file() and p.name != "tokenize_stats.json"} for n, m in ((1, one), (2, two))}
    assert files[2] == files[1]
    assert {"tokenizer/tokenizer.json", "train/manifest.jsonl", "val/manifest.jsonl"} <= set(files[1])
    stats = {n: json.loads((m / "tokenize_stats.json").read_text()) for n, m in ((1, one), (2, two))}
    assert stats[1].pop("tokens_per_s") > 0 and stats[2].pop("tokens_per_s") > 0
    assert stats[2] == stats[1] and stats[1]["documents"] > 33  # the corpus's and the generated robot language
    for split in ("train", "val"):
        assert sum(s.num_samples for s in read_manifest(str(one / split))) == stats[1][f"{split}_samples"] > 0
    assert {k: v for k, v in two_metrics.items() if "slice" not in k and k != "tokens_per_s"} == \
           {k: v for k, v in one_metrics.items() if "slice" not in k and k != "tokens_per_s"}
    assert two_metrics["slices"] == 2 and one_metrics["slices"] == 1


def test_more_slices_than_files_names_the_parameter(tmp_path, capfd):
    (tmp_path / "book.txt").write_text("\n".join(robot_sentences(100, seed=1)))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    with pytest.raises(RuntimeError, match="FAILURE"):
        tokenize_corpus(overrides=f"corpus={tmp_path / 'book.txt'}\nvocab_size=280\nseq_len=16", slices=2)
    assert "tokenize_slices=2 asks for more slices than there are items to split (1: corpus files 0:1)" \
           in "".join(capfd.readouterr())
