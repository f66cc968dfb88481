"""The VLA stage on a weighted mixture of robotics datasets: proportions, exact resume, combined
normalisation, bad settings, and training on two sources (streamed and in memory)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from synthetic_data import train_small_vlm, write_episodes

from vlaforge.config import ConfigError, load
from vlaforge.data.mixture import MixtureSource
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.mixture import (combine_stats, in_memory_mixture, in_memory_mixture_batches, mixture_loader,
                                       robotics_mixture)
from vlaforge.robotics.preprocess import preprocess
from vlaforge.robotics.stats import read_stats
from vlaforge.stages.vla_finetune import VLAStageConfig
from vlaforge.stages.vla_finetune import run as vla_run
from vlaforge.train.config import TrainConfig

WEIGHTS = [3.0, 1.0]
STAGE = ("expert={d_model: 32, n_layers: 1, n_heads: 2, last_k_layers: 1}; train.max_steps=3; "
         "train.global_batch_size=8; train.micro_batch_size=8; train.warmup_steps=1; train.val_every=3; "
         "train.val_batches=1; train.ckpt_every=3; train.log_every=1; "
         # the tiny preset trains from memory on a frozen backbone with balanced tasks: streamed here
         "freeze_backbone=false; data_in_memory=false; cache_backbone_states=false; balance_tasks=false")


def _preprocess(root, name: str, episodes: list[str], **kw) -> str:
    cfg = PreprocessConfig(**{"future_steps": 4, "past_steps": 1, "num_workers": 0, "val_fraction": 0.2, **kw})
    preprocess(cfg, [str(root / e) for e in episodes], str(root / name))
    return str(root / name)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two robotics datasets with different action statistics (episodes of 12 and of 20 steps)."""
    root = tmp_path_factory.mktemp("mix")
    write_episodes(str(root / "ep_a"), 20, seed=0)
    write_episodes(str(root / "ep_b"), 12, length=20, seed=1, prefix="long")
    return root, _preprocess(root, "a", ["ep_a"]), _preprocess(root, "b", ["ep_b"])


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    train = TrainConfig(global_batch_size=8, micro_batch_size=8, lr=3e-3, warmup_steps=1, max_steps=2,
                        val_every=2, ckpt_every=10_000, log_every=2)
    return train_small_vlm(root, "move toward the square. move away from the square. ", 16, train)


def _mix(data):
    _, a, b = data
    return robotics_mixture(a, [MixtureSource(b, WEIGHTS[1])], WEIGHTS[0])


def _inside_99_percent(counts, n):
    for j, count in enumerate(counts):
        p = WEIGHTS[j] / sum(WEIGHTS)
        assert abs(count - n * p) < 2.576 * math.sqrt(n * p * (1 - p)), (j, count, n * p)


def test_streamed_proportions_and_source_order(data):
    stream = mixture_loader(_mix(data), 4, 0, seed=5, start_batch=0, rank=0, world=1, shuffle_buffer=16).dataset
    n = 3000  # raw samples: drawing them decodes nothing
    drawn = list(itertools.islice(stream.mixture.stream(), n))
    _inside_99_percent(np.bincount([j for j, _ in drawn], minlength=2), n)
    for j, dataset in enumerate(stream.datasets):  # every source continues its own shuffled stream in order
        keys = [raw["__key__"] for s, raw in drawn if s == j]
        assert keys == [raw["__key__"] for raw in itertools.islice(dataset.raw(), len(keys))]


def test_in_memory_proportions(data):
    mix = _mix(data)
    samples, sizes = in_memory_mixture(mix, 0)
    assert len(samples) == sum(sizes) and sizes[1] > 0
    samples.add_column("source", torch.repeat_interleave(torch.arange(2), torch.tensor(sizes)))
    batches = in_memory_mixture_batches(samples, sizes, mix.probabilities, 50, seed=5, start_batch=0, rank=0, world=1)
    drawn = torch.cat([b["source"] for b in itertools.islice(batches, 40)])
    _inside_99_percent(torch.bincount(drawn, minlength=2).tolist(), len(drawn))


def _same(x: list[dict], y: list[dict]) -> None:
    assert len(x) == len(y)
    for bx, by in zip(x, y):
        for key in ("images", "proprio", "actions", "action_mask"):
            assert torch.equal(bx[key], by[key]), key
        assert bx["instruction"] == by["instruction"]


def _interleave(ranks: list[list[dict]]) -> list[dict]:
    """Per-rank batches of 2 as the global batches of 4 they make (rank samples alternate)."""
    return [{k: ([v for pair in zip(r0[k], r1[k]) for v in pair] if isinstance(r0[k], list) else
                 torch.stack([r0[k], r1[k]], 1).flatten(0, 1)) for k in r0} for r0, r1 in zip(*ranks)]


def test_streamed_mixture_resumes_exactly_on_any_world_size_and_worker_count(data):
    mix = _mix(data)

    def batches(start, rank=0, world=1, workers=0, n=3, size=4):
        loader = mixture_loader(mix, size, workers, seed=3, start_batch=start, rank=rank, world=world,
                                shuffle_buffer=16)
        return list(itertools.islice(iter(loader), n))

    uninterrupted = batches(0, n=6)
    _same(batches(0, workers=2, n=6), uninterrupted)
    _same(batches(0, n=3) + batches(3, n=3), uninterrupted)  # stop after 3 batches, restart
    two_ranks = _interleave([batches(3, rank=r, world=2, size=2, n=3) for r in range(2)])
    _same(two_ranks, uninterrupted[3:])


