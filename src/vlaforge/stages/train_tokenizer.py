"""The train_tokenizer stage: the tokenizer of a fanned-out tokenize, trained (or loaded) once on the
whole corpus, with the list of the corpus's input files the tokenize slices split among them."""

from __future__ import annotations

from vlaforge.config import load
from vlaforge.data.tokenize import TokenizeConfig, prepare_tokenizer


def run(preset: str, overrides: str | list[str] | None, out_uri: str) -> dict:
    """The ``tokenize`` section of ``preset`` + overrides: ``<out>/tokenizer/`` and ``<out>/corpus.json``."""
    return prepare_tokenizer(load(TokenizeConfig, preset, overrides, "tokenize"), out_uri)
