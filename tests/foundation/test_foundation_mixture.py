"""Weighted data mixing: proportions, exact continuation after a restart (any world size), bad settings."""

from __future__ import annotations

import itertools
import math
import shutil

import pytest
from foundation_util import LLM_OVERRIDES

from vlaforge.data.mixture import Mixture, MixtureSource, check_weights
from vlaforge.stages.llm_pretrain import TextTask
from vlaforge.stages.llm_pretrain import run as llm_run

WEIGHTS = [5.0, 3.0, 2.0]


def tagged(j: int, start: int):
    """Source ``j``'s samples from its ``start``-th on: (source, position in the source)."""
    return ((j, i) for i in itertools.count(start))


def mixture(seed: int = 7) -> Mixture:
    return Mixture(tagged, check_weights(WEIGHTS, "test.weights"), seed)


def test_proportions_fall_inside_a_99_percent_binomial_interval():
    n = 30_000
    samples = list(itertools.islice(mixture().stream(), n))
    counts = [sum(1 for s, _ in samples if s == j) for j in range(len(WEIGHTS))]
    for j, count in enumerate(counts):
        p = WEIGHTS[j] / sum(WEIGHTS)
        half_width = 2.576 * math.sqrt(n * p * (1 - p))
        assert abs(count - n * p) < half_width, (j, count, n * p)
    for j in range(len(WEIGHTS)):  # every source is read in order, none skipped or repeated
        assert [i for s, i in samples if s == j] == list(range(counts[j]))


def test_a_restart_continues_the_mixture_exactly_on_any_world_size():
    uninterrupted = list(itertools.islice(mixture().stream(), 10_000))
    # two ranks take samples 0..5999 (3000 each), stop; one rank resumes at 6000 and stops at 8000;
    # two ranks resume at 8000 (the positions cross a 4096-sample block of choices)
    ranks_before = [list(itertools.islice(mixture().stream(0, r, 2), 3000)) for r in range(2)]
    got = [x for pair in zip(*ranks_before) for x in pair]
    got += list(itertools.islice(mixture().stream(6000, 0, 1), 2000))
    ranks_after = [list(itertools.islice(mixture().stream(4000, r, 2), 1000)) for r in range(2)]
    got += [x for pair in zip(*ranks_after) for x in pair]
    assert got == uninterrupted
    assert list(itertools.islice(mixture(seed=8).stream(), 100)) != uninterrupted[:100]  # the seed decides


@pytest.mark.parametrize("weights, message", [([1.0, -0.5], r"'llm.mixture\[0\].weight' must be >= 0"),
                                              ([0.0, 0.0], "llm.data_weight/llm.mixture: weights sum to zero")])
def test_bad_weights_name_the_setting(tokenized, tmp_path, weights, message):
    overrides = LLM_OVERRIDES + [f"data_weight={weights[0]}",
                                 f"mixture=[{{uri: {tokenized}, weight: {weights[1]}}}]"]
    with pytest.raises(ValueError, match=message):
        llm_run("tiny", overrides, str(tokenized), str(tmp_path / "out"))


def test_a_missing_mixture_source_names_the_setting(tokenized, tmp_path):
    overrides = LLM_OVERRIDES + [f"mixture=[{{uri: {tmp_path / 'nowhere'}, weight: 1}}]"]
    with pytest.raises(FileNotFoundError, match=r"llm.mixture\[0\].uri .*nowhere: nothing there"):
        llm_run("tiny", overrides, str(tokenized), str(tmp_path / "out"))


def test_the_llm_stage_trains_on_a_weighted_mixture(tokenized, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tokenized, other)
    task = TextTask(str(tokenized), 0, [MixtureSource(str(other), 3.0)], 1.0)
    first = next(task.train_batches(0, 0, 1, 8))
    assert first.shape == (8, task.tokens_per_sample + 1)
    overrides = LLM_OVERRIDES + ["train.max_steps=3", f"mixture=[{{uri: {other}, weight: 3}}]"]
    summary = llm_run("tiny", overrides, str(tokenized), str(tmp_path / "out"))
    assert summary["steps"] == 3
