"""Preprocessing raw episodes into robotics shards: sample contents, split, shuffle, bad input."""

import io
import json
import os

import numpy as np
import pytest
import yaml

from robodata_helpers import synthetic_episode, write_dataset
from vlaforge.config import ConfigError
from vlaforge.data.shards import iter_samples, read_manifest
from vlaforge.robotics.config import PreprocessConfig, load_config, read_preprocessing_config
from vlaforge.robotics.episodes import EpisodeError, EpisodeWriter, load_episode, read_index
from vlaforge.robotics.preprocess import preprocess, split_episodes
from vlaforge.robotics.samples import decode_frame, encode_frame


def all_samples(split_uri):
    return [s for shard in read_manifest(split_uri) for s in iter_samples(shard.uri)]


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    raw = write_dataset(root / "raw", 6, lengths=(5, 9))
    cfg = PreprocessConfig(image_indices=[-2, 0], past_steps=2, future_steps=3, val_fraction=0.3,
                           samples_per_shard=7, num_workers=0, seed=5)
    summary = preprocess(cfg, [raw], str(root / "out"))
    return raw, root / "out", cfg, summary


def test_sample_members_windows_and_masks(processed):
    raw, out, cfg, _ = processed
    episodes = {m.episode_id: load_episode(m, ["corner", "behindGripper"], 4, 4) for m in read_index(raw)}
    samples = all_samples(str(out / "train")) + all_samples(str(out / "val"))
    assert len(samples) == sum(e.meta.length for e in episodes.values())
    seen = set()
    for s in samples:
        meta = json.loads(s["metadata.json"])
        ep = episodes[meta["episode_id"]]
        t, L = meta["anchor_timestep"], ep.meta.length
        seen.add((meta["episode_id"], t))
        assert set(s) - {"__key__"} == {"lowdim.npz", "metadata.json", "language_instructions.json",
                                        "corner_t-2.jpg", "corner_t0.jpg", "behindGripper_t-2.jpg",
                                        "behindGripper_t0.jpg"}
        assert meta["sample_id"] == f"{meta['episode_id']}_t{t:05d}"
        assert meta["camera_names"] == ["corner", "behindGripper"] and meta["image_indices"] == [-2, 0]
        assert meta["original_episode_length"] == L and meta["task"] == "reach-v3"
        assert meta["past_padding"] == max(0, 2 - t) and meta["future_padding"] == max(0, t + 3 - (L - 1))
        assert json.loads(s["language_instructions.json"]) == {"original": [ep.meta.instruction]}
        low = np.load(io.BytesIO(s["lowdim.npz"]))
        steps = np.arange(t - 2, t + 4)
        np.testing.assert_array_equal(low["proprio"], ep.proprio[np.clip(steps, 0, L - 1)])
        np.testing.assert_array_equal(low["action"], ep.action[np.clip(steps, 0, L - 1)])
        np.testing.assert_array_equal(low["past_mask"], steps[:3] >= 0)
        np.testing.assert_array_equal(low["future_mask"], steps[3:] < L)
        for idx in (-2, 0):  # the red channel encodes the step (8 per step); JPEG keeps it within a few levels
            frame = decode_frame(s[f"corner_t{idx}.jpg"])
            assert abs(float(frame[..., 0].mean()) - 8 * max(t + idx, 0)) < 4
    assert len(seen) == len(samples)


def test_split_by_episode_shuffle_and_outputs(processed):
    raw, out, cfg, summary = processed
    splits = json.loads((out / "splits.json").read_text())
    assert summary["train_episodes"] == 4 and summary["val_episodes"] == 2
    assert not set(splits["train"]) & set(splits["val"])
    for split in ("train", "val"):
        ids = [json.loads(s["metadata.json"])["episode_id"] for s in all_samples(str(out / split))]
        assert set(ids) == set(splits[split])
        assert len(ids) == summary[f"{split}_samples"]
    shards = read_manifest(str(out / "train"))
    assert [s.num_samples for s in shards][:-1] == [7] * (len(shards) - 1)
    ids = [json.loads(s["metadata.json"])["episode_id"] for s in all_samples(str(out / "train"))]
    runs = sum(a != b for a, b in zip(ids, ids[1:]))
    assert runs > len(set(ids)) * 2, "samples should be interleaved across episodes"

    written = yaml.safe_load((out / "preprocessing_config.yaml").read_text())
    assert written["dataset"]["image_shape"] == [16, 16, 3]
    back = read_preprocessing_config(str(out))
    assert back.cameras == ["corner", "behindGripper"] and back.past_steps == 2 and back.image_indices == [-2, 0]
    assert cfg.image_size == 0 and back.image_size == 16  # the size the frames have, for the policy at inference


