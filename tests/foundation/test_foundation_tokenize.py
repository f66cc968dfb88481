"""The tokenize stage: shard layout, exact round trip of the text, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from foundation_util import TOKENIZE_OVERRIDES, snapshot

from vlaforge.data.shards import ShardError, read_manifest
from vlaforge.data.text_shards import TokenWindows, load_windows
from vlaforge.data.tokenize import EOS_TOKEN, load_tokenizer
from vlaforge.stages.tokenize import run as tokenize_run


def all_windows(split_uri: Path) -> list[list[int]]:
    return [w for shard in read_manifest(str(split_uri)) for w in load_windows(shard)]


def test_layout_and_stats(tokenized):
    stats = json.loads((tokenized / "tokenize_stats.json").read_text())
    tok = load_tokenizer(str(tokenized / "tokenizer"))
    assert stats["vocab_size"] == len(tok) <= 300
    assert stats["seq_len"] == 32
    for split in ("train", "val"):
        shards = read_manifest(str(tokenized / split))
        assert sum(s.num_samples for s in shards) == stats[f"{split}_samples"] > 0
        assert all(Path(s.uri).is_file() for s in shards)
        assert all(len(w) == 33 and max(w) < len(tok) for w in all_windows(tokenized / split))
    assert len(read_manifest(str(tokenized / "train"))) > 1  # samples_per_shard=100 splits the train split
    windows = stats["train_samples"] + stats["val_samples"]
    assert windows * 33 <= stats["tokens"] < (windows + 2) * 33  # only each split's partial last window is dropped


def test_windows_decode_back_to_the_documents(tokenized, documents):
    """Windows are consecutive slices of the documents joined by EOS: decoding them gives the text back."""
    tok = load_tokenizer(str(tokenized / "tokenizer"))
    recovered = []
    for split in ("train", "val"):
        ids = [i for w in all_windows(tokenized / split) for i in w]
        text = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        pieces = text.split(EOS_TOKEN)
        recovered += pieces[:-1]  # the last piece is cut by the end of the final full window
    assert len(recovered) >= len(documents) - 4
    assert len(set(recovered)) == len(recovered)
    assert set(recovered) <= set(documents)
    assert any("東京" in d for d in recovered) and any("\t" in d for d in recovered)


def test_each_document_round_trips(tokenized, documents):
    tok = load_tokenizer(str(tokenized / "tokenizer"))
    for doc in documents:
        ids = tok(doc, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids, clean_up_tokenization_spaces=False) == doc


def test_same_config_gives_identical_shards(tmp_path, corpus, tokenized):
    tokenize_run("tiny", TOKENIZE_OVERRIDES + [f"corpus={corpus}"], str(tmp_path / "again"))
    first, second = snapshot(tokenized), snapshot(tmp_path / "again")
    first.pop("tokenize_stats.json"), second.pop("tokenize_stats.json")  # holds a throughput figure
    assert first == second


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "blank.txt").write_text("  \n\n")
    with pytest.raises(ValueError, match=r"corpus .*corpus is empty"):
        tokenize_run("tiny", [f"corpus={tmp_path / 'corpus'}"], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_missing_corpus_and_bad_jsonl_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        tokenize_run("tiny", [f"corpus={tmp_path / 'nowhere'}"], str(tmp_path / "out"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: record has no 'text' field"):
        tokenize_run("tiny", [f"corpus={bad}"], str(tmp_path / "out"))


def test_corpus_too_small_for_a_window(tmp_path, corpus):
    with pytest.raises(ValueError, match="too small.*seq_len"):
        tokenize_run("tiny", TOKENIZE_OVERRIDES + [f"corpus={corpus}", "seq_len=100000"], str(tmp_path / "out"))


def test_truncated_shard_is_named(tokenized_copy):
    shard = read_manifest(str(tokenized_copy / "train"))[0]
    path = Path(shard.uri)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ShardError, match=path.name):
        TokenWindows(str(tokenized_copy / "train"))


def test_missing_manifest_and_missing_shard_are_named(tokenized_copy):
    (tokenized_copy / "val" / "manifest.jsonl").unlink()
    with pytest.raises(ShardError, match=r"missing manifest: .*val/manifest\.jsonl"):
        TokenWindows(str(tokenized_copy / "val"))
    shard = read_manifest(str(tokenized_copy / "train"))[0]
    Path(shard.uri).unlink()
    with pytest.raises(ShardError, match=Path(shard.uri).name):
        TokenWindows(str(tokenized_copy / "train"))


def test_manifest_count_mismatch_is_named(tokenized_copy):
    manifest = tokenized_copy / "val" / "manifest.jsonl"
    entry = json.loads(manifest.read_text().splitlines()[0])
    entry["num_sequences"] += 1
    manifest.write_text(json.dumps(entry) + "\n")
    with pytest.raises(ShardError, match="manifest says"):
        TokenWindows(str(tokenized_copy / "val"))


def test_token_stream_is_deterministic_and_resumable(tokenized):
    data = TokenWindows(str(tokenized / "train"), seed=3)
    full = [w for _, w in zip(range(2 * len(data) + 5), data.stream())]
    assert full == [w for _, w in zip(range(len(full)), TokenWindows(str(tokenized / "train"), seed=3).stream())]
    assert full[17:40] == [w for _, w in zip(range(23), data.stream(start=17))]
    epoch = full[: len(data)]
    assert sorted(map(tuple, epoch)) == sorted(map(tuple, all_windows(tokenized / "train")))  # each window once
    assert full[len(data): 2 * len(data)] != epoch  # a new order every epoch
    ranks = [[w for _, w in zip(range(len(data) // 2), data.stream(rank=r, world=2))] for r in (0, 1)]
    assert sorted(map(tuple, ranks[0] + ranks[1])) == sorted(map(tuple, epoch[: 2 * (len(data) // 2)]))


def test_one_file_corpus_holds_out_its_end(tmp_path, documents):
    """A single document (one big .txt file) still gets a validation split: its last lines."""
    text = "\n".join(documents)
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    stats = tokenize_run("tiny", TOKENIZE_OVERRIDES + [f"corpus={tmp_path / 'book.txt'}"], str(tmp_path / "out"))
    assert stats["documents"] == 1 and stats["val_samples"] > 0
    assert 0.05 < stats["val_samples"] / (stats["train_samples"] + stats["val_samples"]) < 0.15
    tok = load_tokenizer(str(tmp_path / "out" / "tokenizer"))
    val = tok.decode([i for w in all_windows(tmp_path / "out" / "val") for i in w], skip_special_tokens=False)
    train = tok.decode([i for w in all_windows(tmp_path / "out" / "train") for i in w], skip_special_tokens=False)
    assert text.startswith(train)  # the beginning of the book, in order
    assert val in text and text.index(val) > len(train)  # the end of the book
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1, got 0.0"):
        tokenize_run("tiny", TOKENIZE_OVERRIDES + [f"corpus={tmp_path / 'book.txt'}", "val_fraction=0"],
                     str(tmp_path / "out0"))


def test_fanned_out_tokenize_refuses_a_corpus_changed_under_it_and_parts_out_of_order(tmp_path, documents):
    from vlaforge.stages.merge_slices import run as merge_run
    from vlaforge.stages.tokenize import run_part
    from vlaforge.stages.train_tokenizer import run as train_tokenizer_run

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, half in enumerate((documents[: len(documents) // 2], documents[len(documents) // 2:])):
        (corpus / f"{i}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in half))
    overrides = TOKENIZE_OVERRIDES + [f"corpus={corpus}"]
    train_tokenizer_run("tiny", overrides, str(tmp_path / "tok"))
    parts = [str(tmp_path / f"part{k}") for k in (1, 2)]
    for k, part in zip((1, 2), parts):
        run_part("tiny", overrides + [f'part="{k}/2"'], str(tmp_path / "tok"), part)
    with pytest.raises(ValueError, match="do not cover the corpus files in order"):
        merge_run("tokenize", "tiny", overrides, parts[::-1], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with (corpus / "0.jsonl").open("a") as f:  # a document more since the tokenizer was trained
        f.write(json.dumps({"text": "one more document"}) + "\n")
    with pytest.raises(ValueError, match=r"changed since its tokenizer was trained: files 0:1 hold \d+ documents"):
        run_part("tiny", overrides + ['part="1/2"'], str(tmp_path / "tok"), str(tmp_path / "again"))
