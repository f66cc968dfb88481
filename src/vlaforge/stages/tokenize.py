"""The tokenize stage: train a BPE tokenizer on the corpus and write tokenized shards."""

from __future__ import annotations

from vlaforge.artifacts import check_output
from vlaforge.config import load
from vlaforge.data.tokenize import TokenizeConfig, tokenize_corpus


def run(preset: str, overrides: str | list[str] | None, out_uri: str) -> dict:
    """Stage entry point (CLI and component): the ``tokenize`` section of ``preset`` + overrides."""
    cfg = load(TokenizeConfig, preset, overrides, "tokenize")
    check_output(out_uri, "tokenize")
    return tokenize_corpus(cfg, out_uri)
