"""fingerprint_inputs: its interface, and fingerprints that change exactly when the content at a location does
(the s3:// case runs in tests/foundation/test_foundation_cache_keys.py)."""

import os

import pytest

from components.fingerprint_inputs.component import fingerprint_inputs
from components.testing import assert_interface
from vlaforge.config import ConfigError
from vlaforge.stages.fingerprint_inputs import run


def test_interface(tmp_path):
    assert_interface(fingerprint_inputs, {"preset": "String", "section": "String", "overrides": "String",
                                          "fields": "String", "uris": "String"}, {"Output": "String"},
                     "analysis", tmp_path)


def test_fingerprint_follows_the_content(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("one")
    first = run("tiny", "tokenize", [f"corpus={corpus}"], "corpus")
    assert first.startswith(f"{corpus} ") and len(first.split()[1]) == 64
    os.utime(corpus / "a.txt", (0, 0))
    assert run("tiny", "tokenize", [f"corpus={corpus}"], "corpus") == first  # same bytes: same fingerprint
    (corpus / "a.txt").write_text("two")
    assert run("tiny", "tokenize", [f"corpus={corpus}"], "corpus") != first
    (corpus / "a.txt").write_text("one")
    (corpus / "b.txt").write_text("")
    assert run("tiny", "tokenize", [f"corpus={corpus}"], "corpus") != first  # a new file


def test_what_is_not_a_location_is_left_out_and_a_wrong_key_named(tmp_path):
    assert run("tiny", "tokenize", [], "corpus") == ""  # builtin
    assert run("tiny", "captions", [], "", uris="") == ""
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "000.tar").write_bytes(b"x")
    assert run("tiny", "captions", [], "", uris=f"{tmp_path / 'shards'}").startswith(str(tmp_path / "shards"))
    with pytest.raises(ConfigError, match="no key 'corpuss'"):
        run("tiny", "tokenize", [], "corpuss")