def test_in_memory_mixture_resumes_exactly(data):
    mix = _mix(data)
    samples, sizes = in_memory_mixture(mix, 0)

    def batches(start, n):
        it = in_memory_mixture_batches(samples, sizes, mix.probabilities, 8, seed=3, start_batch=start, rank=0,
                                       world=1)
        return list(itertools.islice(it, n))

    _same(batches(0, 3) + batches(3, 60), batches(0, 63))  # crosses several passes over the sources


def test_combined_stats_are_those_of_the_mixture(data):
    root, _, _ = data  # statistics cover the train split: no validation, so both sources' split is all of them
    parts = [read_stats(_preprocess(root, f"all_{e}", [e], val_fraction=0.0)) for e in ("ep_a", "ep_b")]
    both = _preprocess(root, "all_ab", ["ep_a", "ep_b"], val_fraction=0.0)
    counts = np.array([s["action"]["count"] for s in parts], float)
    combined = combine_stats(parts, counts / counts.sum())  # weights = sizes: the pooled statistics
    truth = read_stats(both)
    for field in ("proprio", "action"):
        for key in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(combined[field][key], truth[field][key], rtol=1e-6, atol=1e-9)
        assert combined[field]["count"] == truth[field]["count"]
        for key in ("percentile_1", "percentile_5"):  # the envelope: no source's range falls outside
            assert np.all(np.asarray(combined[field][key]) <= np.minimum(*(p[field][key] for p in parts)) + 1e-12)
    assert not np.allclose(parts[0]["action"]["std"], parts[1]["action"]["std"])  # the sources do differ


@pytest.mark.parametrize("weights, message", [([1.0, -0.5], "weights must be finite and >= 0"),
                                              ([0.0, 0.0], "weights sum to zero")])
def test_bad_weights_name_the_setting(data, weights, message):
    _, a, b = data
    with pytest.raises(ValueError, match=f"vla.data_weight/vla.mixture: {message}"):
        robotics_mixture(a, [MixtureSource(b, weights[1])], weights[0])


def test_missing_and_incompatible_sources_name_the_setting(data, tmp_path):
    root, a, b = data
    with pytest.raises(FileNotFoundError, match=r"vla.mixture\[1\].uri: no preprocessed robotics dataset at"):
        robotics_mixture(a, [MixtureSource(b), MixtureSource(str(tmp_path / "nowhere"))], 1.0)
    other = _preprocess(root, "short_chunks", ["ep_b"], future_steps=3)
    with pytest.raises(ValueError, match=r"vla.mixture\[0\].uri: future_steps 3 of .* differs from the input "
                                         r"dataset's 4"):
        robotics_mixture(a, [MixtureSource(other)], 1.0)


def test_a_missing_source_given_as_a_ui_override_fails_the_stage(data, vlm, tmp_path):
    _, a, _ = data
    overrides = f"{STAGE}; mixture=[{{uri: {tmp_path / 'nowhere'}, weight: 1}}]"
    with pytest.raises(FileNotFoundError, match=r"vla.mixture\[0\].uri"):
        vla_run("tiny", overrides, vlm, a, str(tmp_path / "out"))
    with pytest.raises(ValueError, match="vla.balance_tasks and vla.mixture"):
        vla_run("tiny", f"{overrides}; data_in_memory=true; balance_tasks=true", vlm, a, str(tmp_path / "out"))


@pytest.mark.parametrize("extra", ["", "; data_in_memory=true; freeze_backbone=true; cache_backbone_states=true"])
def test_the_vla_stage_trains_on_a_two_source_mixture(data, vlm, tmp_path, extra):
    _, a, b = data
    # one string, as the KFP UI's vla_overrides parameter passes it
    overrides = f"{STAGE}; data_weight=3; mixture=[{{uri: {b}, weight: 1}}]{extra}"
    summary = vla_run("tiny", overrides, vlm, a, str(tmp_path / "out"))
    assert summary["steps"] == 3 and math.isfinite(summary["final_val_loss"])
    bundle_stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert bundle_stats == combine_stats([read_stats(a), read_stats(b)], np.array([0.75, 0.25]))
    normalizer = json.loads((tmp_path / "out" / "normalizer.json").read_text())
    np.testing.assert_allclose(normalizer["fields"]["action"]["center"], bundle_stats["action"]["mean"], rtol=1e-6)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["mixture"] == [{"uri": b, "weight": 1.0}] and config["data_weight"] == 3.0


def test_the_mixture_is_a_typed_preset_setting(tmp_path):
    preset = tmp_path / "mixed.yaml"
    preset.write_text("extends: tiny\nvla:\n  data_weight: 2\n  balance_tasks: false\n"
                      "  mixture:\n    - {uri: s3://b/lerobot, weight: 0.5}\n")
    cfg = load(VLAStageConfig, str(preset), None, "vla")
    assert cfg.data_weight == 2.0 and cfg.mixture == [MixtureSource("s3://b/lerobot", 0.5)]
    with pytest.raises(ConfigError, match="mixture"):
        load(VLAStageConfig, str(preset), "mixture=[{uri: s3://b/x, wieght: 1}]", "vla")
