"""The tokenize stage: train a BPE tokenizer on the corpus and write tokenized shards (``run``, one
process), or, fanned out, tokenize one part of the corpus's files with a tokenizer trained before
(``run_part``; merge_slices packs the parts)."""

from __future__ import annotations

from vlaforge.artifacts import check_output
from vlaforge.config import load
from vlaforge.data.tokenize import TokenizeConfig, tokenize_corpus, tokenize_part


def run(preset: str, overrides: str | list[str] | None, out_uri: str) -> dict:
    """Stage entry point (CLI): the ``tokenize`` section of ``preset`` + overrides, every step in this process."""
    cfg = load(TokenizeConfig, preset, overrides, "tokenize")
    check_output(out_uri, "tokenize")
    return tokenize_corpus(cfg, out_uri)


def run_part(preset: str, overrides: str | list[str] | None, tokenizer_uri: str, out_uri: str) -> dict:
    """A fan-out slice (component): the files of the section's ``part``, tokenized with ``tokenizer_uri``
    (the train_tokenizer stage's output)."""
    return tokenize_part(load(TokenizeConfig, preset, overrides, "tokenize"), tokenizer_uri, out_uri)
