"""The VLA data loader: batch layout, sharding over readers, one-pass/infinite, resume, inference inputs."""

import itertools
import json
import shutil

import numpy as np
import pytest
import torch

from robodata_helpers import write_dataset
from vlaforge.data.shards import ShardError
from vlaforge.policy import Observation
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.episodes import load_episode, read_index
from vlaforge.robotics.loader import RoboticsDataset, decode_sample, make_loader, observations_to_batch
from vlaforge.robotics.preprocess import preprocess

CAMERAS = ["corner", "behindGripper"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("loader")
    raw = write_dataset(root / "raw", 6, lengths=(5, 9), seed=7)
    cfg = PreprocessConfig(past_steps=1, future_steps=3, image_indices=[-1, 0], val_fraction=0.2,
                           samples_per_shard=5, num_workers=0, normalization="min_max")
    preprocess(cfg, [raw], str(root / "out"))
    episodes = {m.episode_id: load_episode(m, CAMERAS, 4, 4) for m in read_index(raw)}
    return str(root / "out"), episodes


def sample_id(sample):
    return (sample["instruction"], sample["proprio"].numpy().tobytes(), sample["actions"].numpy().tobytes())


def batch_ids(batch):
    return [(batch["instruction"][i], batch["proprio"][i].numpy().tobytes(), batch["actions"][i].numpy().tobytes())
            for i in range(len(batch["instruction"]))]


def test_decoded_sample_matches_the_raw_episode(dataset):
    uri, episodes = dataset
    ds = RoboticsDataset(uri, "train", infinite=False)
    norm, n = ds.normalizer, 0
    for raw in ds._raw_stream(0, 1):
        meta = json.loads(raw["metadata.json"])
        ep, t = episodes[meta["episode_id"]], meta["anchor_timestep"]
        L = ep.meta.length
        s = decode_sample(raw, ds.cfg, norm)
        assert s["images"].dtype == torch.uint8 and s["images"].shape == (4, 3, 16, 16)
        # views camera-major, then image index: green tells the camera, red the step
        greens = s["images"][:, 1].float().mean((1, 2)).numpy()
        np.testing.assert_allclose(greens, [40, 40, 100, 100], atol=3)
        reds = s["images"][:, 0].float().mean((1, 2)).numpy()
        np.testing.assert_allclose(reds, [8 * max(t - 1, 0), 8 * t] * 2, atol=4)
        np.testing.assert_allclose(s["proprio"].numpy(), norm.normalize("proprio", ep.proprio[[max(t - 1, 0), t]]),
                                   rtol=1e-6)
        steps = np.arange(t, t + 3)
        np.testing.assert_allclose(s["actions"].numpy(), norm.normalize("action", ep.action[np.minimum(steps, L - 1)]),
                                   rtol=1e-6)
        np.testing.assert_array_equal(s["action_mask"].numpy(), steps < L)
        assert s["instruction"] == ep.meta.instruction and s["task"] == "reach-v3"
        n += 1
    assert n == ds.num_samples


@pytest.mark.parametrize("num_workers", [0, 2])
def test_one_pass_yields_every_sample_once(dataset, num_workers):
    uri, _ = dataset
    loader = make_loader(uri, 4, num_workers, infinite=False, shuffle_buffer=8)
    expected = [sample_id(decode_sample(r, loader.dataset.cfg, loader.dataset.normalizer))
                for r in loader.dataset._raw_stream(0, 1)]
    got, first = [], None
    for batch in loader:
        first = first or batch
        got += batch_ids(batch)
    assert sorted(got) == sorted(expected) and len(set(got)) == len(got)
    assert first["images"].shape == (4, 4, 3, 16, 16) and first["proprio"].shape == (4, 2, 4)
    assert first["actions"].shape == (4, 3, 4) and first["action_mask"].shape == (4, 3)
    assert first["proprio"].dtype == torch.float32 and first["action_mask"].dtype == torch.bool
    assert isinstance(first["instruction"], list) and isinstance(first["task"], list)


@pytest.mark.parametrize("readers", [2, 3, 50])
def test_readers_split_the_data_disjointly(dataset, readers):
    uri, _ = dataset
    ds = RoboticsDataset(uri, "train", infinite=False)
    parts = [[r["__key__"] + r["__shard__"] for r in ds._raw_stream(i, readers)] for i in range(readers)]
    flat = [k for p in parts for k in p]
    assert len(flat) == len(set(flat)) == ds.num_samples


def _ddp_rank_ids(rank: int, world: int, uri: str, init_file: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ids = [i for b in make_loader(uri, 4, 1, infinite=False) for i in batch_ids(b)]
        with open(f"{out}.{rank}", "w") as f:
            json.dump([[a, b.hex(), c.hex()] for a, b, c in ids], f)
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_ranks_read_disjoint_parts(dataset, tmp_path):
    uri, _ = dataset
    torch.multiprocessing.spawn(_ddp_rank_ids, args=(2, uri, str(tmp_path / "init"), str(tmp_path / "ids")), nprocs=2)
    parts = [[tuple(x) for x in json.loads((tmp_path / f"ids.{r}").read_text())] for r in range(2)]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    assert len(parts[0]) + len(parts[1]) == RoboticsDataset(uri).num_samples


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_from_batch_continues_the_same_stream(dataset, num_workers):
    uri, _ = dataset
    batches = 9  # more than one epoch of the ~30 train samples at batch size 4
    full = [batch_ids(b) for b in itertools.islice(make_loader(uri, 4, num_workers, seed=3), batches)]
    resumed = [batch_ids(b) for b in itertools.islice(make_loader(uri, 4, num_workers, seed=3, start_batch=5),
                                                      batches - 5)]
    assert resumed == full[5:]
    other_seed = [batch_ids(b) for b in itertools.islice(make_loader(uri, 4, num_workers, seed=4), 2)]
    assert other_seed != full[:2]


def test_observations_to_batch_matches_training_inputs(dataset):
    uri, episodes = dataset
    ds = RoboticsDataset(uri, "val", infinite=False)
    raws = list(ds._raw_stream(0, 1))[:3]
    histories, expected = [], []
    for raw in raws:
        meta = json.loads(raw["metadata.json"])
        ep, t = episodes[meta["episode_id"]], meta["anchor_timestep"]
        history = [Observation({c: ep.images[c][s] for c in CAMERAS}, ep.proprio[s], ep.meta.instruction, ep.meta.task)
                   for s in range(max(0, t - 3), t + 1)]  # short histories are padded like the episode start
        histories.append(history)
        expected.append(decode_sample(raw, ds.cfg, ds.normalizer))
    batch = observations_to_batch(histories, uri + "/preprocessing_config.yaml", ds.normalizer)
    assert set(batch) == {"images", "proprio", "instruction", "task"}
    torch.testing.assert_close(batch["images"], torch.stack([e["images"] for e in expected]), rtol=0, atol=0)
    torch.testing.assert_close(batch["proprio"], torch.stack([e["proprio"] for e in expected]))
    assert batch["instruction"] == [e["instruction"] for e in expected]


def test_inference_and_data_errors(dataset, tmp_path):
    uri, episodes = dataset
    ds = RoboticsDataset(uri, "val", infinite=False)
    ep = next(iter(episodes.values()))
    obs = Observation({"corner": ep.images["corner"][0]}, ep.proprio[0], "go")
    with pytest.raises(ValueError, match="observation has no camera 'behindGripper' .*"
                                         "trained on cameras corner, behindGripper"):
        observations_to_batch([[obs]], ds.cfg, ds.normalizer)

    raw = next(ds._raw_stream(0, 1))
    del raw["corner_t0.jpg"]
    with pytest.raises(ShardError, match=r"sample '\d+' of .*shard-000000.tar: missing member\(s\) corner_t0.jpg"):
        decode_sample(raw, ds.cfg, ds.normalizer)

    copy = tmp_path / "copy"
    shutil.copytree(uri, copy)
    stats = json.loads((copy / "stats.json").read_text())
    stats["action"]["min"] = stats["action"]["min"][:3]
    stats["action"]["max"] = stats["action"]["max"][:3]
    (copy / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(ValueError, match="stats.json field 'action' has dimension 3 but "
                                         "preprocessing_config.yaml says action_dim 4"):
        RoboticsDataset(str(copy))
    del stats["proprio"]
    (copy / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(ValueError, match="no statistics for field 'proprio'"):
        RoboticsDataset(str(copy))
    with pytest.raises(ShardError, match="missing manifest"):
        RoboticsDataset(uri, "test")
    few = RoboticsDataset(uri, "val", infinite=True)
    with pytest.raises(ShardError, match=rf"{few.num_samples} samples leave none for reader 60 of 61"):
        next(few._raw_stream(60, 61))
