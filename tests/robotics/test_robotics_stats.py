"""Streaming/merged statistics against direct numpy computations on the same data."""

import json

import numpy as np
import pytest

from robodata_helpers import write_dataset
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.episodes import load_episode, read_index
from vlaforge.robotics.preprocess import preprocess
from vlaforge.robotics.samples import window
from vlaforge.robotics.stats import PERCENTILES, FieldStats, Histogram, RunningStats


def percentile_tolerance(values: np.ndarray, bins: int = 4096) -> float:
    """The documented bound: one bin width < 2 * range / (bins - 1), or the finest width."""
    return max(2 * (values.max() - values.min()) / (bins - 1), 2.0 ** -20) + 1e-6


def mixed_values(rng, n):
    return np.concatenate([rng.normal(3, 2, n // 2), rng.exponential(10, n - n // 2) - 40])


def test_histogram_merge_in_any_order_equals_one_pass():
    rng = np.random.default_rng(0)
    values = mixed_values(rng, 20000)
    parts = np.array_split(values, 23)
    whole = Histogram(512)
    whole.add(values)
    for order in (range(23), rng.permutation(23)):
        merged = Histogram(512)
        for i in order:
            part = Histogram(512)
            part.add(parts[i])
            merged.merge(part)
        assert (merged.exponent, merged.offset) == (whole.exponent, whole.offset)
        np.testing.assert_array_equal(merged.counts, whole.counts)
        assert len(merged.counts) <= 512


@pytest.mark.parametrize("bins", [64, 4096])
def test_percentiles_within_documented_bound(bins):
    rng = np.random.default_rng(1)
    for values in (mixed_values(rng, 5001), rng.uniform(-1e-3, 1e-3, 300), np.full(50, 7.25),
                   rng.integers(0, 3, 1000).astype(float)):
        hist = Histogram(bins)
        hist.add(values)
        estimate = hist.percentiles(PERCENTILES, values.min(), values.max())
        exact = np.percentile(values, PERCENTILES)
        bound = percentile_tolerance(values, bins)
        assert hist.bin_width <= bound
        np.testing.assert_allclose(estimate, exact, rtol=0, atol=bound)


def test_running_stats_merge_with_masks_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(1, 3, (900, 5)) * np.array([1, 10, 0.1, 1, 1])
    valid = rng.random(x.shape) > 0.25
    parts = [RunningStats(5) for _ in range(3)]
    for part, rows in zip(parts, np.array_split(np.arange(900), 3)):
        part.update(x[rows], valid[rows])
    parts[1].merge(parts[0])
    parts[1].merge(parts[2])
    summary = parts[1].summary()
    for c in range(5):
        col = x[valid[:, c], c]
        assert summary["count"][c] == len(col)
        np.testing.assert_allclose(summary["mean"][c], col.mean(), rtol=1e-12)
        np.testing.assert_allclose(summary["std"][c], col.std(), rtol=1e-10)
        assert (summary["min"][c], summary["max"][c]) == (col.min(), col.max())
        np.testing.assert_allclose([summary[f"percentile_{p}"][c] for p in PERCENTILES],
                                   np.percentile(col, PERCENTILES), atol=percentile_tolerance(col))


def test_never_seen_window_cells_are_null():
    stats = FieldStats(dim=2, window=3)
    stats.update_steps(np.ones((4, 2)))
    stats.update_windows(np.ones((4, 3, 2)), np.array([[True, True, False]] * 4))
    out = stats.to_dict()
    assert out["count_per_timestep"] == [4, 4, 0]
    assert out["mean_per_timestep"][2] == [None, None] and out["percentile_5_per_timestep"][2] == [None, None]
    assert out["mean"] == [1.0, 1.0] and out["count"] == 4


def test_stats_json_from_workers_and_datasets_matches_numpy(tmp_path):
    a = write_dataset(tmp_path / "a", 5, seed=3)
    b = write_dataset(tmp_path / "b", 4, seed=4, prefix="push-v3")
    cfg = PreprocessConfig(num_workers=2, past_steps=2, future_steps=3, val_fraction=0.2, samples_per_shard=16)
    preprocess(cfg, [a, b], str(tmp_path / "out"))
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    train_ids = set(json.loads((tmp_path / "out" / "splits.json").read_text())["train"])
    assert len(train_ids) == 7

    episodes = [load_episode(m, [], 4, 4) for uri in (a, b) for m in read_index(uri) if m.episode_id in train_ids]
    for field in ("proprio", "action"):
        steps = np.concatenate([getattr(e, field) for e in episodes]).astype(np.float64)
        got = stats[field]
        assert got["count"] == len(steps)
        np.testing.assert_allclose(got["mean"], steps.mean(0), rtol=1e-9)
        np.testing.assert_allclose(got["std"], steps.std(0), rtol=1e-9)
        np.testing.assert_array_equal(got["min"], steps.min(0))
        np.testing.assert_array_equal(got["max"], steps.max(0))
        for d in range(4):
            np.testing.assert_allclose([got[f"percentile_{p}"][d] for p in PERCENTILES],
                                       np.percentile(steps[:, d], PERCENTILES), atol=percentile_tolerance(steps[:, d]))

        # per window position: only the steps that are not padding
        windows, valid = [], []
        for e in episodes:
            for t in range(e.meta.length):
                idx, past_mask, future_mask, _, _ = window(t, e.meta.length, cfg.past_steps, cfg.future_steps)
                windows.append(getattr(e, field)[idx])
                valid.append(np.concatenate([past_mask, future_mask]))
        windows, valid = np.stack(windows).astype(np.float64), np.stack(valid)
        assert got["count_per_timestep"] == valid.sum(0).tolist()
        for pos in range(cfg.window):
            cells = windows[valid[:, pos], pos]
            np.testing.assert_allclose(got["mean_per_timestep"][pos], cells.mean(0), rtol=1e-9)
            np.testing.assert_allclose(got["std_per_timestep"][pos], cells.std(0), rtol=1e-9)
            np.testing.assert_array_equal(got["max_per_timestep"][pos], cells.max(0))
            np.testing.assert_allclose(got["percentile_95_per_timestep"][pos], np.percentile(cells, 95, axis=0),
                                       atol=percentile_tolerance(cells))