def test_same_seed_same_output_and_parallel_equals_serial(tmp_path, processed):
    raw, out, cfg, _ = processed
    from dataclasses import replace

    preprocess(replace(cfg, num_workers=2), [raw], str(tmp_path / "again"))
    for split in ("train", "val"):
        first = [(s["__key__"], s["metadata.json"], s["lowdim.npz"]) for s in all_samples(str(out / split))]
        again = [(s["__key__"], s["metadata.json"], s["lowdim.npz"])
                 for s in all_samples(str(tmp_path / "again" / split))]
        assert first == again
    assert (out / "stats.json").read_text() == (tmp_path / "again" / "stats.json").read_text()


def test_split_episodes_keeps_at_least_one_on_each_side():
    assert split_episodes(1, 0.5, 0).sum() == 0
    assert split_episodes(2, 0.01, 0).sum() == 1
    assert split_episodes(10, 0.99, 0).sum() == 9
    assert split_episodes(10, 0.0, 0).sum() == 0


def test_no_val_folder_when_nothing_is_held_out(tmp_path):
    raw = write_dataset(tmp_path / "raw", 2, lengths=(3, 3))
    summary = preprocess(PreprocessConfig(val_fraction=0.0, num_workers=0, future_steps=2), [raw], str(tmp_path / "o"))
    assert summary["train_samples"] == 6 and "val_samples" not in summary
    assert not (tmp_path / "o" / "val").exists()


def test_resize_and_camera_subset(tmp_path):
    raw = write_dataset(tmp_path / "raw", 2, lengths=(4, 4))
    cfg = PreprocessConfig(cameras=["behindGripper"], image_size=8, val_fraction=0.0, num_workers=0)
    preprocess(cfg, [raw], str(tmp_path / "o"))
    sample = all_samples(str(tmp_path / "o" / "train"))[0]
    assert sorted(k for k in sample if k.endswith(".jpg")) == ["behindGripper_t-1.jpg", "behindGripper_t0.jpg"]
    assert decode_frame(sample["behindGripper_t0.jpg"]).shape == (8, 8, 3)


def test_preset_section_and_config_errors():
    cfg = load_config("tiny", "future_steps=4; num_workers=0")
    assert cfg.future_steps == 4 and cfg.window == cfg.past_steps + 5
    with pytest.raises(ConfigError, match="unknown key 'preprocess.futur_steps'"):
        load_config("tiny", ["futur_steps=4"])
    with pytest.raises(ConfigError, match="normalization must be one of"):
        load_config("tiny", ["normalization=zscore"])
    with pytest.raises(ValueError, match="camera name 'a.b'"):
        PreprocessConfig(cameras=["a.b"])
    with pytest.raises(ConfigError, match="jpeg_subsampling must be one of 4:4:4"):
        load_config("tiny", ["jpeg_subsampling=\"4:1:1\""])


def test_full_chroma_keeps_a_one_pixel_marker():
    """Meta-World's goal sites are a pixel or two at 64x64: 4:2:0 JPEG averages their colour away."""
    frame = np.full((64, 64, 3), 90, np.uint8)
    frame[30, 30] = (250, 10, 10)
    redness = {}
    for chroma in ("4:2:0", "4:4:4"):
        pixel = decode_frame(encode_frame(frame, PreprocessConfig(jpeg_quality=95, jpeg_subsampling=chroma)))[30, 30]
        redness[chroma] = int(pixel[0]) - int(pixel[1:].mean())
    assert redness["4:4:4"] > 180 and redness["4:2:0"] < 100, redness


