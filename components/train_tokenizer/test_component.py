"""train_tokenizer: its interface, and a kfp.local run listing a corpus's files beside the trained tokenizer."""

import json
from pathlib import Path

import pytest
from kfp import local

from components.testing import assert_interface
from components.train_tokenizer.component import train_tokenizer
from vlaforge.data.corpus import robot_sentences
from vlaforge.data.tokenize import load_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_interface(tmp_path):
    assert_interface(train_tokenizer, {"preset": "String", "overrides": "String", "input_fingerprint": "String"},
                     {"tokenizer": "system.Model@0.0.1"}, "train", tmp_path)


def test_local_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("\n".join(robot_sentences(200, seed=1)))
    (corpus / "b.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in robot_sentences(5, seed=2)))
    (corpus / "notes.md").write_text("not a corpus file")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = train_tokenizer(preset="tiny", overrides=f"corpus={corpus}\nvocab_size=280\nrobot_fraction=0")
    out = Path(task.outputs["tokenizer"].path)
    listing = json.loads((out / "corpus.json").read_text())
    assert listing["files"] == [str(corpus / "a.txt"), str(corpus / "b.jsonl")]
    assert listing["file_documents"] == [1, 5] and listing["documents"] == 6
    assert task.outputs["tokenizer"].metadata == {"files": 2, "documents": 6}
    tok = load_tokenizer(str(out / "tokenizer"))
    assert len(tok) <= 280 and tok.decode(tok("push the red puck")["input_ids"]) == "push the red puck"
