"""The normaliser: every mode, numpy and torch, round trips, serialisation and clear errors."""

import json

import numpy as np
import pytest
import torch

from vlaforge.robotics.normalize import Normalizer
from vlaforge.robotics.stats import FieldStats


def stats_of(values: dict[str, np.ndarray]) -> dict:
    out = {}
    for name, x in values.items():
        fs = FieldStats(x.shape[1], window=1)
        fs.update_steps(x)
        fs.update_windows(x[:, None], np.ones((len(x), 1), bool))
        out[name] = fs.to_dict()
    return json.loads(json.dumps(out))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    proprio = rng.normal([0.1, -2, 5, 0.04], [0.3, 1, 10, 0.0], (2000, 4))  # last dim constant
    action = rng.uniform(-3, 7, (2000, 4))
    return {"proprio": proprio, "action": action}


@pytest.mark.parametrize("mode", ["std", "percentile_5_95", "percentile_1_99", "min_max"])
def test_modes_map_the_data_as_documented(data, mode):
    norm = Normalizer.from_stats(stats_of(data), mode)
    y = norm.normalize("action", data["action"])
    if mode == "std":
        np.testing.assert_allclose(y.mean(0), 0, atol=1e-6)  # float32 parameters
        np.testing.assert_allclose(y.std(0), 1, atol=1e-6)
    else:
        lo, hi = {"percentile_5_95": (5, 95), "percentile_1_99": (1, 99), "min_max": (0, 100)}[mode]
        np.testing.assert_allclose(np.percentile(y, [lo, hi], axis=0), [[-1] * 4, [1] * 4], atol=2e-3)
    np.testing.assert_allclose(norm.denormalize("action", y), data["action"], atol=1e-5)
    constant = norm.normalize("proprio", data["proprio"])[:, 3]
    assert np.isfinite(constant).all() and np.abs(constant).max() < 1e-6  # scale 1: only shifted


def test_torch_matches_numpy_and_keeps_dtype_and_device(data):
    norm = Normalizer.from_stats(stats_of(data), "percentile_1_99")
    x = data["proprio"][:10].astype(np.float32)
    t = norm.normalize("proprio", torch.from_numpy(x).reshape(2, 5, 4))
    assert t.dtype == torch.float32 and t.shape == (2, 5, 4)
    np.testing.assert_allclose(t.reshape(10, 4).numpy(), norm.normalize("proprio", x), rtol=1e-6)
    back = norm.denormalize("proprio", t.double())
    assert back.dtype == torch.float64
    np.testing.assert_allclose(back.reshape(10, 4).numpy(), x, rtol=1e-5, atol=1e-6)
    assert norm.normalize("action", [[0, 0, 0, 0]]).dtype == np.float32


def test_to_dict_from_dict_round_trip(data):
    norm = Normalizer.from_stats(stats_of(data), "std")
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert again.mode == "std"
    np.testing.assert_array_equal(again.normalize("action", data["action"]), norm.normalize("action", data["action"]))
    with pytest.raises(ValueError, match="not a normalizer mapping"):
        Normalizer.from_dict({"mode": "std"})


def test_clear_errors(data, tmp_path):
    stats = stats_of(data)
    with pytest.raises(ValueError, match="unknown normalization mode 'zscore'"):
        Normalizer.from_stats(stats, "zscore")
    with pytest.raises(ValueError, match="no statistics for field 'action'; it has proprio"):
        Normalizer.from_stats({"proprio": stats["proprio"]}, "std")
    del stats["action"]["percentile_95"]
    with pytest.raises(ValueError, match="field 'action' lacks percentile_95 needed by mode 'percentile_5_95'"):
        Normalizer.from_stats(stats, "percentile_5_95")
    norm = Normalizer.from_stats(stats, "std")
    with pytest.raises(ValueError, match=r"field 'action' has dimension 7 \(shape \(3, 7\)\) "
                                         r"but its statistics have dimension 4"):
        norm.normalize("action", np.zeros((3, 7)))
    with pytest.raises(ValueError, match="normalizer has no field 'gripper'"):
        norm.denormalize("gripper", np.zeros(4))
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"proprio": stats["proprio"]}))
    with pytest.raises(ValueError, match=f"{path}: no statistics for field 'action'"):
        Normalizer.from_stats(str(path), "std")