def write_custom(out, **changes):
    """A two-episode dataset where episode 1 is changed by ``changes`` (arrays or metadata)."""
    rng = np.random.default_rng(0)
    writer = EpisodeWriter(str(out))
    for i in range(2):
        ep = synthetic_episode(rng, 6)
        if i == 1:
            ep.update({k: v for k, v in changes.items() if k in ep})
        writer.write(f"ep-{i}", "t", "go", ep["images"], ep["proprio"], ep["action"], ep["success"])
    writer.close()
    return str(out)


def assert_fails_cleanly(tmp_path, raw, match, cfg=None):
    out = tmp_path / "out"
    with pytest.raises(EpisodeError, match=match):
        preprocess(cfg or PreprocessConfig(num_workers=0), [raw], str(out))
    assert not out.exists() or not os.listdir(out), "nothing may be written on bad input"


def test_wrong_action_dimension(tmp_path):
    raw = write_custom(tmp_path / "raw", action=np.zeros((6, 7), np.float32))
    assert_fails_cleanly(tmp_path, raw, r"ep-1\.npz: 'action' has shape \(6, 7\), expected \(6, 4\)")


def test_missing_camera(tmp_path):
    rng = np.random.default_rng(0)
    ep = synthetic_episode(rng, 6, cameras=("corner",))
    raw = write_custom(tmp_path / "raw", images=ep["images"])
    assert_fails_cleanly(tmp_path, raw, r"episode 'ep-1' .* has no camera behindGripper; it has corner")
    # a camera listed in episodes.jsonl but absent from the .npz
    index = tmp_path / "raw" / "episodes.jsonl"
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    lines[1]["cameras"] = ["corner", "behindGripper"]
    index.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert_fails_cleanly(tmp_path, str(tmp_path / "raw"), r"ep-1\.npz: missing array 'images_behindGripper'")


def test_empty_episode_and_missing_file(tmp_path):
    raw = write_custom(tmp_path / "raw")
    index = tmp_path / "raw" / "episodes.jsonl"
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    lines[1]["length"] = 0
    index.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert_fails_cleanly(tmp_path, raw, r"episode 'ep-1' is empty")
    lines[1]["length"] = 6
    index.write_text("".join(json.dumps(line) + "\n" for line in lines))
    os.unlink(tmp_path / "raw" / "episodes" / "ep-1.npz")
    assert_fails_cleanly(tmp_path, raw, r"episode 'ep-1': missing file .*ep-1\.npz")
    with pytest.raises(EpisodeError, match="episode 'x' is empty"):
        EpisodeWriter(str(tmp_path / "w")).write("x", "t", "go", {}, np.zeros((0, 4)), np.zeros((0, 4)))


def test_nan_and_length_mismatch_and_duplicate_ids(tmp_path):
    bad = np.zeros((6, 4), np.float32)
    bad[2, 1] = np.nan
    assert_fails_cleanly(tmp_path, write_custom(tmp_path / "nan", proprio=bad), r"'proprio' holds NaN")
    raw = write_dataset(tmp_path / "a", 2)
    with pytest.raises(EpisodeError, match="episode_id 'reach-v3-000000' appears in both"):
        preprocess(PreprocessConfig(num_workers=0), [raw, write_dataset(tmp_path / "b", 2)], str(tmp_path / "o"))


def test_different_frame_sizes_need_image_size(tmp_path):
    rng = np.random.default_rng(0)
    big = synthetic_episode(rng, 6, size=24)
    raw = write_custom(tmp_path / "raw", images=big["images"])
    assert_fails_cleanly(tmp_path, raw, r"episode 'ep-1' .*: camera 'corner' frames are 24x24 but camera 'corner' "
                                        r"of episode 'ep-0' has 16x16; set preprocess.image_size")
    summary = preprocess(PreprocessConfig(num_workers=0, image_size=16, val_fraction=0), [raw], str(tmp_path / "ok"))
    assert summary["train_samples"] == 12


def test_worker_errors_reach_the_caller(tmp_path):
    raw = write_custom(tmp_path / "raw", action=np.zeros((6, 3), np.float32))
    assert_fails_cleanly(tmp_path, raw, r"'action' has shape \(6, 3\)", PreprocessConfig(num_workers=2))
